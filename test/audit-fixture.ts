/**
 * Evidence repositories built by REAL git for the auditor's tests: commits signed by
 * `git commit -S` with gpg.format=ssh and keys from `ssh-keygen -t ed25519` generated at test
 * time. Real git writes exactly the format the gateway's writer targets, so the verifier is
 * tested independently of the writer. Not a test file itself.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";
import {
  CHAIN_ZERO,
  chainStep,
  nodeSigner,
  parseOpenSshPrivateKey,
  signCheckpoint,
} from "../gitops/signer/index.ts";

const exec = promisify(execFile);

export interface TestKey {
  path: string;
  /** "ssh-ed25519 AAAA..." */
  publicKey: string;
  principal: string;
  seed: Uint8Array;
}

export async function makeKey(dir: string, name: string, principal: string): Promise<TestKey> {
  const path = join(dir, name);
  await exec("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", path]);
  const pub = (await readFile(`${path}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
  const { seed } = parseOpenSshPrivateKey(await readFile(path, "utf8"));
  return { path, publicKey: pub, principal, seed };
}

export function allowedSignersLine(key: TestKey): string {
  return `${key.principal} namespaces="git" ${key.publicKey}`;
}

export function makeRecord(
  gatewayId: string,
  seq: number,
  stageTimestamp: string,
  over: Partial<{
    user: string;
    verb: string;
    resource: string;
    namespace: string;
    name: string;
    decision: EvidenceRecord["custos"]["decision"];
    ruleId: string;
    masked: Record<string, number>;
    approval: boolean;
    type: EvidenceRecord["custos"]["type"];
  }> = {},
): EvidenceRecord {
  const decision = over.decision ?? "allow";
  const r: EvidenceRecord = {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: `audit-${gatewayId}-${seq}`,
    stage: "ResponseComplete",
    requestURI: `/api/v1/namespaces/${over.namespace ?? "clinic"}/${over.resource ?? "pods"}/${over.name ?? `p${seq % 7}`}`,
    verb: over.verb ?? "get",
    user: { username: over.user ?? `agent-${seq % 3}`, groups: ["system:authenticated"] },
    sourceIPs: ["10.0.0.7"],
    objectRef: {
      resource: over.resource ?? "pods",
      namespace: over.namespace ?? "clinic",
      name: over.name ?? `p${seq % 7}`,
      apiVersion: "v1",
    },
    responseStatus: { code: decision === "allow" ? 200 : 403 },
    requestReceivedTimestamp: stageTimestamp,
    stageTimestamp,
    custos: {
      decision,
      effective: decision,
      enforcement: "enforce",
      ruleId: over.ruleId ?? (decision === "allow" ? "read-pods" : "default-deny"),
      reason: "test",
      policyHash: "sha256:abc",
      type: over.type ?? "call",
      gatewayId,
      seq,
    },
  };
  if (over.masked)
    r.custos.masking = { rules: Object.keys(over.masked), paths: [], truncated: false, counts: over.masked };
  if (over.approval)
    r.custos.approval = { requestId: `req-${seq}`, fingerprint: `fp-${seq}`, grantId: `g-${seq}` };
  return r;
}

export function jsonl(records: EvidenceRecord[]): string {
  return records.map((r) => `${canonicalJson(r)}\n`).join("");
}

/** chained hash over record lines (lines without "\n") */
export function chainOf(lines: string[], start: Uint8Array = CHAIN_ZERO): string {
  let h = start;
  for (const l of lines) h = chainStep(h, l);
  return Buffer.from(h).toString("hex");
}

export interface CommitSpec {
  /** path -> full new content (null deletes the file) */
  files: Record<string, string | null>;
  /** signing key; null = unsigned */
  key: TestKey | null;
  committerEmail?: string;
  message: string;
  /** committer time, epoch seconds */
  time: number;
}

async function git(dir: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await exec("git", ["-C", dir, ...args], {
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", HOME: dir, ...env },
  });
  return stdout.trim();
}

/** Build a repository with one branch `evidence/<gatewayId>` from commit specs; returns the oids. */
export async function buildRepo(dir: string, gatewayId: string, specs: CommitSpec[]): Promise<string[]> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await git(dir, ["init", "-q", "-b", `evidence/${gatewayId}`]);
  const oids: string[] = [];
  for (const s of specs) oids.push(await addCommit(dir, s));
  return oids;
}

export async function addCommit(dir: string, s: CommitSpec): Promise<string> {
  for (const [path, content] of Object.entries(s.files)) {
    const full = join(dir, path);
    if (content === null) await rm(full, { force: true });
    else {
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, content);
    }
  }
  await git(dir, ["add", "-A"]);
  const email = s.committerEmail ?? s.key?.principal ?? "nobody@custos.local";
  const date = `${s.time} +0000`;
  const env = {
    GIT_AUTHOR_NAME: "custos gateway",
    GIT_AUTHOR_EMAIL: email,
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_NAME: "custos gateway",
    GIT_COMMITTER_EMAIL: email,
    GIT_COMMITTER_DATE: date,
  };
  const sign = s.key
    ? ["-c", "gpg.format=ssh", "-c", `user.signingkey=${s.key.path}`, "commit", "-S"]
    : ["commit", "--no-gpg-sign"];
  await git(dir, [...sign, "-q", "--allow-empty", "-m", s.message], env);
  return git(dir, ["rev-parse", "HEAD"]);
}

export { git as runGit };

/** A normal history of one gateway: init, three record commits, a checkpoint commit, one more. */
export interface History {
  gatewayId: string;
  /** segments in commit order: path + records */
  segments: { path: string; records: EvidenceRecord[] }[];
}

export const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);

export function ts(offsetSeconds: number): string {
  return new Date(T0 + offsetSeconds * 1000).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** "minute": records/YYYY/MM/DD/HH/MM/ (the writer today); "hour": records/YYYY/MM/DD/HH/ (older repositories) */
export type Layout = "minute" | "hour";

export function segmentPath(
  gatewayId: string,
  firstSeq: number,
  stageTimestamp: string,
  layout: Layout = "minute",
): string {
  const d = stageTimestamp;
  const dir = `records/${d.slice(0, 4)}/${d.slice(5, 7)}/${d.slice(8, 10)}/${d.slice(11, 13)}${layout === "minute" ? `/${d.slice(14, 16)}` : ""}`;
  return `${dir}/${gatewayId}-${String(firstSeq).padStart(12, "0")}.jsonl`;
}

/** Make `n` segments of `per` records each, one per commit, 40 minutes apart. */
export function makeSegments(
  gatewayId: string,
  n: number,
  per: number,
  layout: Layout | ((i: number) => Layout) = "minute",
): { path: string; records: EvidenceRecord[] }[] {
  const out: { path: string; records: EvidenceRecord[] }[] = [];
  let seq = 1;
  for (let i = 0; i < n; i++) {
    const records: EvidenceRecord[] = [];
    for (let j = 0; j < per; j++, seq++) records.push(makeRecord(gatewayId, seq, ts(i * 2400 + j)));
    out.push({
      path: segmentPath(
        gatewayId,
        records[0]!.custos.seq ?? 0,
        records[0]!.stageTimestamp,
        typeof layout === "function" ? layout(i) : layout,
      ),
      records,
    });
  }
  return out;
}

export function recordsMessage(gatewayId: string, records: EvidenceRecord[], chain: string): string {
  const first = records[0]?.custos.seq ?? 0;
  const last = records[records.length - 1]?.custos.seq ?? 0;
  return `evidence ${gatewayId}: records ${first}..${last}\n\nCustos-Gateway: ${gatewayId}\nCustos-Kind: records\nCustos-First-Seq: ${first}\nCustos-Last-Seq: ${last}\nCustos-Chain: ${chain}\n`;
}

/** Commit specs for: init (README), each segment as a record commit (chain trailers recomputed). */
export function historySpecs(
  gatewayId: string,
  segments: { path: string; records: EvidenceRecord[] }[],
  key: TestKey,
  extra: Record<number, Record<string, string>> = {},
): CommitSpec[] {
  const specs: CommitSpec[] = [
    {
      files: { "README.md": "# evidence\n" },
      key,
      message: `evidence ${gatewayId}: initialise\n\nCustos-Gateway: ${gatewayId}\nCustos-Kind: init\nCustos-Last-Seq: 0\nCustos-Chain: ${"0".repeat(64)}\n`,
      time: T0 / 1000,
    },
  ];
  const lines: string[] = [];
  segments.forEach((seg, i) => {
    for (const r of seg.records) lines.push(canonicalJson(r));
    specs.push({
      files: { [seg.path]: jsonl(seg.records), ...(extra[i] ?? {}) },
      key,
      message: recordsMessage(gatewayId, seg.records, chainOf(lines)),
      time: T0 / 1000 + 60 * (i + 1),
    });
  });
  return specs;
}

/** A signed checkpoint over the first `count` records, covering `commit`. */
export function checkpointText(
  key: TestKey,
  gatewayId: string,
  records: EvidenceRecord[],
  count: number,
  commit: string,
): string {
  return signCheckpoint(nodeSigner(key.seed), key.principal, {
    gatewayId,
    count,
    chain: chainOf(records.slice(0, count).map((r) => canonicalJson(r))),
    commit,
    time: "2026-11-25T12:00:00.000Z",
  });
}
