/**
 * Pushing evidence to a real `git http-backend` (CGI on 127.0.0.1) that refuses
 * non-fast-forward pushes and deletions: only new objects are sent, several gateways share one
 * remote on distinct branches, an unreachable remote is retried without losing or reordering
 * records, and a diverged remote branch is never overwritten.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FetchLike, openEvidenceRepo } from "../gitops/evidence/index.ts";
import { type HttpBackend, initRemote, sampleRecord, startHttpBackend } from "../gitops/evidence/testkit.ts";
import { formatAllowedSigner, nodeSigner } from "../gitops/signer/index.ts";

const signerA = nodeSigner(new Uint8Array(createHash("sha256").update("push test gw-a").digest()));
const signerB = nodeSigner(new Uint8Array(createHash("sha256").update("push test gw-b").digest()));
const execFileAsync = promisify(execFile);
const quiet = (): void => undefined;

let root: string;
let backend: HttpBackend;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "custos-push-"));
  backend = await startHttpBackend(join(root, "srv"));
});
afterAll(async () => {
  await backend.close();
  rmSync(root, { recursive: true, force: true });
});

function git(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", maxBuffer: 1 << 26 });
}

function seqsOn(dir: string, ref: string): number[] {
  return git(dir, "ls-tree", "-r", "--name-only", ref)
    .split("\n")
    .filter((f) => f.startsWith("records/"))
    .sort()
    .flatMap((f) => git(dir, "show", `${ref}:${f}`).split("\n").slice(0, -1))
    .map((l) => (JSON.parse(l) as { custos: { seq: number } }).custos.seq);
}

describe("evidence push over smart HTTP", () => {
  it("two gateways push to one remote on their own branches; a clone verifies with plain git", async () => {
    initRemote(join(root, "srv", "shared.git"));

    const remote = { url: backend.url("shared.git") };
    const packCounts: number[] = [];
    const countingFetch: FetchLike = async (url, init) => {
      if (init.body) {
        const body = Buffer.from(init.body);
        const at = body.indexOf("PACK");
        if (at >= 0) packCounts.push(body.readUInt32BE(at + 8));
      }
      return fetch(url, init);
    };
    const a = await openEvidenceRepo({
      fetch: countingFetch,
      dir: join(root, "a"),
      gatewayId: "gw-a",
      signer: signerA,
      remote,
      batchMaxRecords: 20,
      log: quiet,
    });
    const b = await openEvidenceRepo({
      dir: join(root, "b"),
      gatewayId: "gw-b",
      signer: signerB,
      remote,
      batchMaxRecords: 20,
      log: quiet,
    });
    for (let i = 0; i < 60; i++) {
      await Promise.all([a.append(sampleRecord(i)), b.append(sampleRecord(i))]);
    }
    await Promise.all([a.flush(), b.flush()]);
    await Promise.all([a.pushed(15_000), b.pushed(15_000)]);
    const requestsBefore = backend.requests;
    packCounts.length = 0;
    await a.append(sampleRecord(999));
    await a.flush();
    await a.pushed(15_000);
    // one more commit costs one receive-pack (plus a ref discovery at most), not a history walk,
    // and its pack holds only the new objects: commit, segment blob, and the 7 trees on its path
    // (root, records, YYYY, MM, DD, HH, MM)
    expect(backend.requests - requestsBefore).toBeLessThanOrEqual(2);
    expect(packCounts).toEqual([9]);
    await Promise.all([a.close(), b.close()]);

    const clone = join(root, "clone");
    // async: the HTTP server runs in this process, a synchronous child would deadlock it
    await execFileAsync("git", ["clone", "-q", "--mirror", backend.url("shared.git"), clone]);
    expect(git(clone, "rev-parse", "refs/heads/evidence/gw-a").trim()).toBe(a.stats().head);
    expect(git(clone, "rev-parse", "refs/heads/evidence/gw-b").trim()).toBe(b.stats().head);
    expect(seqsOn(clone, "refs/heads/evidence/gw-a")).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
    expect(seqsOn(clone, "refs/heads/evidence/gw-b")).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const allowed = join(root, "allowed_signers");
    writeFileSync(
      allowed,
      `${formatAllowedSigner("gw-a@custos.local", signerA.publicKeyOpenSsh)}\n${formatAllowedSigner("gw-b@custos.local", signerB.publicKeyOpenSsh)}\n`,
    );
    for (const ref of ["refs/heads/evidence/gw-a", "refs/heads/evidence/gw-b"]) {
      for (const c of git(clone, "rev-list", ref).trim().split("\n")) {
        const r = spawnSync("git", [
          "-C",
          clone,
          "-c",
          "gpg.format=ssh",
          "-c",
          `gpg.ssh.allowedSignersFile=${allowed}`,
          "verify-commit",
          c,
        ]);
        expect(r.status, r.stderr.toString()).toBe(0);
      }
    }
    execFileSync("git", ["-C", clone, "fsck", "--strict", "--no-dangling"], { stdio: "pipe" });
  });

  it("retries an unreachable remote with backoff and catches up in order", async () => {
    initRemote(join(root, "srv", "flaky.git"));
    const remote = { url: backend.url("flaky.git") };
    const w = await openEvidenceRepo({
      dir: join(root, "flaky"),
      gatewayId: "gw-f",
      signer: signerA,
      remote,
      batchMaxRecords: 10,
      log: quiet,
    });
    await Promise.all(Array.from({ length: 25 }, (_, i) => w.append(sampleRecord(i))));
    await w.flush();
    await w.pushed(15_000);
    await backend.stop();
    // the gateway keeps acknowledging while the remote is down
    for (let i = 25; i < 70; i++) await w.append(sampleRecord(i));
    await w.flush();
    await new Promise((r) => setTimeout(r, 400));
    expect(w.stats().pushFailures).toBeGreaterThan(0);
    expect(w.stats().lastPushError).toBeTruthy();
    await backend.restart();
    await w.pushed(20_000);
    expect(w.stats().pushFailures).toBe(0);
    await w.close();
    expect(seqsOn(join(root, "srv", "flaky.git"), "refs/heads/evidence/gw-f")).toEqual(
      Array.from({ length: 70 }, (_, i) => i + 1),
    );
  });

  it("a remote URL with credentials in it: a failed push logs and reports it without them", async () => {
    initRemote(join(root, "srv", "creds.git"));
    const secret = "push-secret-token-0123456789";
    const url = backend.url("creds.git").replace("://", `://x-access-token:${secret}@`);
    const logged: string[] = [];
    const w = await openEvidenceRepo({
      dir: join(root, "creds"),
      gatewayId: "gw-c",
      signer: signerA,
      remote: { url },
      batchMaxRecords: 10,
      log: (e) => logged.push(JSON.stringify(e)),
    });
    await w.append(sampleRecord(0));
    await w.flush();
    for (let i = 0; i < 50 && w.stats().pushFailures === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(w.stats().pushFailures).toBeGreaterThan(0);
    expect(w.stats().lastPushError).toContain("***@");
    expect(String(w.stats().lastPushError)).not.toContain(secret);
    expect(logged.some((l) => l.includes("evidence push failed"))).toBe(true);
    expect(logged.join("\n")).not.toContain(secret);
    await w.close();
  });

  it("a fresh writer process pushes a backlog left by an earlier one (only what the remote lacks)", async () => {
    initRemote(join(root, "srv", "backlog.git"));
    const dir = join(root, "backlog");
    const w1 = await openEvidenceRepo({
      dir,
      gatewayId: "gw-k",
      signer: signerA,
      batchMaxRecords: 10,
      log: quiet,
    });
    await Promise.all(Array.from({ length: 30 }, (_, i) => w1.append(sampleRecord(i))));
    await w1.close();
    const remote = { url: backend.url("backlog.git") };
    const w2 = await openEvidenceRepo({ dir, gatewayId: "gw-k", signer: signerA, remote, log: quiet });
    await w2.pushed(15_000);
    await w2.append(sampleRecord(30));
    await w2.close();
    expect(seqsOn(join(root, "srv", "backlog.git"), "refs/heads/evidence/gw-k")).toHaveLength(31);
  });

  it("never overwrites a remote branch that is not an ancestor (non-fast-forward)", async () => {
    const srv = join(root, "srv", "diverged.git");
    initRemote(srv);
    const remote = { url: backend.url("diverged.git") };
    // someone else wrote gw-d's branch on the remote first
    const other = await openEvidenceRepo({
      dir: join(root, "other"),
      gatewayId: "gw-d",
      signer: signerB,
      remote,
      log: quiet,
    });
    await other.append(sampleRecord(1));
    await other.close();
    const before = git(srv, "rev-parse", "refs/heads/evidence/gw-d").trim();
    const errors: string[] = [];
    const w = await openEvidenceRepo({
      dir: join(root, "mine"),
      gatewayId: "gw-d",
      signer: signerA,
      remote,
      log: (e) => errors.push(String(e.code)),
      closePushTimeoutMs: 300,
    });
    await w.append(sampleRecord(2));
    await w.flush();
    await expect(w.pushed(1500)).rejects.toMatchObject({ code: "EVIDENCE_PUSH_TIMEOUT" });
    await w.close();
    expect(errors).toContain("EVIDENCE_PUSH_NOT_FAST_FORWARD");
    expect(git(srv, "rev-parse", "refs/heads/evidence/gw-d").trim()).toBe(before);
  });
});
