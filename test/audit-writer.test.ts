/**
 * The auditor's verify against the gateway's own evidence writer (gitops/evidence): what the
 * writer commits, verify accepts; checkpoints it publishes stay consistent as history grows;
 * real git agrees on every signature; tampering with the writer's output is caught.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditVerify } from "../gitops/audit/index.ts";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import { formatAllowedSigner, nodeSigner } from "../gitops/signer/index.ts";

const exec = promisify(execFile);
const GW = "gw-writer";
const seed = new Uint8Array(32).map((_, i) => i + 1); // a fixed test key, generated here, never stored
const signer = nodeSigner(seed);
const allowed = `${formatAllowedSigner(`${GW}@custos.local`, signer.publicKeyOpenSsh, ["git"])}\n`;

let tmp: string;
let repo: string;
const checkpoints: string[] = [];

async function write(from: number, count: number, clockStart: number): Promise<void> {
  let now = clockStart;
  const w = await openEvidenceRepo({
    dir: repo,
    gatewayId: GW,
    signer,
    clock: () => now,
    batchMaxRecords: 400,
    batchMaxDelayMs: 5,
    checkpointEvery: 1_000_000,
    onCheckpoint: (text) => checkpoints.push(text),
    log: () => {},
  });
  const pending: Promise<unknown>[] = [];
  for (let i = from; i < from + count; i++) {
    now = clockStart + i;
    pending.push(w.append(sampleRecord(i, clockStart)));
  }
  await Promise.all(pending);
  await w.appendArtifact({
    kind: "session",
    name: `s-${from}.cast`,
    content: '{"version":2}\n',
    auditID: `s-${from}`,
  });
  await w.flush();
  await w.checkpoint();
  await w.close();
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "custos-audit-writer-"));
  repo = join(tmp, "evidence.git");
  await writeFile(join(tmp, "allowed_signers"), allowed);
  await write(0, 1000, Date.UTC(2026, 10, 25, 9, 59, 59));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("audit verify on the evidence writer's repository", () => {
  it("accepts every commit, counts every record and agrees with git verify-commit", async () => {
    const r = await auditVerify({ repo, allowedSigners: allowed });
    expect(r.findings).toEqual([]);
    expect(r.stats.records).toBe(1000);
    expect(r.gateways[0]!.lastSeq).toBe(1000);
    const { stdout } = await exec("git", ["--git-dir", repo, "rev-list", `evidence/${GW}`]);
    const oids = stdout.trim().split("\n");
    await exec("git", [
      "--git-dir",
      repo,
      "-c",
      "gpg.format=ssh",
      "-c",
      `gpg.ssh.allowedSignersFile=${join(tmp, "allowed_signers")}`,
      "verify-commit",
      ...oids,
    ]);
  });

  it("a published checkpoint stays consistent as the history grows", async () => {
    expect(checkpoints.length).toBeGreaterThan(0);
    const first = checkpoints[checkpoints.length - 1]!;
    await write(1000, 500, Date.UTC(2026, 10, 25, 11, 0, 0));
    const r = await auditVerify({
      repo,
      allowedSigners: allowed,
      checkpoints: checkpoints.map((text, i) => ({ source: `published-${i}`, text })),
    });
    expect(r.findings).toEqual([]);
    expect(r.stats.records).toBe(1500);
    expect(r.checkpoints.map((c) => c.status)).toEqual(checkpoints.map(() => "consistent"));
    expect(first).toMatch(/^custos-evidence\/gw-writer\n1000\n/);
  });

  it("rolling the writer's branch back is caught by the published checkpoint", async () => {
    const clone = join(tmp, "rolled-back.git");
    await exec("git", ["clone", "-q", "--mirror", repo, clone]);
    const { stdout } = await exec("git", [
      "--git-dir",
      clone,
      "rev-list",
      "--first-parent",
      `evidence/${GW}`,
    ]);
    const oids = stdout.trim().split("\n");
    await exec("git", [
      "--git-dir",
      clone,
      "update-ref",
      `refs/heads/evidence/${GW}`,
      oids[oids.length - 3]!,
    ]);
    const latest = checkpoints[checkpoints.length - 1]!;
    const r = await auditVerify({
      repo: clone,
      allowedSigners: allowed,
      checkpoints: [{ source: "latest", text: latest }],
    });
    expect([...new Set(r.findings.map((f) => f.code))].sort()).toEqual([
      "CHECKPOINT_NOT_IN_HISTORY",
      "CHECKPOINT_ROLLBACK",
    ]);
  });
});
