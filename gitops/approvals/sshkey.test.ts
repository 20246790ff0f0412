import { execFileSync } from "node:child_process";
import { createPublicKey, verify } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  formatPrivateKey,
  formatPublicKey,
  keyFingerprint,
  parsePrivateKey,
  parsePublicKey,
} from "./sshkey.ts";
import { signingPayload, signDecision } from "./signature.ts";

const dir = mkdtempSync(join(tmpdir(), "custos-sshkey-"));
function keygen(name: string, extra: string[] = []): string {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@test`, "-f", path, ...extra], {
    stdio: "ignore",
  });
  return path;
}

describe("OpenSSH ed25519 keys", () => {
  it("reads ssh-keygen's private and public key and prints ssh-keygen's fingerprint", () => {
    const path = keygen("a");
    const priv = parsePrivateKey(readFileSync(path, "utf8"));
    const pubLine = readFileSync(`${path}.pub`, "utf8").trim();
    const pub = parsePublicKey(pubLine);
    expect(Buffer.from(priv.publicKey).equals(Buffer.from(pub.publicKey))).toBe(true);
    expect(priv.comment).toBe("a@test");
    expect(formatPublicKey(pub.publicKey, pub.comment)).toBe(pubLine);
    const lf = execFileSync("ssh-keygen", ["-l", "-f", `${path}.pub`], { encoding: "utf8" });
    expect(lf.split(" ")[1]).toBe(keyFingerprint(pub.publicKey));
  });

  it("writes private keys that ssh-keygen reads back", () => {
    const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
    const path = join(dir, "written");
    writeFileSync(path, formatPrivateKey(kp, "written@test"), { mode: 0o600 });
    const derived = execFileSync("ssh-keygen", ["-y", "-f", path], { encoding: "utf8" }).trim();
    expect(derived).toBe(formatPublicKey(kp.publicKey, "written@test"));
    expect(parsePrivateKey(readFileSync(path, "utf8")).secretKey).toEqual(kp.secretKey);
  });

  it("signatures are standard ed25519: node:crypto verifies what tweetnacl signed", () => {
    const priv = parsePrivateKey(readFileSync(keygen("b"), "utf8"));
    const block = signDecision(priv, "approve", `sha256:${"1".repeat(64)}`, "111111111111-abc");
    const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(priv.publicKey)]);
    const key = createPublicKey({ key: spki, format: "der", type: "spki" });
    expect(
      verify(
        null,
        signingPayload("approve", block.fingerprint, block.requestId),
        key,
        Buffer.from(block.signature, "base64"),
      ),
    ).toBe(true);
  });

  it("refuses encrypted keys and other key types with a fix", () => {
    const enc = join(dir, "enc");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "secret-pass", "-f", enc], { stdio: "ignore" });
    expect(() => parsePrivateKey(readFileSync(enc, "utf8"))).toThrow(
      expect.objectContaining({
        code: "E_APPROVAL_KEY_FORMAT",
        message: expect.stringMatching(/unencrypted/),
      }),
    );
    expect(() => parsePrivateKey("not a key")).toThrow(
      expect.objectContaining({ code: "E_APPROVAL_KEY_FORMAT" }),
    );
    expect(() => parsePublicKey("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x")).toThrow(
      expect.objectContaining({ code: "E_APPROVAL_KEY_FORMAT" }),
    );
    const truncated = readFileSync(keygen("c"), "utf8").replace(/\n[A-Za-z0-9+/=]+\n-----END/, "\n-----END");
    expect(() => parsePrivateKey(truncated)).toThrow();
  });
});
