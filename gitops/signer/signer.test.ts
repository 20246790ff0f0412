import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAIN_ZERO,
  chainSegment,
  chainStep,
  formatAllowedSigner,
  formatOpenSshPrivateKey,
  naclSigner,
  nodeSigner,
  parseAllowedSigners,
  parseCheckpoint,
  parseOpenSshPrivateKey,
  parseOpenSshPublicKey,
  principalMatches,
  signCheckpoint,
  signCommit,
  splitSignedCommit,
  sshsigSign,
  sshsigVerify,
  verifyCheckpoint,
  verifyCommitSignature,
} from "./index.ts";

let dir: string;
let keyFile: string;
let seed: Uint8Array;
let pubLine: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "custos-signer-"));
  keyFile = join(dir, "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "gw-1@custos.local", "-f", keyFile]);
  const parsed = parseOpenSshPrivateKey(readFileSync(keyFile, "utf8"));
  seed = parsed.seed;
  expect(parsed.comment).toBe("gw-1@custos.local");
  pubLine = readFileSync(`${keyFile}.pub`, "utf8").trim();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sshKeygenSign(payload: string, namespace: string): string {
  const file = join(dir, `msg-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, payload);
  execFileSync("ssh-keygen", ["-q", "-Y", "sign", "-n", namespace, "-f", keyFile, file], { stdio: "pipe" });
  return readFileSync(`${file}.sig`, "utf8");
}

describe("golden: node:crypto, tweetnacl and ssh-keygen agree byte for byte", () => {
  it("signs a git commit payload identically to ssh-keygen -Y sign -n git", () => {
    const payload =
      "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor custos gateway gw-1 <gw-1@custos.local> 1767225600 +0000\n" +
      "committer custos gateway gw-1 <gw-1@custos.local> 1767225600 +0000\n\nevidence gw-1 1..1\n";
    const golden = sshKeygenSign(payload, "git");
    const fromNode = sshsigSign(nodeSigner(seed), payload, "git");
    const fromNacl = sshsigSign(naclSigner(seed), payload, "git");
    expect(fromNode).toBe(golden);
    expect(fromNacl).toBe(golden);
  });

  it("raw signatures are identical for arbitrary messages (property)", () => {
    const a = nodeSigner(seed);
    const b = naclSigner(seed);
    expect(a.publicKeyOpenSsh).toBe(b.publicKeyOpenSsh);
    expect(pubLine.startsWith(a.publicKeyOpenSsh)).toBe(true);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (msg) => {
        expect(Buffer.from(a.sign(msg)).equals(Buffer.from(b.sign(msg)))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
});

describe("sshsig verify", () => {
  it("accepts ssh-keygen's signatures and ssh-keygen accepts ours", () => {
    const msg = "checkpoint payload\n";
    const signer = nodeSigner(seed);
    const allowed = parseAllowedSigners(formatAllowedSigner("gw-1@custos.local", signer.publicKeyOpenSsh));
    const res = sshsigVerify(sshKeygenSign(msg, "file"), msg, "file", allowed);
    expect(res.ok).toBe(true);
    expect(res.principals).toEqual(["gw-1@custos.local"]);

    const ours = sshsigSign(signer, msg, "git");
    const sigFile = join(dir, "ours.sig");
    const allowedFile = join(dir, "allowed_signers");
    writeFileSync(sigFile, ours);
    writeFileSync(allowedFile, `${formatAllowedSigner("gw-1@custos.local", signer.publicKeyOpenSsh)}\n`);
    const out = spawnSync(
      "ssh-keygen",
      ["-Y", "verify", "-f", allowedFile, "-I", "gw-1@custos.local", "-n", "git", "-s", sigFile],
      {
        input: msg,
      },
    );
    expect(out.status, out.stderr.toString()).toBe(0);
  });

  it("rejects a changed message, wrong namespace and an unknown key", () => {
    const signer = nodeSigner(seed);
    const other = nodeSigner(new Uint8Array(32).fill(7));
    const allowed = parseAllowedSigners(formatAllowedSigner("gw-1@custos.local", signer.publicKeyOpenSsh));
    const sig = sshsigSign(signer, "a", "git");
    expect(sshsigVerify(sig, "a", "git", allowed).ok).toBe(true);
    expect(sshsigVerify(sig, "b", "git", allowed).reason).toBe("bad-signature");
    expect(sshsigVerify(sig, "a", "file", allowed).reason).toBe("namespace");
    expect(sshsigVerify(sshsigSign(other, "a", "git"), "a", "git", allowed).reason).toBe("untrusted-key");
    expect(sshsigVerify("garbage", "a", "git", allowed).reason).toBe("malformed");
    expect(sshsigVerify(sig, "a", "git", [signer.publicKeyOpenSsh]).ok).toBe(true);
  });
});

describe("openssh private key files", () => {
  it("round-trips ssh-keygen's file byte for byte (same check int)", () => {
    const text = readFileSync(keyFile, "utf8");
    const bytes = Buffer.from(text.replace(/-----[^-]+-----|\s/g, ""), "base64");
    // check int sits after magic(15) + "none"(8) + "none"(8) + ""(4) + n(4) + pubkey string(4+51) + priv len(4)
    const check = bytes.readUInt32BE(15 + 8 + 8 + 4 + 4 + 55 + 4);
    expect(formatOpenSshPrivateKey(seed, "gw-1@custos.local", check)).toBe(text);
  });

  it("ssh-keygen loads keys we write", () => {
    const ours = new Uint8Array(32).map((_, i) => i + 1);
    const file = join(dir, "ours_key");
    writeFileSync(file, formatOpenSshPrivateKey(ours, "ours@custos.local"), { mode: 0o600 });
    const pub = execFileSync("ssh-keygen", ["-y", "-f", file]).toString().trim();
    expect(pub.split(" ").slice(0, 2).join(" ")).toBe(nodeSigner(ours).publicKeyOpenSsh);
    expect(parseOpenSshPublicKey(pub).publicKey).toEqual(nodeSigner(ours).publicKey);
  });
});

describe("signed git commits", () => {
  it("real git verify-commit accepts a commit we sign; split gives back the payload", () => {
    const repo = join(dir, "repo");
    execFileSync("git", ["init", "-q", "--bare", repo]);
    const tree = execFileSync("git", ["-C", repo, "hash-object", "-t", "tree", "-w", "--stdin"], {
      input: "",
    })
      .toString()
      .trim();
    const signer = nodeSigner(seed);
    const who = { name: "custos gateway gw-1", email: "gw-1@custos.local", timestamp: 1767225600 };
    const raw = signCommit(signer, { tree, parents: [], author: who, committer: who, message: "hello\n" });
    const oid = execFileSync("git", ["-C", repo, "hash-object", "-t", "commit", "-w", "--stdin"], {
      input: raw,
    })
      .toString()
      .trim();
    const allowedFile = join(dir, "allowed_signers_git");
    writeFileSync(allowedFile, `${formatAllowedSigner("gw-1@custos.local", signer.publicKeyOpenSsh)}\n`);
    const res = spawnSync(
      "git",
      [
        "-C",
        repo,
        "-c",
        "gpg.format=ssh",
        "-c",
        `gpg.ssh.allowedSignersFile=${allowedFile}`,
        "verify-commit",
        oid,
      ],
      { encoding: "utf8" },
    );
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toContain('Good "git" signature for gw-1@custos.local');
    const stored = execFileSync("git", ["-C", repo, "cat-file", "commit", oid]).toString();
    expect(stored).toBe(raw);
    expect(
      verifyCommitSignature(stored, parseAllowedSigners(`gw-1@custos.local ${signer.publicKeyOpenSsh}`)).ok,
    ).toBe(true);
    const tampered = stored.replace("hello", "hullo");
    expect(verifyCommitSignature(tampered, [signer.publicKeyOpenSsh]).ok).toBe(false);
    expect(splitSignedCommit(stored).payload).not.toContain("gpgsig");
  });
});

describe("allowed_signers", () => {
  it("parses options, namespaces, several principals and comments", () => {
    const s = nodeSigner(seed);
    const text = `# comment\n\na@x,b@x namespaces="git,file",valid-after="20260101" ${s.publicKeyOpenSsh} trailing comment\nc@x ${s.publicKeyOpenSsh}\n`;
    const parsed = parseAllowedSigners(text);
    expect(parsed).toHaveLength(2);
    expect(parsed[0]!.principals).toEqual(["a@x", "b@x"]);
    expect(parsed[0]!.namespaces).toEqual(["git", "file"]);
    expect(parsed[0]!.options["valid-after"]).toBe("20260101");
    expect(parsed[1]!.line).toBe(4);
    expect(principalMatches(["*@custos.local"], "gw@custos.local")).toBe(true);
    expect(principalMatches(["*@custos.local", "!bad@custos.local"], "bad@custos.local")).toBe(false);
    expect(() => parseAllowedSigners("onlyprincipal\n")).toThrow(/line 1/);
  });
});

