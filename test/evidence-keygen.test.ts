/** `custos keygen`: an OpenSSH ed25519 key that ssh-keygen loads, 0600, and its allowed_signers line. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { run } from "../gitops/cli/keygen.ts";
import {
  nodeSigner,
  parseAllowedSigners,
  parseOpenSshPrivateKey,
  sshsigSign,
  sshsigVerify,
} from "../gitops/signer/index.ts";

const dir = mkdtempSync(join(tmpdir(), "custos-keygen-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    return { code: await run(argv), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe("custos keygen", () => {
  it("writes a 0600 key ssh-keygen loads and prints the allowed_signers line", async () => {
    const key = join(dir, "gw_key");
    const { code, out } = await capture(["--out", key, "--principal", "gw-1@custos.local"]);
    expect(code).toBe(0);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const pub = execFileSync("ssh-keygen", ["-y", "-f", key]).toString().trim();
    expect(readFileSync(`${key}.pub`, "utf8").startsWith(pub.split(" ").slice(0, 2).join(" "))).toBe(true);
    const [entry] = parseAllowedSigners(out);
    expect(entry!.principals).toEqual(["gw-1@custos.local"]);
    // the printed line trusts exactly this key
    const signer = nodeSigner(parseOpenSshPrivateKey(readFileSync(key, "utf8")).seed);
    expect(sshsigVerify(sshsigSign(signer, "m", "git"), "m", "git", [entry!]).principals).toEqual([
      "gw-1@custos.local",
    ]);
    expect(out).not.toContain("PRIVATE");
  });

  it("refuses to overwrite, rejects a bad principal, and prints JSON on request", async () => {
    const key = join(dir, "gw_key2");
    expect((await capture(["--out", key, "--json"])).code).toBe(0);
    const again = await capture(["--out", key]);
    expect(again.code).toBe(2);
    expect(again.err).toContain("--force");
    expect((await capture(["--out", join(dir, "k3"), "--principal", "a b"])).code).toBe(2);
    const json = await capture(["--out", join(dir, "k4"), "--json", "--principal", "x@y"]);
    const parsed = JSON.parse(json.out) as { fingerprint: string; allowedSigners: string };
    expect(parsed.fingerprint).toMatch(/^SHA256:/);
    expect(parsed.allowedSigners.startsWith("x@y ssh-ed25519 ")).toBe(true);
    expect((await capture(["--help"])).code).toBe(0);
  });
});
