/**
 * Evidence writer benchmark: `node --import tsx bench/evidence.ts [--seconds 8] [--rate 20000] [--batch 4000]`
 *
 * 1. sustained: records/s committed as signed commits when appends come as fast as they can
 *    (bounded in flight), durability "process".
 * 2. paced: at a fixed offered rate (default 20,000/s), acknowledgement latency and time from
 *    acknowledgement to signed commit, for durability "process" and "machine".
 * 3. baselines a user would reach for: plain git, unsigned `git fast-import` (one commit per 1,000
 *    records), and a signed `hash-object`/`update-index`/`write-tree`/`commit-tree -S` loop.
 * Prints a JSON summary line and a human table.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalJson } from "../sdk/lib/canonical.ts";
import { type Durability, openEvidenceRepo } from "../gitops/evidence/index.ts";
import { ObjectStore } from "../gitops/evidence/objects.ts";
import { MutableTree } from "../gitops/evidence/tree.ts";
import * as nodeFs from "node:fs";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import {
  formatOpenSshPrivateKey,
  naclSigner,
  nodeSigner,
  type Signer,
  sshsigSign,
  sshsigVerify,
} from "../gitops/signer/index.ts";

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = arg("seconds", 8);
const RATE = arg("rate", 20_000);
/** records per commit at most; the writer's default (4,000) unless given (1,000 was the default before) */
const BATCH = {
  ...(args.includes("--batch") ? { batchMaxRecords: arg("batch", 4000) } : {}),
};
const root = mkdtempSync(join(tmpdir(), "custos-bench-evidence-"));
const seed = new Uint8Array(32).map((_, i) => i * 7 + 1);
const signer = nodeSigner(seed);
const RECORDS = Array.from({ length: 4096 }, (_, i) => sampleRecord(i));
const recordBytes = canonicalJson(RECORDS[0]).length;

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const r1 = (n: number): number => Math.round(n * 10) / 10;

async function sustained(): Promise<{
  recordsPerSecond: number;
  records: number;
  commits: number;
  seconds: number;
  cpuMicrosPerRecord: number;
}> {
  const w = await openEvidenceRepo({
    dir: join(root, "sustained"),
    gatewayId: "bench",
    signer,
    ...BATCH,
    log: () => undefined,
  });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const stop = started + SECONDS * 1000;
  let inFlight = 0;
  let i = 0;
  // offer load as fast as acknowledgements come back, with a bounded number in flight
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (performance.now() >= stop) {
        if (inFlight === 0) resolve();
        return;
      }
      while (inFlight < 4000) {
        inFlight++;
        w.append(RECORDS[i++ % RECORDS.length]!).then(() => {
          inFlight--;
          if (inFlight === 0 && performance.now() >= stop) resolve();
        });
      }
      setImmediate(pump);
    };
    pump();
  });
  await w.flush(); // count only what is committed and signed
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const st = w.stats();
  await w.close();
  return {
    recordsPerSecond: Math.round(st.committedSeq / seconds),
    records: st.committedSeq,
    commits: st.commits,
    seconds: r1(seconds),
    // user+system CPU of this process (main thread + libuv pool) per committed record: the figure
    // that depends least on how loaded a shared machine is
    cpuMicrosPerRecord: r1((cpu.user + cpu.system) / st.committedSeq),
  };
}