describe("checkpoints", () => {
  it("chainSegment over a segment equals chainStep line by line (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\n")),
          { minLength: 1, maxLength: 20 },
        ),
        (lines) => {
          let h: Uint8Array = CHAIN_ZERO;
          for (const l of lines) h = chainStep(h, l);
          const seg = Buffer.from(`${lines.join("\n")}\n`);
          expect(Buffer.from(chainSegment(CHAIN_ZERO, seg)).toString("hex")).toBe(
            Buffer.from(h).toString("hex"),
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it("signs, parses and verifies; any changed byte fails", () => {
    const s = nodeSigner(seed);
    let h: Uint8Array = new Uint8Array(32);
    for (const line of ['{"a":1}', '{"a":2}']) h = chainStep(h, line);
    const text = signCheckpoint(s, "gw-1@custos.local", {
      gatewayId: "gw-1",
      count: 2,
      chain: Buffer.from(h).toString("hex"),
      commit: "a".repeat(40),
      time: "2026-01-01T00:00:00.000Z",
    });
    const allowed = parseAllowedSigners(formatAllowedSigner("gw-1@custos.local", s.publicKeyOpenSsh));
    const res = verifyCheckpoint(text, allowed);
    expect(res.ok).toBe(true);
    expect(parseCheckpoint(text).count).toBe(2);
    expect(verifyCheckpoint(text.replace("\n2\n", "\n3\n"), allowed).reason).toBe("bad-signature");
    expect(verifyCheckpoint(text.replace("gw-1@custos.local", "gw-2@custos.local"), allowed).reason).toBe(
      "unknown-principal",
    );
    expect(verifyCheckpoint("nonsense", allowed).reason).toBe("malformed");
  });
});
