/**
 * The evidence writer: an EvidenceSink that makes each record durable in a write-ahead log
 * before acknowledging it, then group-commits batches into an append-only git branch
 * `refs/heads/evidence/<gatewayId>` as SSH-signed commits (a new segment file per batch),
 * writes signed checkpoints, and fast-forward pushes to an optional smart-HTTP remote.
 * The format is specified in docs (evidence-format): keep the two in step.
 */
import * as nodeFs from "node:fs";
import { join } from "node:path";
import git from "isomorphic-git";
import type { EvidenceRecord, EvidenceSink } from "../../gateway/ports.ts";
import { canonicalJson } from "../../sdk/lib/canonical.ts";
import {
  CHAIN_ZERO,
  type Checkpoint,
  parseCheckpoint,
  type Signer,
  signCheckpoint,
  signCommit,
} from "../signer/index.ts";
import { acquireLock, type WriterLock } from "./lock.ts";
import { type Fs, fsyncPath, ObjectStore } from "./objects.ts";
import {
  type FetchLike,
  newObjects,
  type RemoteSpec,
  receivePack,
  redactCredentials,
  remoteRefs,
  buildPack,
} from "./push.ts";
import { evidenceReadme } from "./readme.ts";
import { inlineHasher, type SegmentHasher } from "./segment-hasher.ts";
import { MutableTree } from "./tree.ts";
import { EvidenceError, formatArtifactLine, formatRecordLine, Wal, type WalEntry } from "./wal.ts";

export type Durability = "process" | "machine";

export interface EvidenceRepoOptions {
  /** the repository (bare, or a work tree with .git); created bare when missing or empty */
  dir: string;
  gatewayId: string;
  signer: Signer;
  /** committer e-mail and checkpoint principal; default `<gatewayId>@custos.local` */
  principal?: string;
  /** "process" (default): write(2) before acknowledging; "machine": fsync before acknowledging (group fsync) */
  durability?: Durability;
  fs?: Fs;
  /** milliseconds since the epoch; default Date.now (composition roots only) */
  clock?: () => number;
  /**
   * records per commit at most (default 4,000). Under light load the delay closes a batch
   * first; under heavy load a larger batch spreads a commit's fixed cost (trees, commit, ref,
   * about ten file creations of ~0.3–0.7 ms each on ext4) over more records.
   */
  batchMaxRecords?: number;
  /** how long the first record of a batch waits for company before its commit (default 200 ms) */
  batchMaxDelayMs?: number;
  checkpointEvery?: number;
  checkpointIntervalMs?: number;
  remote?: RemoteSpec;
  fetch?: FetchLike;
  onCheckpoint?: (text: string, checkpoint: Checkpoint) => void;
  /** called after each record commit (metrics, benchmarks) */
  onCommit?: (info: { oid: string; firstSeq: number; lastSeq: number }) => void;
  /** structured log sink; default JSON lines on stderr */
  log?: (entry: Record<string, unknown>) => void;
  /** WAL location; default `<gitdir>/custos/wal` */
  walDir?: string;
  walRotateBytes?: number;
  /** appends wait while this many acknowledged records await their commit (default 200,000) */
  maxQueuedRecords?: number;
  /** how segments are sealed (chain, blob id, deflate); default on the writer's thread (tests inject failures) */
  segmentHasher?: SegmentHasher;
  /** how long close() waits for a last push (ms, default 5000) */
  closePushTimeoutMs?: number;
}

export interface WriterStats {
  gatewayId: string;
  branch: string;
  /** last sequence number assigned (acknowledged or about to be) */
  seq: number;
  committedSeq: number;
  head: string | null;
  commits: number;
  checkpoints: number;
  lastCheckpointSeq: number;
  queued: number;
  /** appends waiting for room (backpressure), not yet in the WAL */
  held: number;
  remoteHead: string | null;
  pushes: number;
  pushFailures: number;
  lastPushError: string | null;
  replayed: number;
  /** why the writer refuses records right now (it retries a transient failure by itself) */
  failed: string | null;
  /** transient failures recovered from without a restart */
  recoveries: number;
}

export interface EvidenceWriter extends EvidenceSink {
  /** resolves when every record appended before the call is committed */
  flush(): Promise<void>;
  /** store a compiled policy (GatewayConfig JSON) under policies/<hash>.json */
  recordPolicy(config: string | { policyHash: string }): Promise<void>;
  /** write a checkpoint now (after flushing); null when nothing new since the last one */
  checkpoint(): Promise<string | null>;
  /** resolves when the remote branch equals the local head (rejects after timeoutMs) */
  pushed(timeoutMs?: number): Promise<void>;
  stats(): WriterStats;
  health(): { ok: boolean; reason: string };
}

const GATEWAY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$/;

type Pending =
  | { kind: "R"; record: EvidenceRecord; resolve: (v: { seq: number }) => void; reject: (e: unknown) => void }
  | {
      kind: "A";
      path: string;
      content: string;
      resolve: (v: { seq: number }) => void;
      reject: (e: unknown) => void;
    };

interface Trailers {
  gateway?: string;
  kind?: string;
  lastSeq?: number;
  chain?: string;
}

function parseTrailers(message: string): Trailers {
  const t: Trailers = {};
  for (const line of message.split("\n")) {
    const m = /^(Custos-[A-Za-z-]+): (.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "Custos-Gateway") t.gateway = m[2]!;
    else if (m[1] === "Custos-Kind") t.kind = m[2]!;
    else if (m[1] === "Custos-Last-Seq") t.lastSeq = Number(m[2]);
    else if (m[1] === "Custos-Chain") t.chain = m[2]!;
  }
  return t;
}