async function paced(durability: Durability, rate: number): Promise<Record<string, number>> {
  const commitAt = new Map<number, number>();
  const ackAt: number[] = [];
  const sentAt: number[] = [];
  const w = await openEvidenceRepo({
    dir: join(root, `paced-${durability}-${rate}`),
    gatewayId: "bench",
    signer,
    ...BATCH,
    durability,
    log: () => undefined,
    onCommit: ({ lastSeq }) => commitAt.set(lastSeq, performance.now()),
  });
  const tick = 5;
  const perTick = Math.max(1, Math.round((rate * tick) / 1000));
  const started = performance.now();
  const total = Math.round(rate * Math.min(SECONDS, 6));
  let sent = 0;
  const pending: Promise<unknown>[] = [];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + perTick);
    while (sent < due) {
      const t0 = performance.now();
      sentAt.push(t0);
      pending.push(
        w.append(RECORDS[sent % RECORDS.length]!).then(({ seq }) => {
          ackAt[seq - 1] = performance.now();
        }),
      );
      sent++;
    }
    await new Promise((r) => setTimeout(r, tick));
  }
  const offeredFor = (performance.now() - started) / 1000; // the offering phase only
  await Promise.all(pending);
  await w.flush();
  await w.close();
  // commit time of seq s = time of the first commit whose lastSeq >= s
  const commitSeqs = [...commitAt.keys()].sort((a, b) => a - b);
  const ackLat: number[] = [];
  const toCommit: number[] = [];
  let ci = 0;
  for (let s = 1; s <= total; s++) {
    while (commitSeqs[ci]! < s) ci++;
    const ack = ackAt[s - 1]!;
    ackLat.push(ack - sentAt[s - 1]!);
    toCommit.push(commitAt.get(commitSeqs[ci]!)! - ack);
  }
  ackLat.sort((a, b) => a - b);
  toCommit.sort((a, b) => a - b);
  return {
    offeredPerSecond: rate,
    achievedPerSecond: Math.round(total / offeredFor),
    records: total,
    ackP50Ms: r1(pct(ackLat, 50) * 1000) / 1000,
    ackP99Ms: r1(pct(ackLat, 99) * 1000) / 1000,
    ackToCommitP50Ms: r1(pct(toCommit, 50)),
    ackToCommitP99Ms: r1(pct(toCommit, 99)),
    ackToCommitMaxMs: r1(toCommit[toCommit.length - 1] ?? Number.NaN),
  };
}

function gitIn(dir: string, args: string[], input?: string | Buffer, env?: NodeJS.ProcessEnv): string {
  return execFileSync("git", ["-C", dir, ...args], {
    input,
    env: { ...process.env, ...env },
    maxBuffer: 1 << 28,
  })
    .toString()
    .trim();
}

async function fastImport(batches: number): Promise<{ recordsPerSecond: number; records: number }> {
  const dir = join(root, "fast-import");
  execFileSync("git", ["init", "-q", "--bare", dir]);
  const lines = RECORDS.slice(0, 1000).map((r) => canonicalJson(r));
  const blob = Buffer.from(`${lines.join("\n")}\n`);
  const started = performance.now();
  const child = spawn("git", ["-C", dir, "fast-import", "--quiet"], { stdio: ["pipe", "ignore", "inherit"] });
  const done = new Promise<void>((r) => child.on("close", () => r()));
  for (let b = 0; b < batches; b++) {
    const msg = `records ${b * 1000 + 1}..${(b + 1) * 1000}\n`;
    const head = `commit refs/heads/evidence/bench\ncommitter bench <bench@custos.local> ${1767225600 + b} +0000\ndata ${msg.length}\n${msg}${b > 0 ? "" : ""}M 100644 inline records/2026/01/01/12/bench-${String(b * 1000 + 1).padStart(12, "0")}.jsonl\ndata ${blob.length}\n`;
    if (!child.stdin.write(head)) await new Promise((r) => child.stdin.once("drain", r));
    if (!child.stdin.write(blob)) await new Promise((r) => child.stdin.once("drain", r));
    child.stdin.write("\n");
  }
  child.stdin.end();
  await done;
  const s = (performance.now() - started) / 1000;
  return { recordsPerSecond: Math.round((batches * 1000) / s), records: batches * 1000 };
}

