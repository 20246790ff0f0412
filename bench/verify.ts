/**
 * Verify speed on a large evidence repository.
 *
 *   node --import tsx bench/verify.ts [--records 1000000] [--per 1000] [--keep <dir>] [--git-sample <n>] [--runs 3] [--reuse]
 *
 * Builds a repository in the writer's format — one signed commit per 1,000-record segment,
 * records/YYYY/MM/DD/HH/MM partitions, a checkpoint commit every 100,000 records — by writing a
 * pack file directly (objects deflated with node:zlib, commits signed in-process with the
 * signer's sshsig over node:crypto ed25519), indexes it with `git index-pack`, then measures:
 *   - `custos audit verify` (in-process auditVerify, with an external checkpoint): records/s
 *   - plain git: `git verify-commit` over the same commits (signatures only; one ssh-keygen
 *     run per commit), on all commits or a sample (--git-sample), extrapolated
 * Prints a JSON summary and a table. Machine load matters: run it on a quiet machine (--runs).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { deflateSync } from "node:zlib";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { auditVerify } from "../gitops/audit/index.ts";
import { defaultWorkers } from "../gitops/audit/parse-pool.ts";
import {
  CHAIN_ZERO,
  chainStep,
  formatAllowedSigner,
  nodeSigner,
  signCheckpoint,
  signCommit,
} from "../gitops/signer/index.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";

const exec = promisify(execFile);

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

const TOTAL = Number(arg("records", "1000000"));
const PER = Number(arg("per", "1000"));
const CHECKPOINT_EVERY = 100_000;
const GIT_SAMPLE = Number(arg("git-sample", "0")); // 0 = every commit
const KEEP = arg("keep", "");
const RUNS = Number(arg("runs", "3"));
const REUSE = process.argv.includes("--reuse"); // with --keep: reuse a repository generated before
const GW = "bench-gw";
const PRINCIPAL = `${GW}@custos.local`;

/** A pack file written as objects are produced (PACK v2, undeltified, zlib level 1). */
class PackWriter {
  private count = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(private readonly fh: Awaited<ReturnType<typeof open>>) {}
  static async create(path: string): Promise<PackWriter> {
    const fh = await open(path, "w");
    const w = new PackWriter(fh);
    await fh.write(Buffer.alloc(12)); // header, rewritten at the end (count unknown until then)
    return w;
  }
  async add(type: "commit" | "tree" | "blob", content: Buffer): Promise<string> {
    const oid = createHash("sha1").update(`${type} ${content.length}\0`).update(content).digest("hex");
    const t = type === "commit" ? 1 : type === "tree" ? 2 : 3;
    let size = content.length;
    const head: number[] = [(t << 4) | (size & 0x0f)];
    size >>>= 4;
    while (size > 0) {
      head[head.length - 1]! |= 0x80;
      head.push(size & 0x7f);
      size >>>= 7;
    }
    this.pending.push(Buffer.from(head), deflateSync(content, { level: 1 }));
    this.pendingBytes += content.length;
    this.count++;
    if (this.pendingBytes > 8 << 20) await this.drain();
    return oid;
  }
  private async drain(): Promise<void> {
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.write(buf);
  }
  async finish(): Promise<void> {
    await this.drain();
    const header = Buffer.alloc(12);
    header.write("PACK", 0);
    header.writeUInt32BE(2, 4);
    header.writeUInt32BE(this.count, 8);
    await this.fh.write(header, 0, 12, 0);
    await this.fh.close();
  }
}

/** The subdirectory `name` of `dir`, created when missing. */
function subdir(dir: Dir, name: string): Dir {
  const cur = dir.get(name);
  if (cur instanceof Map) return cur;
  const next: Dir = new Map();
  dir.set(name, next);
  return next;
}