const pad12 = (n: number): string => String(n).padStart(12, "0");
const pad2 = (n: number): string => String(n).padStart(2, "0");
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const EMPTY = Buffer.alloc(0);

function defaultLog(entry: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ component: "evidence", ...entry })}\n`);
}

async function resolveGitdir(fs: Fs, dir: string): Promise<{ gitdir: string; created: boolean }> {
  const dotgit = join(dir, ".git");
  if (fs.existsSync(dotgit) && fs.statSync(dotgit).isDirectory()) return { gitdir: dotgit, created: false };
  if (fs.existsSync(join(dir, "HEAD")) && fs.existsSync(join(dir, "objects")))
    return { gitdir: dir, created: false };
  if (fs.existsSync(dir) && (await fs.promises.readdir(dir)).length > 0) {
    throw new EvidenceError(
      "EVIDENCE_NOT_A_REPO",
      `${dir} exists and is neither a git repository nor empty; point the evidence repo at an empty directory or a git repository`,
      { dir },
    );
  }
  return { gitdir: dir, created: true };
}

export async function openEvidenceRepo(opts: EvidenceRepoOptions): Promise<EvidenceWriter> {
  if (!GATEWAY_ID.test(opts.gatewayId)) {
    throw new EvidenceError(
      "EVIDENCE_GATEWAY_ID",
      `gatewayId "${opts.gatewayId}" must match ${GATEWAY_ID}; use letters, digits, ".", "_" or "-"`,
      {
        gatewayId: opts.gatewayId,
      },
    );
  }
  const w = new Writer(opts);
  await w.start();
  return w;
}

class Writer implements EvidenceWriter {
  private readonly fs: Fs;
  private readonly clock: () => number;
  private readonly gatewayId: string;
  private readonly principal: string;
  private readonly branch: string;
  private readonly machine: boolean;
  private readonly batchMax: number;
  private readonly batchDelay: number;
  private readonly maxQueued: number;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private readonly log: (entry: Record<string, unknown>) => void;
  private readonly fetchFn: FetchLike;

  private gitdir = "";
  private store!: ObjectStore;
  private tree!: MutableTree;
  private wal!: Wal;
  private lock: WriterLock | null = null;
  private hasher: SegmentHasher = inlineHasher;

  private head: string | null = null;
  private refDirReady = false;
  private lastRecordCommit = "";
  private committedSeq = 0;
  private chain: Uint8Array = CHAIN_ZERO;
  private nextSeq = 1;
  private commits = 0;
  private checkpoints = 0;
  private lastCheckpointSeq = 0;
  private lastCheckpointAt = 0;
  private replayed = 0;
  private walLow = 0;

  // append side
  private pending: Pending[] = [];
  private held: Pending[] = [];
  private flushScheduled = false;
  private syncing = false;
  private awaitingSync: {
    resolve: (v: { seq: number }) => void;
    reject: (e: unknown) => void;
    seq: number;
  }[] = [];
  private failure: Error | null = null;
  private recoverTimer: NodeJS.Timeout | null = null;
  private recovering: Promise<void> | null = null;
  private recoverAttempts = 0;
  private recoveries = 0;
  private closing = false;
  private closed = false;

  // commit side
  private queue: WalEntry[] = [];
  private enqueued = 0;
  private committed = 0;
  private due = false;
  private delayTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private flushWaiters: { target: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private loopDone: Promise<void> = Promise.resolve();
  private repoMutex: Promise<unknown> = Promise.resolve();
  private checkpointTimer: NodeJS.Timeout | null = null;

  // push side
  private pushing = false;
  private pushWanted = false;
  private remoteHead: string | null | undefined = undefined;
  private pushes = 0;
  private pushFailures = 0;
  private lastPushError: string | null = null;
  private pushSleep: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private pushIdle: (() => void)[] = [];

  constructor(private readonly opts: EvidenceRepoOptions) {
    this.fs = opts.fs ?? nodeFs;
    this.clock = opts.clock ?? Date.now;
    this.gatewayId = opts.gatewayId;
    this.principal = opts.principal ?? `${opts.gatewayId}@custos.local`;
    this.branch = `refs/heads/evidence/${opts.gatewayId}`;
    this.machine = opts.durability === "machine";
    this.batchMax = Math.max(1, opts.batchMaxRecords ?? 4000);
    this.batchDelay = Math.max(0, opts.batchMaxDelayMs ?? 200);
    this.maxQueued = Math.max(this.batchMax, opts.maxQueuedRecords ?? 200_000);
    this.checkpointEvery = Math.max(1, opts.checkpointEvery ?? 100_000);
    this.checkpointIntervalMs = opts.checkpointIntervalMs ?? 600_000;
    this.log = opts.log ?? defaultLog;
    this.fetchFn = opts.fetch ?? (globalThis.fetch as unknown as FetchLike);
  }

  // ---------------------------------------------------------------- start-up

  async start(): Promise<void> {
    const { gitdir, created } = await resolveGitdir(this.fs, this.opts.dir);
    this.gitdir = gitdir;
    if (created)
      await git.init({
        fs: this.fs,
        dir: gitdir,
        gitdir,
        bare: true,
        defaultBranch: `evidence/${this.gatewayId}`,
      });
    const stateDir = join(gitdir, "custos");
    await this.fs.promises.mkdir(stateDir, { recursive: true });
    this.lock = acquireLock(this.fs, join(stateDir, "writer.lock"));
    this.hasher = this.opts.segmentHasher ?? inlineHasher;
    try {
      await this.load();
    } catch (err) {
      (this.wal as Wal | undefined)?.close(); // opened before the failure, or not
      this.lock.release();
      await this.hasher.close();
      throw err;
    }
  }

  private async load(): Promise<void> {
    this.store = new ObjectStore(this.fs, this.gitdir);
    if (this.opts.remote) this.store.enableCache(128 * 1024 * 1024);
    await this.loadState();
    this.loopDone = this.commitLoop();
    if (this.checkpointIntervalMs > 0 && Number.isFinite(this.checkpointIntervalMs)) {
      this.checkpointTimer = setInterval(
        () => {
          if (
            !this.failure &&
            this.committedSeq > this.lastCheckpointSeq &&
            this.clock() - this.lastCheckpointAt >= this.checkpointIntervalMs
          ) {
            void this.serialized(() => this.writeCheckpoint()).catch((err) => this.fail(err));
          }
        },
        Math.min(this.checkpointIntervalMs, 60_000),
      );
      this.checkpointTimer.unref();
    }
    this.kickPush();
  }

  /** the branch's head, tree and chain, and the WAL (replayed into the queue): at start and at a recovery */
  private async loadState(): Promise<void> {
    let head: string | null = null;
    try {
      head = await git.resolveRef({ fs: this.fs, gitdir: this.gitdir, ref: this.branch });
    } catch (err) {
      if ((err as { code?: string }).code !== "NotFoundError") throw err;
    }
    if (head !== null) {
      const { content } = await this.store.read(head);
      const text = content.toString("utf8");
      const t = parseTrailers(text.slice(text.indexOf("\n\n") + 2));
      if (
        t.gateway !== this.gatewayId ||
        t.lastSeq === undefined ||
        !Number.isSafeInteger(t.lastSeq) ||
        !/^[0-9a-f]{64}$/.test(t.chain ?? "")
      ) {
        throw new EvidenceError(
          "EVIDENCE_FOREIGN_HEAD",
          `${this.branch} head ${head} is not a custos evidence commit of gateway ${this.gatewayId} (no Custos-Gateway/Custos-Last-Seq/Custos-Chain trailers); use an evidence branch written by custos`,
          { head },
        );
      }
      this.head = head;
      this.committedSeq = t.lastSeq;
      this.chain = new Uint8Array(Buffer.from(t.chain!, "hex"));
      this.lastRecordCommit = await this.findLastRecordCommit(head, text, t);
      this.tree = await MutableTree.load(this.store, /^tree ([0-9a-f]{40})$/m.exec(text)![1]!);
      const cps = (await this.tree.list(`checkpoints/${this.gatewayId}`))
        .map((n) => Number(n.replace(/\.txt$/, "")))
        .filter((n) => Number.isSafeInteger(n));
      this.lastCheckpointSeq = cps.length > 0 ? Math.max(...cps) : 0;
    } else {
      this.tree = await MutableTree.load(this.store, null);
      await this.fixHead();
    }
    this.lastCheckpointAt = this.clock();

    const walDir = this.opts.walDir ?? join(this.gitdir, "custos", "wal");
    const walOpts =
      this.opts.walRotateBytes !== undefined
        ? { machine: this.machine, rotateBytes: this.opts.walRotateBytes }
        : { machine: this.machine };
    const { wal, entries } = await Wal.open(this.fs, walDir, walOpts);
    this.wal = wal;
    this.assertOwnWal(walDir, entries);
    this.walLow = entries[0]?.file ?? wal.fileNo;
    let replayed = 0;
    let expect = this.committedSeq + 1;
    let maxSeq = this.committedSeq;
    for (const e of entries) {
      if (e.kind === "R") {
        if (e.seq <= this.committedSeq) continue;
        if (e.seq !== expect) {
          throw new EvidenceError(
            "EVIDENCE_WAL_GAP",
            `the write-ahead log continues at seq ${e.seq} but the branch is committed up to ${expect - 1}; records ${expect}..${e.seq - 1} are missing. Keep the WAL (${walDir}) and the repo together and report this`,
            { expected: expect, found: e.seq },
          );
        }
        expect++;
        maxSeq = e.seq;
      }
      this.queue.push(e);
      this.enqueued++;
      replayed++;
    }
    this.replayed += replayed;
    this.nextSeq = maxSeq + 1;
    if (this.head === null) await this.commitInit();
    if (replayed > 0) {
      this.due = true;
      this.log({
        level: "info",
        msg: "replaying write-ahead log",
        entries: replayed,
        committedSeq: this.committedSeq,
      });
    }
  }

  /**
   * The WAL holds no entry of another gateway: replayed here, its records would be committed
   * under this gateway's branch and sequence (the WAL's place does not depend on the gatewayId).
   */
  private assertOwnWal(walDir: string, entries: WalEntry[]): void {
    const mine = Buffer.from(`"gatewayId":${JSON.stringify(this.gatewayId)}`);
    for (const e of entries) {
      let other: string | undefined;
      if (e.kind === "A")
        other = e.gateway !== undefined && e.gateway !== this.gatewayId ? e.gateway : undefined;
      else if (!e.bytes.includes(mine))
        other = String((JSON.parse(e.bytes.toString("utf8")) as EvidenceRecord).custos?.gatewayId ?? "?");
      if (other === undefined || other === this.gatewayId) continue;
      throw new EvidenceError(
        "EVIDENCE_WAL_FOREIGN",
        `the write-ahead log ${walDir} holds entries of gateway ${other}, not ${this.gatewayId}: start gateway ${other} once on this repository to commit them (a clean stop empties the log), or give ${this.gatewayId} its own repository or walDir`,
        { walDir, gatewayId: this.gatewayId, walGatewayId: other },
      );
    }
  }

  private async findLastRecordCommit(head: string, text: string, t: Trailers): Promise<string> {
    let oid = head;
    let body = text;
    let tr = t;
    for (let i = 0; i < 10_000; i++) {
      if (tr.kind === "records" || tr.kind === "init") return tr.kind === "records" ? oid : "";
      const parent = /^parent ([0-9a-f]{40})$/m.exec(body)?.[1];
      if (!parent) return "";
      oid = parent;
      body = (await this.store.read(oid)).content.toString("utf8");
      tr = parseTrailers(body.slice(body.indexOf("\n\n") + 2));
    }
    return "";
  }

  /** point HEAD at our branch when it names an unborn branch and no branch exists yet */
  private async fixHead(): Promise<void> {
    const headPath = join(this.gitdir, "HEAD");
    const text = this.fs.readFileSync(headPath, "utf8").trim();
    const target = /^ref: (.+)$/.exec(text)?.[1];
    if (!target || target === this.branch) return;
    const branches = await git.listBranches({ fs: this.fs, gitdir: this.gitdir });
    if (branches.length === 0) await this.writeFileAtomic(headPath, `ref: ${this.branch}\n`);
  }

  // ---------------------------------------------------------------- EvidenceSink

  append(record: EvidenceRecord): Promise<{ seq: number }> {
    return new Promise((resolve, reject) => {
      const err = this.refusal();
      if (err) return reject(err);
      this.admit({ kind: "R", record, resolve, reject });
    });
  }

  appendArtifact(artifact: {
    kind: "session";
    name: string;
    content: string;
    auditID: string;
  }): Promise<void> {
    if (!SAFE_NAME.test(artifact.auditID)) {
      return Promise.reject(
        new EvidenceError(
          "EVIDENCE_ARTIFACT_NAME",
          `auditID "${artifact.auditID}" is not a safe file name; expected ${SAFE_NAME}`,
          {
            auditID: artifact.auditID,
          },
        ),
      );
    }
    const d = new Date(this.clock());
    const path = `sessions/${d.getUTCFullYear()}/${pad2(d.getUTCMonth() + 1)}/${pad2(d.getUTCDate())}/${artifact.auditID}.cast`;
    return this.appendFile(path, artifact.content);
  }

  recordPolicy(config: string | { policyHash: string }): Promise<void> {
    let content: string;
    let hash: unknown;
    if (typeof config === "string") {
      content = config.endsWith("\n") ? config : `${config}\n`;
      try {
        hash = (JSON.parse(config) as { policyHash?: unknown }).policyHash;
      } catch {
        hash = undefined;
      }
    } else {
      content = `${canonicalJson(config)}\n`;
      hash = config.policyHash;
    }
    if (typeof hash !== "string" || !/^sha256:[0-9a-f]{64}$/.test(hash)) {
      return Promise.reject(
        new EvidenceError(
          "EVIDENCE_POLICY_HASH",
          'recordPolicy expects a compiled GatewayConfig JSON with "policyHash": "sha256:<64 hex>"',
          {},
        ),
      );
    }
    return this.appendFile(`policies/${hash.slice("sha256:".length)}.json`, content);
  }

  private appendFile(path: string, content: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const err = this.refusal();
      if (err) return reject(err);
      this.admit({ kind: "A", path, content, resolve: () => resolve(), reject });
    });
  }

  /**
   * Backpressure: while more than `maxQueuedRecords` written records wait for their commit, new
   * appends wait (in order) before reaching the WAL, so a slow disk bounds memory instead of
   * growing it; the calls they belong to are answered later, never dropped.
   */
  private admit(p: Pending): void {
    if (this.held.length > 0 || this.queue.length >= this.maxQueued) {
      this.held.push(p);
      return;
    }
    this.pending.push(p);
    this.scheduleWalFlush();
  }

  private releaseHeld(all = false): void {
    if (this.held.length === 0) return;
    const room = all ? this.held.length : this.maxQueued - this.queue.length;
    if (room <= 0) return;
    for (const p of this.held.splice(0, room)) this.pending.push(p);
    this.scheduleWalFlush();
  }

  private refusal(): Error | null {
    if (this.failure) {
      return new EvidenceError(
        "EVIDENCE_WRITER_FAILED",
        this.recoverable(this.failure)
          ? `the evidence writer failed (${this.failure.message}); it retries by itself and accepts records again once the disk does`
          : `the evidence writer failed earlier (${this.failure.message}); restart it to replay the log`,
        {
          cause: this.failure.message,
        },
      );
    }
    if (this.closing)
      return new EvidenceError(
        "EVIDENCE_CLOSED",
        "the evidence writer is closed; open it again to append",
        {},
      );
    return null;
  }

  private scheduleWalFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.walFlush());
  }

  /** write every pending append to the WAL with one write(2); acknowledge (process) or group-fsync (machine) */
  private walFlush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    if (this.failure) {
      const err = this.refusal();
      for (const p of batch) p.reject(err);
      return;
    }
    const entries: WalEntry[] = [];
    const seqs: number[] = [];
    const accepted: boolean[] = [];
    try {
      if (this.wal.needsRotation) {
        this.wal.rotate(); // fsyncs the old file in machine mode: everything written so far is durable
        for (const a of this.awaitingSync.splice(0)) a.resolve({ seq: a.seq });
        if (!this.syncing) this.wal.closeRetired();
      }
      const file = this.wal.fileNo;
      let seq = this.nextSeq;
      // one string, one utf-8 encoding, one buffer for every line of this flush: the WAL gets it
      // with one write(2) and each record's entry is a view into it (its segment bytes later)
      let text = "";
      for (const p of batch) {
        if (p.kind === "R") {
          let line: string;
          try {
            line = canonicalJson({
              ...p.record,
              custos: { ...p.record.custos, gatewayId: this.gatewayId, seq },
            });
          } catch (err) {
            // a record that cannot be serialised (BigInt, cycle) fails its own call, not the writer
            accepted.push(false);
            p.reject(
              new EvidenceError(
                "EVIDENCE_RECORD_INVALID",
                `the evidence record cannot be serialised as JSON: ${(err as Error).message}`,
                {
                  auditID: p.record.auditID,
                },
              ),
            );
            continue;
          }
          accepted.push(true);
          text += formatRecordLine(seq, line);
          entries.push({ kind: "R", seq, bytes: EMPTY, file });
          seqs.push(seq);
          seq++;
        } else {
          accepted.push(true);
          text += formatArtifactLine(p.path, p.content, this.gatewayId);
          entries.push({ kind: "A", path: p.path, content: p.content, file });
          seqs.push(seq - 1);
        }
      }
      if (entries.length > 0) {
        const buf = Buffer.from(text, "utf8");
        // every line ends at its own "\n" (canonical JSON and artefact lines never contain one)
        let at = 0;
        for (const e of entries) {
          const nl = buf.indexOf(0x0a, at);
          if (e.kind === "R") e.bytes = buf.subarray(buf.indexOf(0x20, at) + 1, nl + 1);
          at = nl + 1;
        }
        this.wal.writeSync(buf);
        this.wal.assertLinked();
      }
      this.nextSeq = seq;
    } catch (err) {
      this.fail(err);
      batch.forEach((p, i) => {
        if (accepted[i] !== false) p.reject(this.refusal());
      });
      return;
    }
    for (const e of entries) this.enqueue(e);
    const ok = batch.filter((_, i) => accepted[i]);
    if (this.machine) {
      ok.forEach((p, i) => {
        this.awaitingSync.push({ resolve: p.resolve, reject: p.reject, seq: seqs[i]! });
      });
      this.startSync();
    } else {
      ok.forEach((p, i) => {
        p.resolve({ seq: seqs[i]! });
      });
    }
  }

  /** one fdatasync shared by every append written before it started */
  private startSync(): void {
    if (this.syncing || this.awaitingSync.length === 0) return;
    this.syncing = true;
    const group = this.awaitingSync;
    this.awaitingSync = [];
    this.wal
      .sync()
      .then(() => this.wal.assertLinked())
      .then(
        () => {
          this.syncing = false;
          this.wal.closeRetired();
          for (const a of group) a.resolve({ seq: a.seq });
          this.startSync();
        },
        (err) => {
          this.syncing = false;
          this.fail(err);
          // acknowledgements never happen for records whose fsync failed
          const e = this.refusal();
          for (const a of [...group, ...this.awaitingSync.splice(0)]) a.reject(e);
        },
      );
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.log({
      level: "error",
      msg: "evidence writer failed",
      code: (err as { code?: string }).code,
      error: this.failure.message,
    });
    for (const w of this.flushWaiters.splice(0)) w.reject(this.refusal());
    for (const p of this.held.splice(0)) p.reject(this.refusal());
    this.kickCommitter();
    if (this.recoverable(this.failure)) this.scheduleRecovery();
  }

  /**
   * An I/O error (a full disk, a quota, EIO) may pass; a broken invariant (a deleted WAL, a gap,
   * a foreign head, a corrupt line) does not, and needs an operator.
   */
  private recoverable(err: Error): boolean {
    return !(err instanceof EvidenceError);
  }

  private scheduleRecovery(): void {
    if (this.closing || this.recoverTimer || this.recovering) return;
    const delay = Math.min(30_000, 100 * 2 ** Math.min(this.recoverAttempts, 9)) * (0.75 + Math.random() / 2);
    this.recoverTimer = setTimeout(() => {
      this.recoverTimer = null;
      this.recovering = this.recover().finally(() => {
        this.recovering = null;
        if (this.failure && this.recoverable(this.failure)) this.scheduleRecovery();
      });
    }, delay);
    this.recoverTimer.unref();
  }

  /**
   * Recover from a transient failure once the disk takes writes again: cut from the current WAL
   * file every line that was not acknowledged (they belong to refused calls), reload the branch
   * and replay the WAL into a new file, as a restart would. Records refused meanwhile used no
   * sequence number, so the sequence goes on without a gap.
   */
  private async recover(): Promise<void> {
    if (this.closing || !this.failure) return;
    if (this.syncing || this.awaitingSync.length > 0) {
      // a group fsync settles first (appends written before the failure: they may still be acknowledged)
      this.startSync();
      return;
    }
    this.recoverAttempts++;
    try {
      await this.loopDone;
      await this.serialized(async () => {
        if (!this.lock?.held())
          throw new EvidenceError(
            "EVIDENCE_LOCK_LOST",
            "the writer lock is gone (the repository was removed?)",
          );
        this.wal.truncateToAcknowledged();
        this.wal.close();
        if (this.delayTimer) clearTimeout(this.delayTimer);
        this.delayTimer = null;
        this.queue = [];
        this.enqueued = 0;
        this.committed = 0;
        this.due = false;
        this.head = null;
        this.committedSeq = 0;
        this.chain = CHAIN_ZERO;
        this.lastRecordCommit = "";
        this.refDirReady = false;
        await this.loadState();
        if (this.head === null)
          throw new EvidenceError("EVIDENCE_RECOVERY", "internal: no head after reload");
      });
    } catch (err) {
      this.log({
        level: "warn",
        msg: "evidence writer recovery failed; will retry",
        code: (err as { code?: string }).code,
        error: (err as Error).message,
        attempt: this.recoverAttempts,
      });
      if (err instanceof EvidenceError && err.code === "EVIDENCE_LOCK_LOST") this.failure = err; // for good
      return;
    }
    this.log({
      level: "info",
      msg: "evidence writer recovered",
      after: this.failure.message,
      attempts: this.recoverAttempts,
      committedSeq: this.committedSeq,
      nextSeq: this.nextSeq,
    });
    this.failure = null;
    this.recoverAttempts = 0;
    this.recoveries++;
    this.loopDone = this.commitLoop();
    this.kickCommitter();
    this.kickPush();
  }

  /** for readiness probes: false while the writer refuses records */
  health(): { ok: boolean; reason: string } {
    if (this.failure)
      return {
        ok: false,
        reason: this.recoverable(this.failure)
          ? `the evidence writer failed (${this.failure.message}); retrying`
          : `the evidence writer failed (${this.failure.message}); restart it`,
      };
    if (this.closing) return { ok: false, reason: "the evidence writer is closed" };
    return { ok: true, reason: "ok" };
  }

  // ---------------------------------------------------------------- committing

  private enqueue(e: WalEntry): void {
    this.queue.push(e);
    this.enqueued++;
    // `due`: an earlier delay expired, so whatever is queued is late: commit without waiting again
    if (this.queue.length >= this.batchMax || this.due) this.kickCommitter();
    else if (!this.delayTimer) {
      this.delayTimer = setTimeout(() => {
        this.delayTimer = null;
        this.due = true;
        this.kickCommitter();
      }, this.batchDelay);
    }
  }

  private kickCommitter(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.repoMutex.then(fn, fn);
    this.repoMutex = run.catch(() => undefined);
    return run;
  }

  private async commitLoop(): Promise<void> {
    for (;;) {
      if (this.failure) return;
      const n = this.queue.length;
      const flushWanted = this.flushWaiters.length > 0;
      if (n > 0 && (n >= this.batchMax || this.due || flushWanted || this.closing)) {
        const batch = this.takeBatch();
        try {
          await this.serialized(() => this.commitBatch(batch));
        } catch (err) {
          this.fail(err);
          return;
        }
        this.committed += batch.length;
        if (this.queue.length === 0) this.due = false;
        this.releaseHeld();
        this.resolveFlushWaiters();
        try {
          if (this.committedSeq - this.lastCheckpointSeq >= this.checkpointEvery)
            await this.serialized(() => this.writeCheckpoint());
          await this.cleanupWal();
        } catch (err) {
          this.fail(err);
          return;
        }
        this.kickPush();
        continue;
      }
      if (n === 0 && this.closing) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private takeBatch(): WalEntry[] {
    let records = 0;
    let i = 0;
    while (i < this.queue.length) {
      if (this.queue[i]!.kind === "R") {
        if (records === this.batchMax) break;
        records++;
      }
      i++;
    }
    return this.queue.splice(0, i);
  }

  private resolveFlushWaiters(): void {
    const keep: typeof this.flushWaiters = [];
    for (const w of this.flushWaiters) {
      if (this.committed >= w.target) w.resolve();
      else keep.push(w);
    }
    this.flushWaiters = keep;
  }

  private person(): { name: string; email: string; timestamp: number; timezoneOffset: number } {
    return {
      name: `custos gateway ${this.gatewayId}`,
      email: this.principal,
      timestamp: Math.floor(this.clock() / 1000),
      timezoneOffset: 0,
    };
  }

  private message(subject: string, kind: string, extra: string[]): string {
    return [
      `evidence ${this.gatewayId}: ${subject}`,
      "",
      `Custos-Gateway: ${this.gatewayId}`,
      `Custos-Kind: ${kind}`,
      ...extra,
      `Custos-Last-Seq: ${this.committedSeq}`,
      `Custos-Chain: ${hex(this.chain)}`,
      "",
    ].join("\n");
  }

  private async writeCommit(tree: string, message: string): Promise<string> {
    const who = this.person();
    const raw = signCommit(this.opts.signer, {
      tree,
      parents: this.head ? [this.head] : [],
      author: who,
      committer: who,
      message,
    });
    const oid = await this.store.write("commit", Buffer.from(raw, "utf8"));
    // machine durability: every object the new head reaches is on disk before the ref names it,
    // so after a power loss the ref is the old or the new head and both are complete
    if (this.machine) await this.store.syncWritten();
    const refPath = join(this.gitdir, this.branch);
    if (!this.refDirReady) {
      this.fs.mkdirSync(join(refPath, ".."), { recursive: true }); // may be missing after `git pack-refs`
      this.refDirReady = true;
    }
    await this.writeFileAtomic(refPath, `${oid}\n`);
    this.head = oid;
    this.commits++;
    return oid;
  }

  /** write + rename: readers (git, a crash) see the old or the new content, never a torn one */
  private async writeFileAtomic(path: string, content: string): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}`;
    if (this.machine) {
      // the new content is durable before the rename can replace the old one
      const fd = this.fs.openSync(tmp, "w");
      try {
        this.fs.writeSync(fd, content);
        await new Promise<void>((resolve, reject) =>
          this.fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())),
        );
      } finally {
        this.fs.closeSync(fd);
      }
    } else this.fs.writeFileSync(tmp, content);
    this.fs.renameSync(tmp, path);
  }

  private async commitInit(): Promise<void> {
    const readme = await this.store.write(
      "blob",
      Buffer.from(evidenceReadme(this.gatewayId, this.principal, this.opts.signer.publicKeyOpenSsh)),
    );
    await this.tree.add("README.md", readme);
    const tree = await this.tree.write();
    await this.writeCommit(tree, this.message("initialise", "init", []));
  }

  private async addFile(path: string, content: string): Promise<boolean> {
    const blob = await this.store.write("blob", Buffer.from(content, "utf8"));
    let p = path;
    for (let n = 2; ; n++) {
      const existing = await this.tree.get(p);
      if (existing === blob) return false; // replayed, or the same policy again
      if (existing === null) break;
      p = path.replace(/(\.[a-z]+)$/, `.${n}$1`); // never overwrite a different file
    }
    await this.tree.add(p, blob);
    return true;
  }

  private async commitBatch(batch: WalEntry[]): Promise<void> {
    let changed = false;
    const lines: Buffer[] = [];
    let first = 0;
    let last = 0;
    for (const e of batch) {
      if (e.kind === "A") {
        if (await this.addFile(e.path, e.content)) changed = true;
        continue;
      }
      if (e.seq <= this.committedSeq) continue; // committed before a crash
      if (e.seq !== (last === 0 ? this.committedSeq + 1 : last + 1)) {
        throw new EvidenceError(
          "EVIDENCE_SEQ_ORDER",
          `internal: record seq ${e.seq} does not follow ${last || this.committedSeq}`,
          {
            seq: e.seq,
          },
        );
      }
      if (first === 0) first = e.seq;
      last = e.seq;
      lines.push(e.bytes);
    }
    if (lines.length > 0) {
      const segment = lines.length === 1 ? lines[0]! : Buffer.concat(lines);
      // chained hash, blob id and deflate: on the segment worker while appends go on here
      const sealed = await this.hasher.seal(this.chain, segment);
      const chain = sealed.chain;
      const firstLine = lines[0]!.toString("utf8");
      const ts = Date.parse((JSON.parse(firstLine) as { stageTimestamp?: string }).stageTimestamp ?? "");
      const d = new Date(Number.isFinite(ts) ? ts : this.clock());
      // a minute level under the hour bounds every directory (≤ 60 / 24 / 31 entries above the
      // minute): at 20 commits/s an hour-level directory would grow to 72,000 entries (a ~4 MB
      // tree rewritten by every commit)
      const path = `records/${d.getUTCFullYear()}/${pad2(d.getUTCMonth() + 1)}/${pad2(d.getUTCDate())}/${pad2(d.getUTCHours())}/${pad2(d.getUTCMinutes())}/${this.gatewayId}-${pad12(first)}.jsonl`;
      const blob = this.store.writeDeflated("blob", sealed.oid, segment, sealed.deflated);
      await this.tree.add(path, blob);
      const tree = await this.tree.write();
      this.committedSeq = last;
      this.chain = chain;
      this.lastRecordCommit = await this.writeCommit(
        tree,
        this.message(`records ${first}..${last}`, "records", [`Custos-First-Seq: ${first}`]),
      );
      try {
        this.opts.onCommit?.({ oid: this.lastRecordCommit, firstSeq: first, lastSeq: last });
      } catch (err) {
        this.log({ level: "warn", msg: "onCommit callback threw", error: (err as Error).message });
      }
      if (this.commits % 64 === 0) {
        const keep = [path, `checkpoints/${this.gatewayId}/x`];
        this.tree.prune((p) => keep.some((k) => k.startsWith(`${p}/`)));
      }
    } else if (changed) {
      const tree = await this.tree.write();
      await this.writeCommit(tree, this.message("artefacts", "artefacts", []));
    }
  }

  private async writeCheckpoint(): Promise<string | null> {
    if (
      this.committedSeq === this.lastCheckpointSeq ||
      this.committedSeq === 0 ||
      this.lastRecordCommit === ""
    )
      return null;
    const text = signCheckpoint(this.opts.signer, this.principal, {
      gatewayId: this.gatewayId,
      count: this.committedSeq,
      chain: hex(this.chain),
      commit: this.lastRecordCommit,
      time: new Date(this.clock()).toISOString(),
    });
    await this.addFile(`checkpoints/${this.gatewayId}/${pad12(this.committedSeq)}.txt`, text);
    const tree = await this.tree.write();
    await this.writeCommit(tree, this.message(`checkpoint ${this.committedSeq}`, "checkpoint", []));
    this.lastCheckpointSeq = this.committedSeq;
    this.lastCheckpointAt = this.clock();
    this.checkpoints++;
    try {
      this.opts.onCheckpoint?.(text, parseCheckpoint(text));
    } catch (err) {
      this.log({ level: "warn", msg: "onCheckpoint callback threw", error: (err as Error).message });
    }
    this.kickPush();
    return text;
  }

  /** delete WAL files whose entries are all committed (after syncing the repo in machine mode) */
  private async cleanupWal(): Promise<void> {
    const low = this.queue[0]?.file ?? this.wal.fileNo;
    if (low <= this.walLow) return;
    if (this.machine) {
      await this.store.syncWritten();
      await fsyncPath(this.fs, join(this.gitdir, this.branch));
      await fsyncPath(this.fs, join(this.gitdir, this.branch, ".."));
    }
    await this.wal.deleteBefore(low);
    this.walLow = low;
  }

  /** a clean stop: everything is committed, so the log is emptied (after syncing the repo in machine mode) */
  private async emptyWal(): Promise<void> {
    if (this.queue.length > 0 || this.pending.length > 0 || this.held.length > 0) return;
    if (this.machine) {
      await this.store.syncWritten();
      await fsyncPath(this.fs, join(this.gitdir, this.branch));
      await fsyncPath(this.fs, join(this.gitdir, this.branch, ".."));
    }
    this.wal.emptyCurrent();
  }

  // ---------------------------------------------------------------- push

  private kickPush(): void {
    if (!this.opts.remote || this.closed) return;
    this.pushWanted = true;
    if (!this.pushing) void this.pushLoop();
  }

  private async pushLoop(): Promise<void> {
    const remote = this.opts.remote!;
    this.pushing = true;
    while (this.pushWanted && !this.closed) {
      this.pushWanted = false;
      const head = this.head;
      if (head === null || head === this.remoteHead) continue;
      try {
        if (this.remoteHead === undefined)
          this.remoteHead = (await remoteRefs(this.fetchFn, remote)).get(this.branch) ?? null;
        if (this.remoteHead !== head) {
          const oids = await newObjects(this.store, head, this.remoteHead);
          const pack = await buildPack(this.store, oids);
          await receivePack(this.fetchFn, remote, this.branch, this.remoteHead, head, pack);
          this.remoteHead = head;
          this.pushes++;
          if (this.pushFailures > 0)
            this.log({ level: "info", msg: "evidence push recovered", failures: this.pushFailures });
          this.pushFailures = 0;
          this.lastPushError = null;
        }
      } catch (err) {
        this.remoteHead = undefined; // rediscover: the push may have landed
        this.pushFailures++;
        // a fetch error quotes the URL, and with it any credentials written into the remote's URL
        this.lastPushError = redactCredentials((err as Error).message);
        this.log({
          level: "warn",
          msg: "evidence push failed; will retry",
          code: (err as { code?: string }).code,
          error: this.lastPushError,
          failures: this.pushFailures,
        });
        this.pushWanted = true;
        const delay =
          Math.min(30_000, 250 * 2 ** Math.min(this.pushFailures - 1, 7)) * (0.75 + Math.random() / 2);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.pushSleep = null;
            resolve();
          }, delay);
          this.pushSleep = { timer, resolve };
        });
      }
      if (this.head === this.remoteHead) for (const w of this.pushIdle.splice(0)) w();
    }
    this.pushing = false;
    if (this.head === this.remoteHead) for (const w of this.pushIdle.splice(0)) w();
  }

  pushed(timeoutMs = 30_000): Promise<void> {
    if (!this.opts.remote) return Promise.resolve();
    if (this.head === this.remoteHead) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pushIdle = this.pushIdle.filter((w) => w !== done);
        reject(
          new EvidenceError(
            "EVIDENCE_PUSH_TIMEOUT",
            `the remote did not reach ${this.head} within ${timeoutMs} ms: ${this.lastPushError ?? "no error yet"}`,
            {},
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.pushIdle.push(done);
      this.kickPush();
    });
  }

  // ---------------------------------------------------------------- control

  async flush(): Promise<void> {
    for (;;) {
      this.walFlush();
      if (this.failure) throw this.refusal();
      const target = this.enqueued;
      if (this.committed < target) {
        await new Promise<void>((resolve, reject) => {
          this.flushWaiters.push({ target, resolve, reject });
          this.kickCommitter();
        });
      }
      // appends held back by backpressure were appended before this call too
      if (this.held.length === 0 && this.pending.length === 0 && this.committed >= this.enqueued) return;
      await new Promise((r) => setImmediate(r));
    }
  }

  async checkpoint(): Promise<string | null> {
    await this.flush();
    return this.serialized(() => this.writeCheckpoint());
  }

  private closePromise: Promise<void> | null = null;

  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.releaseHeld(true); // appended before close: they go in
    this.walFlush();
    this.closing = true;
    if (this.recoverTimer) clearTimeout(this.recoverTimer);
    this.recoverTimer = null;
    await this.recovering;
    while (this.syncing || this.awaitingSync.length > 0) {
      this.startSync();
      await new Promise((r) => setTimeout(r, 1));
    }
    this.kickCommitter();
    await this.loopDone;
    if (this.delayTimer) clearTimeout(this.delayTimer);
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    try {
      if (!this.failure) {
        await this.serialized(() => this.writeCheckpoint());
        await this.cleanupWal();
        await this.emptyWal();
        if (this.opts.remote) await this.pushed(this.opts.closePushTimeoutMs ?? 5000).catch(() => undefined);
      }
    } finally {
      this.closed = true;
      if (this.pushSleep) {
        clearTimeout(this.pushSleep.timer);
        this.pushSleep.resolve();
      }
      this.wal.close();
      this.lock?.release();
      await this.hasher.close();
    }
    if (this.failure) throw this.refusal();
  }

  stats(): WriterStats {
    return {
      gatewayId: this.gatewayId,
      branch: this.branch,
      seq: this.nextSeq - 1,
      committedSeq: this.committedSeq,
      head: this.head,
      commits: this.commits,
      checkpoints: this.checkpoints,
      lastCheckpointSeq: this.lastCheckpointSeq,
      queued: this.queue.length + this.pending.length + this.held.length,
      held: this.held.length,
      remoteHead: this.remoteHead ?? null,
      pushes: this.pushes,
      pushFailures: this.pushFailures,
      lastPushError: this.lastPushError,
      replayed: this.replayed,
      failed: this.failure?.message ?? null,
      recoveries: this.recoveries,
    };
  }
}