function commitTreeLoop(batches: number): { recordsPerSecond: number; records: number } {
  const dir = join(root, "commit-tree");
  execFileSync("git", ["init", "-q", "--bare", dir]);
  const key = join(root, "bench_key");
  writeFileSync(key, formatOpenSshPrivateKey(seed, "bench@custos.local"), { mode: 0o600 });
  const env = {
    GIT_INDEX_FILE: join(root, "bench-index"),
    GIT_AUTHOR_NAME: "bench",
    GIT_AUTHOR_EMAIL: "bench@custos.local",
    GIT_COMMITTER_NAME: "bench",
    GIT_COMMITTER_EMAIL: "bench@custos.local",
  };
  const lines = RECORDS.slice(0, 1000).map((r) => canonicalJson(r));
  const blob = `${lines.join("\n")}\n`;
  let parent = "";
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    const oid = gitIn(dir, ["hash-object", "-w", "--stdin"], `${b}\n${blob}`, env);
    gitIn(
      dir,
      [
        "update-index",
        "--add",
        "--cacheinfo",
        `100644,${oid},records/2026/01/01/12/bench-${String(b * 1000 + 1).padStart(12, "0")}.jsonl`,
      ],
      undefined,
      env,
    );
    const tree = gitIn(dir, ["write-tree"], undefined, env);
    const commit = gitIn(
      dir,
      [
        "-c",
        "gpg.format=ssh",
        "-c",
        `user.signingkey=${key}`,
        "commit-tree",
        tree,
        ...(parent ? ["-p", parent] : []),
        "-S",
        "-m",
        `records ${b}`,
      ],
      undefined,
      env,
    );
    gitIn(dir, ["update-ref", "refs/heads/evidence/bench", commit], undefined, env);
    parent = commit;
  }
  const s = (performance.now() - started) / 1000;
  return { recordsPerSecond: Math.round((batches * 1000) / s), records: batches * 1000 };
}

/**
 * What one commit's tree writes cost as the directory holding its segment grows: the older
 * hour-level layout put every segment of an hour in one directory (18,000 entries by the end of
 * an hour at 5 commits/s, 72,000 at 20/s); the minute level keeps it to a minute's worth.
 */
async function treeCostByDirSize(sizes: number[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of sizes) {
    const dir = join(root, `tree-${n}`);
    execFileSync("git", ["init", "-q", "--bare", dir]);
    const store = new ObjectStore(nodeFs, dir);
    const tree = await MutableTree.load(store, null);
    const blob = await store.write("blob", Buffer.from("x\n"));
    for (let i = 0; i < n; i++)
      await tree.add(`records/2026/01/01/12/bench-${String(i).padStart(12, "0")}.jsonl`, blob);
    await tree.write();
    const reps = 20;
    const t = performance.now();
    for (let i = 0; i < reps; i++) {
      await tree.add(`records/2026/01/01/12/bench-${String(n + i).padStart(12, "0")}.jsonl`, blob);
      await tree.write();
    }
    out[`entries${n}Ms`] = r1((performance.now() - t) / reps);
  }
  return out;
}

/** sshsig sign and verify of a typical commit payload, per implementation (µs per operation) */
function signerSpeed(): Record<string, number> {
  const payload = `tree ${"a".repeat(40)}\nparent ${"b".repeat(40)}\nauthor x <x@y> 1 +0000\ncommitter x <x@y> 1 +0000\n\nrecords\n`;
  const out: Record<string, number> = {};
  const allowed = [signer.publicKeyOpenSsh];
  for (const [name, s, n] of [
    ["node", signer, 2000],
    ["tweetnacl", naclSigner(seed), 60],
  ] as [string, Signer, number][]) {
    let t = performance.now();
    let sig = "";
    for (let i = 0; i < n; i++) sig = sshsigSign(s, payload, "git");
    out[`${name}SignMicros`] = r1(((performance.now() - t) * 1000) / n);
    t = performance.now();
    for (let i = 0; i < n; i++) sshsigVerify(sig, payload, "git", allowed);
    out[`nodeVerifyMicros_${name}Signed`] = r1(((performance.now() - t) * 1000) / n);
  }
  return out;
}