/** Tree state: nested maps; serialised bottom-up along the changed path only. */
type Dir = Map<string, { mode: string; oid: string } | Dir>;
function treeBytes(entries: [string, string, string][]): Buffer {
  // git sorts tree entries by name, directories compared as "name/"
  entries.sort((a, b) => {
    const x = a[0] === "40000" ? `${a[1]}/` : a[1];
    const y = b[0] === "40000" ? `${b[1]}/` : b[1];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return Buffer.concat(
    entries.flatMap(([mode, name, oid]) => [Buffer.from(`${mode} ${name}\0`), Buffer.from(oid, "hex")]),
  );
}

async function writeTree(
  pack: PackWriter,
  dir: Dir,
  cache: WeakMap<Dir, string>,
  dirty: Set<Dir>,
): Promise<string> {
  const cached = cache.get(dir);
  if (cached && !dirty.has(dir)) return cached;
  const entries: [string, string, string][] = [];
  for (const [name, v] of dir) {
    if (v instanceof Map) entries.push(["40000", name, await writeTree(pack, v, cache, dirty)]);
    else entries.push([v.mode, name, v.oid]);
  }
  const oid = await pack.add("tree", treeBytes(entries));
  cache.set(dir, oid);
  return oid;
}

function record(seq: number, t: number): EvidenceRecord {
  const users = ["ci-deploy", "agent-claude", "alice@clinic.example", "bob@clinic.example"];
  const resources = ["pods", "configmaps", "secrets", "deployments"];
  const decision = seq % 17 === 0 ? "deny" : seq % 29 === 0 ? "requireApproval" : "allow";
  const ts = `${new Date(t).toISOString().slice(0, 19)}.${String((seq * 37) % 1_000_000).padStart(6, "0")}Z`;
  const ns = `clinic-${seq % 13}`;
  const res = resources[seq % 4]!;
  const name = `obj-${seq % 977}`;
  const r: EvidenceRecord = {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: `6f1c${seq.toString(16).padStart(12, "0")}-aa00-4000-8000-000000000000`,
    stage: "ResponseComplete",
    requestURI: `/api/v1/namespaces/${ns}/${res}/${name}`,
    verb: seq % 5 === 0 ? "list" : "get",
    user: { username: users[seq % 4]!, groups: ["system:authenticated", "custos:agents"] },
    sourceIPs: ["10.12.0.4"],
    userAgent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef",
    objectRef: { resource: res, namespace: ns, name, apiVersion: "v1" },
    responseStatus: { code: decision === "allow" ? 200 : 403 },
    requestReceivedTimestamp: ts,
    stageTimestamp: ts,
    custos: {
      decision,
      effective: decision,
      enforcement: "enforce",
      ruleId:
        decision === "allow"
          ? "read-clinic-objects"
          : decision === "deny"
            ? "default-deny"
            : "secrets-need-approval",
      reason: decision === "allow" ? "agents may read clinic objects" : "no rule allows this",
      policyHash: "sha256:5d41402abc4b2a76b9719d911017c592a1b2c3d4e5f60718293a4b5c6d7e8f90",
      purpose: "incident-4711",
      jobRun: { repository: "clinic/platform", workflow: "deploy", runId: String(100000 + (seq % 5000)) },
      type: "call",
      gatewayId: GW,
      seq,
    },
  };
  if (seq % 7 === 0)
    r.custos.masking = {
      rules: ["phi.mrn"],
      paths: ["/data/mrn"],
      truncated: false,
      counts: { "phi.mrn": 1 },
    };
  return r;
}

interface Generated {
  commits: string[];
  lastCheckpoint: string;
  genSeconds: number;
  indexSeconds: number;
  bytes: number;
}

/** Write the repository: one pack of signed commits, trees and segment blobs, then index it. */
async function generate(gitDir: string, signer: ReturnType<typeof nodeSigner>): Promise<Generated> {
  await rm(gitDir, { recursive: true, force: true });
  await exec("git", ["init", "-q", "--bare", gitDir]);
  const t0 = performance.now();
  const packTmp = join(gitDir, "objects", "pack", "tmp-bench.pack");
  await mkdir(join(gitDir, "objects", "pack"), { recursive: true });
  const pack = await PackWriter.create(packTmp);
  const root: Dir = new Map();
  const cache = new WeakMap<Dir, string>();
  const person = (ts: number) => ({ name: `custos gateway ${GW}`, email: PRINCIPAL, timestamp: ts });
  const commits: string[] = [];
  let parent: string | null = null;
  const start = Date.UTC(2026, 0, 1);
  const spacing = 1200; // ms between records: 3 segments an hour at 1,000 per segment
  let chain: Uint8Array = CHAIN_ZERO;
  let lastRecordCommit = "";
  let lastCheckpoint = "";
  let bytes = 0;

  const commit = async (dirty: Set<Dir>, message: string, ts: number): Promise<string> => {
    const tree = await writeTree(pack, root, cache, dirty);
    const raw = signCommit(signer, {
      tree,
      parents: parent ? [parent] : [],
      author: person(ts),
      committer: person(ts),
      message,
    });
    const oid = await pack.add("commit", Buffer.from(raw));
    commits.push(oid);
    parent = oid;
    return oid;
  };

  root.set("README.md", {
    mode: "100644",
    oid: await pack.add("blob", Buffer.from("# custos evidence (bench)\n")),
  });
  await commit(
    new Set([root]),
    `evidence ${GW}: initialise\n\nCustos-Gateway: ${GW}\nCustos-Kind: init\nCustos-Last-Seq: 0\nCustos-Chain: ${"0".repeat(64)}\n`,
    start / 1000,
  );

  for (let first = 1; first <= TOTAL; first += PER) {
    const last = Math.min(TOTAL, first + PER - 1);
    let text = "";
    let firstTs = "";
    for (let seq = first; seq <= last; seq++) {
      const line = canonicalJson(record(seq, start + seq * spacing));
      if (seq === first) firstTs = (JSON.parse(line) as EvidenceRecord).stageTimestamp;
      chain = chainStep(chain, line);
      text += `${line}\n`;
    }
    const blob = Buffer.from(text);
    bytes += blob.length;
    const parts = [
      firstTs.slice(0, 4),
      firstTs.slice(5, 7),
      firstTs.slice(8, 10),
      firstTs.slice(11, 13),
      firstTs.slice(14, 16),
    ];
    const dirty = new Set<Dir>([root]);
    let d = subdir(root, "records");
    dirty.add(d);
    for (const p of parts) {
      d = subdir(d, p);
      dirty.add(d);
    }
    d.set(`${GW}-${String(first).padStart(12, "0")}.jsonl`, {
      mode: "100644",
      oid: await pack.add("blob", blob),
    });
    const chainHex = Buffer.from(chain).toString("hex");
    const ts = Math.floor((start + last * spacing) / 1000);
    lastRecordCommit = await commit(
      dirty,
      `evidence ${GW}: records ${first}..${last}\n\nCustos-Gateway: ${GW}\nCustos-Kind: records\nCustos-First-Seq: ${first}\nCustos-Last-Seq: ${last}\nCustos-Chain: ${chainHex}\n`,
      ts,
    );
    if (last % CHECKPOINT_EVERY === 0 || last === TOTAL) {
      const text = signCheckpoint(signer, PRINCIPAL, {
        gatewayId: GW,
        count: last,
        chain: chainHex,
        commit: lastRecordCommit,
        time: new Date(ts * 1000).toISOString(),
      });
      lastCheckpoint = text;
      const cp = subdir(root, "checkpoints");
      const g = subdir(cp, GW);
      g.set(`${String(last).padStart(12, "0")}.txt`, {
        mode: "100644",
        oid: await pack.add("blob", Buffer.from(text)),
      });
      await commit(
        new Set([root, cp, g]),
        `evidence ${GW}: checkpoint ${last}\n\nCustos-Gateway: ${GW}\nCustos-Kind: checkpoint\nCustos-Last-Seq: ${last}\nCustos-Chain: ${chainHex}\n`,
        ts,
      );
    }
    if ((last / PER) % 100 === 0) process.stderr.write(`generated ${last} records\r`);
  }
  await pack.finish();
  const genSeconds = (performance.now() - t0) / 1000;
  process.stderr.write("\nindexing pack...\n");
  const t1 = performance.now();
  await fixTrailer(packTmp);
  const { stdout: packName } = await exec("git", ["--git-dir", gitDir, "index-pack", packTmp], {
    maxBuffer: 1 << 20,
  });
  const name = packName.trim().replace(/^pack\t/, "");
  await rename(packTmp, join(gitDir, "objects", "pack", `pack-${name}.pack`));
  await rename(packTmp.replace(/\.pack$/, ".idx"), join(gitDir, "objects", "pack", `pack-${name}.idx`));
  await exec("git", ["--git-dir", gitDir, "update-ref", `refs/heads/evidence/${GW}`, parent!]);
  const indexSeconds = (performance.now() - t1) / 1000;
  return { commits, lastCheckpoint, genSeconds, indexSeconds, bytes };
}

async function main(): Promise<void> {
  const dir = KEEP || (await mkdtemp(join(tmpdir(), "custos-bench-verify-")));
  const gitDir = join(dir, "repo.git");
  await mkdir(dir, { recursive: true });
  const seed = new Uint8Array(createHash("sha256").update("custos bench verify key").digest());
  const signer = nodeSigner(seed);
  const allowed = `${formatAllowedSigner(PRINCIPAL, signer.publicKeyOpenSsh, ["git"])}\n`;
  const allowedFile = join(dir, "allowed_signers");
  await writeFile(allowedFile, allowed);

  const metaFile = join(dir, "meta.json");
  let meta: Generated;
  if (REUSE && (await readFile(metaFile, "utf8").catch(() => null))) {
    meta = JSON.parse(await readFile(metaFile, "utf8")) as Generated;
    process.stderr.write(`reusing ${gitDir} (${meta.commits.length} commits)\n`);
  } else {
    meta = await generate(gitDir, signer);
    if (KEEP) await writeFile(metaFile, JSON.stringify(meta));
  }
  const { commits, lastCheckpoint, genSeconds, indexSeconds, bytes } = meta;
  const checkpointFile = join(dir, "checkpoint.txt");
  await writeFile(checkpointFile, lastCheckpoint);

  // custos audit verify, best and median of --runs (the machine may be shared), without and with worker threads
  const modes: { workers: number | undefined; label: string }[] = [
    { workers: 0, label: "main thread only" },
    { workers: undefined, label: `${defaultWorkers()} parse worker(s)` },
  ];
  const results: {
    label: string;
    runs: number[];
    best: { seconds: number; cpuSeconds: number; rps: number };
    median: { seconds: number; cpuSeconds: number; rps: number };
  }[] = [];
  let v!: Awaited<ReturnType<typeof auditVerify>>;
  for (const mode of modes) {
    const runs: { seconds: number; cpuSeconds: number; rps: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`custos audit verify (${mode.label}), run ${i + 1}/${RUNS}...\n`);
      const cpu0 = process.cpuUsage();
      v = await auditVerify({
        repo: gitDir,
        allowedSigners: allowed,
        checkpoints: [{ source: checkpointFile, text: lastCheckpoint }],
        ...(mode.workers === undefined ? {} : { workers: mode.workers }),
      });
      const cpu = process.cpuUsage(cpu0);
      runs.push({
        seconds: v.stats.seconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        rps: v.stats.recordsPerSecond,
      });
      if (!v.ok) {
        process.stderr.write(`verify FAILED: ${JSON.stringify(v.findings.slice(0, 5), null, 2)}\n`);
        process.exitCode = 1;
      }
    }
    const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
    results.push({
      label: mode.label,
      runs: runs.map((r) => +r.seconds.toFixed(2)),
      best: sorted[0]!,
      median: sorted[Math.floor(sorted.length / 2)]!,
    });
  }

  // plain git: verify-commit (signatures only)
  process.stderr.write("git verify-commit...\n");
  const sample =
    GIT_SAMPLE > 0
      ? commits.filter((_, i) => i % Math.max(1, Math.floor(commits.length / GIT_SAMPLE)) === 0)
      : commits;
  const t2 = performance.now();
  for (let i = 0; i < sample.length; i += 200) {
    await exec(
      "git",
      [
        "--git-dir",
        gitDir,
        "-c",
        "gpg.format=ssh",
        "-c",
        `gpg.ssh.allowedSignersFile=${allowedFile}`,
        "verify-commit",
        ...sample.slice(i, i + 200),
      ],
      { maxBuffer: 1 << 26 },
    );
  }
  const gitSeconds = (performance.now() - t2) / 1000;
  const gitPerCommit = gitSeconds / sample.length;
  const gitAllSeconds = gitPerCommit * commits.length;

  const summary = {
    records: TOTAL,
    recordsPerCommit: PER,
    commits: commits.length,
    recordBytes: bytes,
    generateSeconds: +genSeconds.toFixed(2),
    indexPackSeconds: +indexSeconds.toFixed(2),
    custosVerify: results.map((r) => ({
      mode: r.label,
      ok: v.ok,
      runsSeconds: r.runs,
      bestSeconds: +r.best.seconds.toFixed(2),
      bestRecordsPerSecond: r.best.rps,
      medianRecordsPerSecond: r.median.rps,
      cpuSecondsBestRun: +r.best.cpuSeconds.toFixed(2),
      recordsPerCpuSecond: Math.round(TOTAL / r.best.cpuSeconds),
      megabytesPerSecond: +(v.stats.bytes / 1e6 / r.best.seconds).toFixed(1),
    })),
    checkpoint: v.checkpoints[0]?.status ?? null,
    loadAverage: loadavg().map((x) => +x.toFixed(2)),
    gitVerifyCommit: {
      commitsMeasured: sample.length,
      seconds: +gitSeconds.toFixed(2),
      secondsForAllCommits: +gitAllSeconds.toFixed(2),
      commitsPerSecond: Math.round(1 / gitPerCommit),
      recordsPerSecondEquivalent: Math.round(TOTAL / gitAllSeconds),
      checks: "signatures only",
    },
    repo: KEEP ? gitDir : "(deleted)",
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n\n`);
  const rows: [string, string, string, string][] = [
    ["tool", "time (s)", "records/s", "checks"],
    ...summary.custosVerify.map((c): [string, string, string, string] => [
      `custos audit verify, ${c.mode} (best of ${RUNS}; median ${c.medianRecordsPerSecond} rec/s)`,
      c.bestSeconds.toFixed(2),
      String(c.bestRecordsPerSecond),
      "signatures, committer, append-only, seq, time, shape, chain + checkpoint",
    ]),
    [
      `git verify-commit${sample.length < commits.length ? ` (${sample.length} sampled, extrapolated)` : ""}`,
      summary.gitVerifyCommit.secondsForAllCommits.toFixed(2),
      String(summary.gitVerifyCommit.recordsPerSecondEquivalent),
      "signatures only",
    ],
  ];
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join("  ")}\n`);
  if (!KEEP) await rm(dir, { recursive: true, force: true });
}

/** Recompute the pack's trailing SHA-1 over the finished file and append it. */
async function fixTrailer(path: string): Promise<void> {
  const { createReadStream } = await import("node:fs");
  const h = createHash("sha1");
  await new Promise<void>((resolve, reject) => {
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("end", resolve)
      .on("error", reject);
  });
  const fh = await open(path, "a");
  await fh.write(h.digest());
  await fh.close();
}

await main();