/** `--only paced-machine` (or another paced-<durability>): that measurement alone, printed as JSON */
async function only(what: string): Promise<void> {
  const m = /^paced-(process|machine)$/.exec(what);
  if (!m) throw new Error(`--only ${what}: expected paced-process or paced-machine`);
  const r = await paced(m[1] as Durability, RATE);
  process.stdout.write(`${JSON.stringify({ bench: "evidence", only: what, ...r })}\n`);
  rmSync(root, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? "?", node: process.version, recordBytes };
  const sus = await sustained();
  const pacedProcess = await paced("process", RATE);
  const pacedMachine = await paced("machine", RATE);
  const lowProcess = await paced("process", 1000);
  const lowMachine = await paced("machine", 1000);
  const fi = await fastImport(40);
  const ct = commitTreeLoop(15);
  const sig = signerSpeed();
  const trees = await treeCostByDirSize([300, 3_600, 18_000, 72_000]);
  const summary = {
    bench: "evidence",
    machine,
    sustained: sus,
    paced: {
      process: pacedProcess,
      machine: pacedMachine,
      processAt1000: lowProcess,
      machineAt1000: lowMachine,
    },
    baseline: { gitFastImportUnsigned: fi, gitCommitTreeSignedLoop: ct },
    signer: sig,
    treeWritePerCommit: trees,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n\n`);
  const rows: [string, string][] = [
    ["machine", `${machine.cpus} cpu, ${machine.node}, record ${recordBytes} B`],
    [
      "custos sustained, signed commits (process)",
      `${sus.recordsPerSecond.toLocaleString()} records/s (${sus.records} records, ${sus.commits} commits, ${sus.cpuMicrosPerRecord} µs CPU/record)`,
    ],
    [`paced ${RATE}/s process: achieved`, `${pacedProcess.achievedPerSecond}/s`],
    ["  ack latency p50 / p99", `${pacedProcess.ackP50Ms} / ${pacedProcess.ackP99Ms} ms`],
    [
      "  ack -> signed commit p50 / p99 / max",
      `${pacedProcess.ackToCommitP50Ms} / ${pacedProcess.ackToCommitP99Ms} / ${pacedProcess.ackToCommitMaxMs} ms`,
    ],
    [`paced ${RATE}/s machine: achieved`, `${pacedMachine.achievedPerSecond}/s`],
    ["  ack latency p50 / p99", `${pacedMachine.ackP50Ms} / ${pacedMachine.ackP99Ms} ms`],
    [
      "  ack -> signed commit p50 / p99 / max",
      `${pacedMachine.ackToCommitP50Ms} / ${pacedMachine.ackToCommitP99Ms} / ${pacedMachine.ackToCommitMaxMs} ms`,
    ],
    ["paced 1000/s ack p50 / p99, process", `${lowProcess.ackP50Ms} / ${lowProcess.ackP99Ms} ms`],
    ["paced 1000/s ack p50 / p99, machine", `${lowMachine.ackP50Ms} / ${lowMachine.ackP99Ms} ms`],
    ["baseline git fast-import (unsigned)", `${fi.recordsPerSecond.toLocaleString()} records/s`],
    ["baseline git commit-tree -S loop (signed)", `${ct.recordsPerSecond.toLocaleString()} records/s`],
    ["sshsig sign: node:crypto / tweetnacl", `${sig.nodeSignMicros} / ${sig.tweetnaclSignMicros} µs`],
    ["sshsig verify (node:crypto)", `${sig.nodeVerifyMicros_nodeSigned} µs`],
    [
      "tree writes per commit, segment dir of 300 / 3,600 / 18,000 / 72,000",
      `${trees.entries300Ms} / ${trees.entries3600Ms} / ${trees.entries18000Ms} / ${trees.entries72000Ms} ms`,
    ],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  rmSync(root, { recursive: true, force: true });
}

const onlyArg = args.indexOf("--only");
if (onlyArg >= 0) await only(args[onlyArg + 1] ?? "");
else await main();
