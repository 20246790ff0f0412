/**
 * `custos audit verify`: prove from a clone and the trusted keys alone that the evidence
 * history is signed, append-only, gap-free and consistent with checkpoints kept elsewhere.
 *
 * Per evidence branch, commits are walked oldest first along the first-parent chain. For each
 * commit: the sshsig signature over the commit without its gpgsig header (as git verifies
 * it); committer email = a principal of the signing key; its tree diffed against its parent's
 * (only added files or appended lines allowed); every new record line parsed and checked
 * (shape, gateway, seq contiguity, stageTimestamp monotonic) and folded into the chained hash
 * h_n = sha256(h_{n-1} || sha256(line_n)), h_0 = 32 zero bytes, that checkpoints commit to.
 * Reads are pipelined over one `git cat-file --batch`, a few commits ahead.
 */
import * as nodeCrypto from "node:crypto";
import { type AllowedSigner, CHAIN_ZERO, principalMatches, verifyCommitSignature } from "../signer/index.ts";
import { checkpointClaim } from "./checkpoints.ts";
import { createParsePool, defaultWorkers, inlineParser, type ParsePool } from "./parse-pool.ts";
import type { Finding, FindingCode } from "./findings.ts";
import {
  commitTrailers,
  firstParentChain,
  listEvidenceRefs,
  ObjectIntegrityError,
  ObjectReader,
  type ParsedCommit,
  parseCommit,
  parseTree,
  type TreeEntry,
} from "./git-objects.ts";
import {
  type LineInfo,
  type ParsedChunk,
  parseRecordPath,
  parseTimestampMicros,
  splitLines,
} from "./records.ts";
import { SeqTracker } from "./sequence.ts";

/** A checkpoint's claim about a gateway's history, after its signature has been checked. */
export interface CheckpointClaim {
  /** where it came from (a file given with --checkpoint, or a path in the repo) */
  source: string;
  gatewayId: string;
  count: number;
  /** chained hash over the first `count` record lines, 64 hex */
  chain: string;
  commit: string;
  time?: string;
}

export type CheckpointStatus = "consistent" | "inconsistent" | "unchecked";

export interface VerifyProgress {
  ref: string;
  commitsDone: number;
  commitsTotal: number;
  records: number;
}

export interface VerifyOptions {
  gitDir: string;
  /** the trusted keys (allowed_signers, given out of band) */
  allowedSigners: AllowedSigner[];
  /** claims from checkpoints kept outside the writer's control (already signature-checked) */
  checkpoints?: CheckpointClaim[];
  /** findings about checkpoints that could not be used (bad signature, unparseable) */
  checkpointFindings?: Finding[];
  /** verify the commits after this one (trusting it and its history, e.g. verified earlier) */
  since?: string;
  onProgress?: (p: VerifyProgress) => void;
  /**
   * worker threads that parse record lines (0 = parse on the main thread). Default: the
   * cores left after the main thread and git, used for branches of 64 commits or more.
   */
  workers?: number;
  /** how many findings of one code to list before counting the rest as suppressed */
  maxFindingsPerCode?: number;
}

export interface GatewaySummary {
  gatewayId: string;
  ref: string;
  head: string;
  commits: number;
  records: number;
  lastSeq: number;
  /** hex chained hash at head (null when --since started without a checkpoint to seed it) */
  chainHash: string | null;
}

export interface VerifyResult {
  ok: boolean;
  findings: Finding[];
  suppressed: Partial<Record<FindingCode, number>>;
  gateways: GatewaySummary[];
  checkpoints: {
    source: string;
    gatewayId: string;
    count: number;
    commit: string;
    status: CheckpointStatus;
  }[];
  stats: {
    refs: number;
    commits: number;
    records: number;
    bytes: number;
    seconds: number;
    recordsPerSecond: number;
  };
}

/**
 * One step of the record chain, h_n = sha256(h_{n-1} || leaf_n) with leaf_n = sha256(line_n)
 * (the signer's chainStep; the leaves are hashed with the parsing, in worker threads).
 */
const scratch = Buffer.alloc(64);
function chainNext(prev: Uint8Array, leaf: Uint8Array): Uint8Array {
  scratch.set(prev, 0);
  scratch.set(leaf, 32);
  return typeof nodeCrypto.hash === "function"
    ? nodeCrypto.hash("sha256", scratch, "buffer")
    : nodeCrypto.createHash("sha256").update(scratch).digest();
}

const hex = (h: Uint8Array | null): string | null => (h ? Buffer.from(h).toString("hex") : null);
const REGULAR = new Set(["100644", "100755"]);

interface Change {
  path: string;
  kind: "added" | "modified" | "deleted" | "mode";
  oldOid?: string;
  newOid?: string;
  mode?: string;
}

interface Prepared {
  commit: ParsedCommit;
  changes: Change[];
  blobs: Map<string, Buffer>;
  /** record files' new lines, parsed (in worker threads when a pool is in use) */
  parsed: Map<string, Promise<ParsedChunk>>;
  error?: ObjectIntegrityError;
}

/** Bounded cache of parsed trees (the parent's tree of commit i is the tree of commit i-1). */
class TreeCache {
  private readonly map = new Map<string, Promise<TreeEntry[]>>();
  constructor(
    private readonly reader: ObjectReader,
    private readonly limit = 8192,
  ) {}
  get(oid: string): Promise<TreeEntry[]> {
    let p = this.map.get(oid);
    if (p) {
      this.map.delete(oid);
      this.map.set(oid, p);
      return p;
    }
    p = this.reader.readType(oid, "tree").then(parseTree);
    this.map.set(oid, p);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
    p.catch(() => this.map.delete(oid));
    return p;
  }
}

async function diffTrees(
  cache: TreeCache,
  oldOid: string | null,
  newOid: string | null,
  prefix: string,
  out: Change[],
): Promise<void> {
  if (oldOid === newOid) return;
  const [a, b] = await Promise.all([
    oldOid ? cache.get(oldOid) : Promise.resolve([]),
    newOid ? cache.get(newOid) : Promise.resolve([]),
  ]);
  const byName = new Map<string, [TreeEntry | undefined, TreeEntry | undefined]>();
  for (const e of a) byName.set(e.name, [e, undefined]);
  for (const e of b) {
    const cur = byName.get(e.name);
    byName.set(e.name, [cur?.[0], e]);
  }
  const sub: Promise<void>[] = [];
  for (const [name, [o, n]] of byName) {
    if (o && n && o.oid === n.oid && o.mode === n.mode) continue;
    const path = prefix + name;
    if (o?.isTree || n?.isTree) {
      sub.push(diffTrees(cache, o?.isTree ? o.oid : null, n?.isTree ? n.oid : null, `${path}/`, out));
      if (o && !o.isTree) out.push({ path, kind: "deleted", oldOid: o.oid });
      if (n && !n.isTree) out.push({ path, kind: "added", newOid: n.oid, mode: n.mode });
      continue;
    }
    if (o && n) {
      if (o.oid === n.oid) out.push({ path, kind: "mode", oldOid: o.oid, newOid: n.oid, mode: n.mode });
      else out.push({ path, kind: "modified", oldOid: o.oid, newOid: n.oid, mode: n.mode });
    } else if (o) out.push({ path, kind: "deleted", oldOid: o.oid });
    else if (n) out.push({ path, kind: "added", newOid: n.oid, mode: n.mode });
  }
  await Promise.all(sub);
}

/** Per-gateway running state along one branch. */
interface ChainState {
  count: number;
  hash: Uint8Array | null;
  seq: SeqTracker;
  lastMicros: number;
  lastTimestamp: string;
}

export async function verifyEvidenceRepo(opts: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const maxPerCode = opts.maxFindingsPerCode ?? 1000;
  const findings: Finding[] = [];
  const suppressed: Partial<Record<FindingCode, number>> = {};
  const perCode = new Map<FindingCode, number>();
  const add = (f: Finding): void => {
    const n = (perCode.get(f.code) ?? 0) + 1;
    perCode.set(f.code, n);
    if (n > maxPerCode) suppressed[f.code] = (suppressed[f.code] ?? 0) + 1;
    else findings.push(f);
  };
  for (const f of opts.checkpointFindings ?? []) add(f);

  const refs = await listEvidenceRefs(opts.gitDir);
  // a ref and its remote-tracking twin at the same commit are verified once
  const unique = new Map<string, (typeof refs)[number]>();
  for (const r of refs) {
    const key = `${r.gatewayId}\0${r.oid}`;
    if (!unique.has(key)) unique.set(key, r);
  }
  const gateways: GatewaySummary[] = [];
  const checkpointResults: VerifyResult["checkpoints"] = [];
  const claims = opts.checkpoints ?? [];
  let totalCommits = 0;
  let totalRecords = 0;
  let totalBytes = 0;

  if (unique.size === 0)
    add({
      code: "NO_EVIDENCE_BRANCHES",
      commit: null,
      path: null,
      message:
        "no refs/heads/evidence/* or refs/remotes/*/evidence/* branch found; clone the evidence repository (git clone <url>) and verify the clone",
    });

  const reader = new ObjectReader(opts.gitDir);
  const sigCache = new Map<string, Finding[]>();
  let pool: ParsePool | null = null;
  const poolFor = (commits: number): ParsePool => {
    if (opts.workers === 0) return inlineParser;
    if (pool) return pool;
    // a worker costs a few hundred ms to start: not worth it for a short branch
    if (opts.workers === undefined && commits < 64) return inlineParser;
    pool = createParsePool(opts.workers ?? defaultWorkers());
    return pool;
  };
  try {
    for (const ref of unique.values()) {
      const res = await verifyBranch(ref, reader, opts, add, sigCache, claims, poolFor);
      totalCommits += res.summary.commits;
      totalRecords += res.summary.records;
      totalBytes += res.bytes;
      gateways.push(res.summary);
      checkpointResults.push(...res.checkpoints);
    }
  } finally {
    reader.close();
    await (pool as ParsePool | null)?.close();
  }
  for (const c of claims) {
    if (![...unique.values()].some((r) => r.gatewayId === c.gatewayId)) {
      add({
        code: "CHECKPOINT_NO_BRANCH",
        commit: c.commit,
        path: c.source,
        message: `checkpoint ${c.source} is for gateway "${c.gatewayId}" but the repository has no evidence/${c.gatewayId} branch; the branch was deleted or the clone is incomplete (git fetch --all)`,
      });
      checkpointResults.push({
        source: c.source,
        gatewayId: c.gatewayId,
        count: c.count,
        commit: c.commit,
        status: "inconsistent",
      });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    ok: perCode.size === 0,
    findings,
    suppressed,
    gateways,
    checkpoints: checkpointResults,
    stats: {
      refs: unique.size,
      commits: totalCommits,
      records: totalRecords,
      bytes: totalBytes,
      seconds,
      recordsPerSecond: seconds > 0 ? Math.round(totalRecords / seconds) : 0,
    },
  };
}

/** The last record of `gatewayId` in a tree (for --since): descend the newest partitions first. */
async function lastRecordInTree(
  cache: TreeCache,
  reader: ObjectReader,
  rootTree: string,
  gatewayId: string,
): Promise<{ seq: number; micros: number; stageTimestamp: string } | null> {
  const root = await cache.get(rootTree);
  const records = root.find((e) => e.name === "records" && e.isTree);
  if (!records) return null;
  // the newest segment of `gatewayId` under a tree: files directly in an hour directory (the
  // older layout) and in its minute directories compete by first seq
  const newest = async (oid: string, depth: number): Promise<{ firstSeq: number; oid: string } | null> => {
    const entries = [...(await cache.get(oid))].sort((x, y) =>
      x.name < y.name ? 1 : x.name > y.name ? -1 : 0,
    );
    let best: { firstSeq: number; oid: string } | null = null;
    if (depth >= 4) {
      for (const e of entries) {
        if (e.isTree) continue;
        const p = parseRecordPath(`records/0000/00/00/00/${e.name}`);
        if (p && p.gatewayId === gatewayId && (!best || p.firstSeq > best.firstSeq))
          best = { firstSeq: p.firstSeq, oid: e.oid };
      }
    }
    if (depth < 5) {
      for (const e of entries) {
        if (!e.isTree) continue;
        const r = await newest(e.oid, depth + 1);
        if (r) {
          if (!best || r.firstSeq > best.firstSeq) best = r;
          break; // newer partitions sort first: the first one with a segment is the newest
        }
      }
    }
    return best;
  };
  const walk = async (
    oid: string,
    depth: number,
  ): Promise<{ seq: number; micros: number; stageTimestamp: string } | null> => {
    const top = await newest(oid, depth);
    if (!top) return null;
    const { lines } = splitLines((await reader.readType(top.oid, "blob")).toString("utf8"));
    const last = lines[lines.length - 1];
    if (!last) return null;
    const rec = JSON.parse(last) as { stageTimestamp: string; custos: { seq: number } };
    return {
      seq: rec.custos.seq,
      micros: parseTimestampMicros(rec.stageTimestamp),
      stageTimestamp: rec.stageTimestamp,
    };
  };
  return walk(records.oid, 0);
}

async function verifyBranch(
  ref: { ref: string; oid: string; gatewayId: string },
  reader: ObjectReader,
  opts: VerifyOptions,
  add: (f: Finding) => void,
  sigCache: Map<string, Finding[]>,
  allClaims: CheckpointClaim[],
  poolFor: (commits: number) => ParsePool,
): Promise<{ summary: GatewaySummary; bytes: number; checkpoints: VerifyResult["checkpoints"] }> {
  const gw = ref.gatewayId;
  const refName = ref.ref;
  const list = await firstParentChain(opts.gitDir, ref.oid);
  const claims = allClaims.filter((c) => c.gatewayId === gw);
  const inHistory = new Set(list);
  const pool = poolFor(list.length);
  const cache = new TreeCache(reader);

  const state: ChainState = {
    count: 0,
    hash: CHAIN_ZERO,
    seq: new SeqTracker(),
    lastMicros: Number.NEGATIVE_INFINITY,
    lastTimestamp: "",
  };
  let start = 0;
  let prevTree: string | null = null;
  let prevOid: string | null = null;
  if (opts.since) {
    const idx = list.findIndex((c) => c === opts.since || c.startsWith(opts.since!));
    if (idx < 0) {
      add({
        code: "SINCE_NOT_FOUND",
        commit: opts.since,
        path: null,
        ref: refName,
        message: `--since ${opts.since} is not on ${refName}; pass a commit of that branch (git log ${refName}) or omit --since to verify everything`,
      });
      return {
        summary: {
          gatewayId: gw,
          ref: refName,
          head: ref.oid,
          commits: 0,
          records: 0,
          lastSeq: 0,
          chainHash: null,
        },
        bytes: 0,
        checkpoints: [],
      };
    }
    const sinceOid = list[idx]!;
    const sinceCommit = parseCommit(sinceOid, await reader.readType(sinceOid, "commit"));
    prevTree = sinceCommit.tree;
    prevOid = sinceOid;
    start = idx + 1;
    const last = await lastRecordInTree(cache, reader, sinceCommit.tree, gw);
    // a checkpoint at exactly the --since commit seeds the chained hash; otherwise it is unknown
    const seed = claims.find((c) => c.commit === sinceOid);
    state.count = seed ? seed.count : (last?.seq ?? 0);
    state.hash = seed ? Buffer.from(seed.chain, "hex") : last ? null : CHAIN_ZERO;
    state.seq = new SeqTracker(last?.seq ?? 0);
    if (last) {
      state.lastMicros = last.micros;
      state.lastTimestamp = last.stageTimestamp;
    }
  }

  /** count and hash after each verified commit; hash at each checkpoint's count */
  const atCommit = new Map<string, { count: number; chain: string | null }>();
  if (prevOid) atCommit.set(prevOid, { count: state.count, chain: hex(state.hash) });
  const wantCounts = new Set(claims.map((c) => c.count));
  const hashAtCount = new Map<number, string | null>();
  if (wantCounts.has(state.count)) hashAtCount.set(state.count, hex(state.hash));
  const repoCheckpoints: { claim: CheckpointClaim; commit: string }[] = [];

  const commitAt = new Map<number, Promise<ParsedCommit>>();
  const readCommitAt = (i: number): Promise<ParsedCommit> => {
    let p = commitAt.get(i);
    if (!p) {
      const oid = list[i]!;
      p = reader.readType(oid, "commit").then((raw) => parseCommit(oid, raw));
      p.catch(() => {});
      commitAt.set(i, p);
    }
    return p;
  };
  const prepare = async (i: number): Promise<Prepared> => {
    const oid = list[i]!;
    let commit: ParsedCommit | undefined;
    try {
      commit = await readCommitAt(i);
      // diff against the previous commit of the chain (whose parent link is checked separately)
      const parentTree = i === start ? prevTree : (await readCommitAt(i - 1)).tree;
      const changes: Change[] = [];
      await diffTrees(cache, parentTree, commit.tree, "", changes);
      changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
      const want = new Set<string>();
      for (const c of changes) {
        if ((c.kind === "added" || c.kind === "modified") && c.mode && REGULAR.has(c.mode)) {
          want.add(c.newOid!);
          if (c.kind === "modified") want.add(c.oldOid!);
        }
      }
      const blobs = new Map<string, Buffer>();
      for (const o of await Promise.all([...want].map((w) => reader.read(w)))) blobs.set(o.oid, o.content);
      // start parsing new record lines now, so workers run while earlier commits are checked
      const parsed = new Map<string, Promise<ParsedChunk>>();
      for (const c of changes) {
        if (!c.path.startsWith("records/") || !c.newOid || !blobs.has(c.newOid)) continue;
        const content = blobs.get(c.newOid)!;
        const old = c.kind === "modified" ? blobs.get(c.oldOid!) : undefined;
        const bytes =
          old === undefined ? content : isAppend(old, content) ? content.subarray(old.length) : null;
        if (bytes) parsed.set(c.path, pool.parse(bytes));
      }
      return { commit, changes, blobs, parsed };
    } catch (err) {
      if (err instanceof ObjectIntegrityError)
        return {
          commit: commit ?? parseCommit(oid, Buffer.alloc(0)),
          changes: [],
          blobs: new Map(),
          parsed: new Map(),
          error: err,
        };
      throw err;
    }
  };

  const WINDOW = 6;
  const inflight = new Map<number, Promise<Prepared>>();
  const schedule = (i: number): void => {
    if (i < list.length && !inflight.has(i)) {
      const p = prepare(i);
      p.catch(() => {});
      inflight.set(i, p);
    }
  };
  let bytes = 0;
  let commits = 0;
  let lastProgress = 0;
  for (let i = start; i < list.length; i++) {
    for (let k = i; k < i + WINDOW; k++) schedule(k);
    const prep = await inflight.get(i)!;
    inflight.delete(i);
    commitAt.delete(i - 1);
    const { commit } = prep;
    commits++;
    const oid = list[i]!;
    if (prep.error) {
      add({ code: "OBJECT_CORRUPT", commit: oid, path: null, ref: refName, message: prep.error.message });
      atCommit.set(oid, { count: state.count, chain: hex(state.hash) });
      continue;
    }

    // linear history: each commit's only parent is the previous commit of the branch
    const expectedParent = i > 0 ? list[i - 1]! : null;
    if (commit.parents.length > 1)
      add({
        code: "MERGE_COMMIT",
        commit: oid,
        path: null,
        ref: refName,
        message: `commit has ${commit.parents.length} parents; evidence history must be linear (the writer never merges) — only the first parent's history was verified`,
      });
    else if ((commit.parents[0] ?? null) !== expectedParent)
      add({
        code: "HISTORY_BROKEN",
        commit: oid,
        path: null,
        ref: refName,
        message: `parent is ${commit.parents[0] ?? "none"}, expected ${expectedParent ?? "none (root)"}${expectedParent === null ? " — is this a shallow clone? verify a full clone (git fetch --unshallow)" : ""}`,
      });

    // signature (cached: a commit shared by two branches is checked once)
    let sigFindings = sigCache.get(oid);
    if (!sigFindings) {
      sigFindings = checkSignature(commit, opts.allowedSigners);
      sigCache.set(oid, sigFindings);
    }
    for (const f of sigFindings) add({ ...f, ref: refName });

    // file changes: only additions and appends
    const newRecordLines: {
      path: string;
      firstSeq: number;
      partition: string;
      lineOffset: number;
      chunk: ParsedChunk;
    }[] = [];
    for (const c of prep.changes) {
      if (c.kind === "deleted") {
        add({
          code: "FILE_DELETED",
          commit: oid,
          path: c.path,
          ref: refName,
          message: `${c.path} was deleted; evidence files may only be added or appended to`,
        });
        continue;
      }
      if (c.mode && !REGULAR.has(c.mode)) {
        add({
          code: "UNEXPECTED_ENTRY",
          commit: oid,
          path: c.path,
          ref: refName,
          message: `tree entry with mode ${c.mode}; evidence holds regular files only`,
        });
        continue;
      }
      if (c.kind === "mode") {
        add({
          code: "FILE_MODIFIED",
          commit: oid,
          path: c.path,
          ref: refName,
          message: `file mode changed to ${c.mode}`,
        });
        continue;
      }
      const rec = parseRecordPath(c.path);
      const isJsonl = c.path.endsWith(".jsonl");
      const content = prep.blobs.get(c.newOid!)!;
      bytes += content.length;
      let appended: Buffer = content;
      let lineOffset = 0;
      if (c.kind === "modified") {
        const old = prep.blobs.get(c.oldOid!)!;
        if (!isAppend(old, content)) {
          reportRewrite(c.path, old, content, isJsonl, oid, refName, add);
          continue;
        }
        appended = content.subarray(old.length);
        lineOffset = countLines(old);
      }
      if (c.path.startsWith("records/")) {
        if (!rec) {
          add({
            code: "RECORD_PATH",
            commit: oid,
            path: c.path,
            ref: refName,
            message:
              "record file path is not records/YYYY/MM/DD/HH/MM/<gatewayId>-<12-digit firstSeq>.jsonl (or records/YYYY/MM/DD/HH/… in the older hour-level layout)",
          });
          continue;
        }
        if (rec.gatewayId !== gw)
          add({
            code: "GATEWAY_MISMATCH",
            commit: oid,
            path: c.path,
            ref: refName,
            message: `file belongs to gateway "${rec.gatewayId}" but is on branch evidence/${gw}`,
          });
        const chunk = await (prep.parsed.get(c.path) ?? pool.parse(appended));
        if (appended.length > 0 && appended[appended.length - 1] !== 10)
          add({
            code: "RECORD_INVALID",
            commit: oid,
            path: c.path,
            line: lineOffset + chunk.infos.length,
            ref: refName,
            message: "record file does not end with a newline (a partial line)",
          });
        newRecordLines.push({
          path: c.path,
          firstSeq: rec.firstSeq,
          partition: rec.partition,
          lineOffset,
          chunk,
        });
      } else if (c.path.startsWith("checkpoints/") && c.kind === "added") {
        const parsed = checkpointClaim(
          { source: c.path, text: content.toString("utf8") },
          opts.allowedSigners,
        );
        if ("error" in parsed)
          add({ code: "CHECKPOINT_INVALID", commit: oid, path: c.path, ref: refName, message: parsed.error });
        else if (parsed.claim.gatewayId !== gw)
          add({
            code: "GATEWAY_MISMATCH",
            commit: oid,
            path: c.path,
            ref: refName,
            message: `checkpoint for gateway "${parsed.claim.gatewayId}" on branch evidence/${gw}`,
          });
        else if (c.path !== `checkpoints/${gw}/${String(parsed.claim.count).padStart(12, "0")}.txt`)
          add({
            code: "CHECKPOINT_INVALID",
            commit: oid,
            path: c.path,
            ref: refName,
            message: `checkpoint covering ${parsed.claim.count} records is filed as ${c.path}, expected checkpoints/${gw}/${String(parsed.claim.count).padStart(12, "0")}.txt`,
          });
        else if (parsed.claim.count > 0) repoCheckpoints.push({ claim: parsed.claim, commit: oid });
      }
    }

    // records: in file (firstSeq) order, then line order
    newRecordLines.sort((x, y) => x.firstSeq - y.firstSeq || (x.path < y.path ? -1 : 1));
    for (const f of newRecordLines) {
      const { infos, leaves } = f.chunk;
      for (let j = 0; j < infos.length; j++) {
        const info = infos[j]!;
        const lineNo = f.lineOffset + j + 1;
        state.count++;
        if (state.hash) state.hash = chainNext(state.hash, leaves.subarray(j * 32, j * 32 + 32));
        if (wantCounts.has(state.count)) hashAtCount.set(state.count, hex(state.hash));
        checkRecord(info, lineNo, f, oid, refName, gw, state, add);
      }
    }
    atCommit.set(oid, { count: state.count, chain: hex(state.hash) });
    checkTrailers(commit, gw, state, refName, add);

    if (opts.onProgress && (commits - lastProgress >= 50 || i === list.length - 1)) {
      lastProgress = commits;
      opts.onProgress({ ref: refName, commitsDone: i + 1, commitsTotal: list.length, records: state.count });
    }
  }

  // checkpoints written into the repo by the writer: a consistency check of the writer itself
  for (const { claim, commit } of repoCheckpoints) {
    const at = atCommit.get(claim.commit);
    if (!at) {
      add({
        code: "CHECKPOINT_NOT_IN_HISTORY",
        commit,
        path: claim.source,
        ref: refName,
        message: `in-repo checkpoint covers commit ${claim.commit}, which is not an earlier commit of ${refName}`,
      });
    } else checkClaimAt(claim, at, refName, add);
  }

  // checkpoints supplied by the auditor (kept outside the writer's control)
  const results: VerifyResult["checkpoints"] = [];
  for (const claim of claims) {
    let status: CheckpointStatus = "consistent";
    const at = atCommit.get(claim.commit);
    if (at) {
      const r = checkClaimAt(claim, at, refName, add);
      status = r;
    } else {
      status = "inconsistent";
      add({
        code: "CHECKPOINT_NOT_IN_HISTORY",
        commit: claim.commit,
        path: claim.source,
        ref: refName,
        message: inHistory.has(claim.commit)
          ? `checkpoint commit ${claim.commit} precedes --since; verify without --since to check it`
          : `checkpoint ${claim.source} commits to ${claim.commit} (${claim.count} records) but that commit is not in the history of ${refName}: the branch was rewritten or rolled back since the checkpoint was taken`,
      });
      if (inHistory.has(claim.commit)) status = "unchecked";
      else if (state.count < claim.count)
        add({
          code: "CHECKPOINT_ROLLBACK",
          commit: ref.oid,
          path: claim.source,
          ref: refName,
          message: `${refName} holds ${state.count} records but checkpoint ${claim.source} recorded ${claim.count}: the branch was rolled back to an older head`,
        });
      else {
        const h = hashAtCount.get(claim.count);
        if (h && h !== claim.chain)
          add({
            code: "CHECKPOINT_HASH_MISMATCH",
            commit: ref.oid,
            path: claim.source,
            ref: refName,
            message: `the first ${claim.count} records of ${refName} hash to ${h}, checkpoint ${claim.source} recorded ${claim.chain}: records were rewritten after the checkpoint was taken`,
          });
      }
    }
    results.push({ source: claim.source, gatewayId: gw, count: claim.count, commit: claim.commit, status });
  }

  return {
    summary: {
      gatewayId: gw,
      ref: refName,
      head: ref.oid,
      commits,
      records: state.count - (atCommit.get(prevOid ?? "")?.count ?? 0),
      lastSeq: state.seq.last,
      chainHash: hex(state.hash),
    },
    bytes,
    checkpoints: results,
  };
}

function checkClaimAt(
  claim: CheckpointClaim,
  at: { count: number; chain: string | null },
  refName: string,
  add: (f: Finding) => void,
): CheckpointStatus {
  if (at.count !== claim.count) {
    add({
      code: "CHECKPOINT_COUNT_MISMATCH",
      commit: claim.commit,
      path: claim.source,
      ref: refName,
      message: `at commit ${claim.commit} the branch holds ${at.count} records, checkpoint ${claim.source} says ${claim.count}`,
    });
    return "inconsistent";
  }
  if (at.chain === null) return "unchecked";
  if (at.chain !== claim.chain) {
    add({
      code: "CHECKPOINT_HASH_MISMATCH",
      commit: claim.commit,
      path: claim.source,
      ref: refName,
      message: `at commit ${claim.commit} the records hash to ${at.chain}, checkpoint ${claim.source} says ${claim.chain}`,
    });
    return "inconsistent";
  }
  return "consistent";
}

/** `content` is `old` with lines appended (old ends with a newline, or is empty). */
function isAppend(old: Buffer, content: Buffer): boolean {
  return (
    content.length >= old.length &&
    content.subarray(0, old.length).equals(old) &&
    (old.length === 0 || old[old.length - 1] === 10)
  );
}

function countLines(b: Buffer): number {
  let n = 0;
  let i = -1;
  for (;;) {
    i = b.indexOf(10, i + 1);
    if (i < 0) return n;
    n++;
  }
}

function reportRewrite(
  path: string,
  old: Buffer,
  content: Buffer,
  isJsonl: boolean,
  commit: string,
  ref: string,
  add: (f: Finding) => void,
): void {
  if (!isJsonl) {
    add({
      code: "FILE_MODIFIED",
      commit,
      path,
      ref,
      message: `${path} was rewritten; evidence files may only be appended to`,
    });
    return;
  }
  const a = splitLines(old.toString("utf8")).lines;
  const b = splitLines(content.toString("utf8")).lines;
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  if (b.length < a.length) {
    add({
      code: "LINE_REMOVED",
      commit,
      path,
      line: k + 1,
      ref,
      message: `${a.length - b.length} line(s) removed from ${path}, the first at line ${k + 1}; earlier records may never be removed`,
    });
    return;
  }
  add({
    code: "LINE_CHANGED",
    commit,
    path,
    line: k + 1,
    ref,
    message: `line ${k + 1} of ${path} was changed after it was committed; earlier records may never change`,
  });
}

function checkSignature(commit: ParsedCommit, allowed: AllowedSigner[]): Finding[] {
  const oid = commit.oid;
  const r = verifyCommitSignature(commit.raw, allowed);
  if (!r.signed)
    return [
      {
        code: "SIG_MISSING",
        commit: oid,
        path: null,
        message: "commit has no gpgsig signature; every evidence commit is signed by its gateway",
      },
    ];
  if (!r.ok) {
    const code: FindingCode =
      r.reason === "untrusted-key"
        ? "SIG_UNKNOWN_KEY"
        : r.reason === "expired-key"
          ? "SIG_KEY_EXPIRED"
          : r.reason === "namespace"
            ? "SIG_NAMESPACE"
            : "SIG_INVALID";
    const fix =
      code === "SIG_UNKNOWN_KEY"
        ? "if this gateway key is legitimate, get its allowed_signers line from the operator (out of band) and add it"
        : code === "SIG_KEY_EXPIRED"
          ? "the key was retired (or not yet in service) when this commit says it was made; ask the operator what happened since"
          : "the commit was altered after it was signed, or the signature was made for another purpose";
    return [{ code, commit: oid, path: null, message: `${r.detail ?? r.reason}; ${fix}` }];
  }
  if (!principalMatches(r.principals, commit.committerEmail))
    return [
      {
        code: "COMMITTER_MISMATCH",
        commit: oid,
        path: null,
        message: `committer <${commit.committerEmail}> is not a principal of signing key ${r.fingerprint} (allowed_signers gives: ${r.principals.join(", ")})`,
      },
    ];
  return [];
}

/** The writer's Custos-* trailers restate seq and chain after the commit: recomputed, they must agree. */
function checkTrailers(
  commit: ParsedCommit,
  gw: string,
  state: ChainState,
  ref: string,
  add: (f: Finding) => void,
): void {
  const t = commitTrailers(commit.message);
  const problems: string[] = [];
  if (t["Custos-Gateway"] !== undefined && t["Custos-Gateway"] !== gw)
    problems.push(`Custos-Gateway is ${t["Custos-Gateway"]}, branch is evidence/${gw}`);
  if (t["Custos-Last-Seq"] !== undefined && Number(t["Custos-Last-Seq"]) !== state.seq.last)
    problems.push(`Custos-Last-Seq is ${t["Custos-Last-Seq"]}, recomputed ${state.seq.last}`);
  const chain = hex(state.hash);
  if (t["Custos-Chain"] !== undefined && chain !== null && t["Custos-Chain"] !== chain)
    problems.push(`Custos-Chain is ${t["Custos-Chain"]}, recomputed ${chain}`);
  if (problems.length > 0)
    add({
      code: "COMMIT_TRAILER_MISMATCH",
      commit: commit.oid,
      path: null,
      ref,
      message: problems.join("; "),
    });
}

function checkRecord(
  info: LineInfo,
  lineNo: number,
  f: { path: string; firstSeq: number; partition: string },
  commit: string,
  ref: string,
  gw: string,
  state: ChainState,
  add: (f: Finding) => void,
): void {
  if (info.problem !== null) {
    add({ code: "RECORD_INVALID", commit, path: f.path, line: lineNo, ref, message: info.problem });
    return;
  }
  const r = { stageTimestamp: info.stageTimestamp, custos: { gatewayId: info.gatewayId, seq: info.seq } };
  const seq = info.seq;
  if (r.custos.gatewayId !== gw)
    add({
      code: "GATEWAY_MISMATCH",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `record says gateway "${r.custos.gatewayId}", branch is evidence/${gw}`,
    });
  if (lineNo === 1) {
    // the segment's directory is the UTC minute (hour, in the older layout) of its first record's stageTimestamp
    const t = new Date(Math.floor(info.micros / 1000)).toISOString();
    const hour = `${t.slice(0, 4)}/${t.slice(5, 7)}/${t.slice(8, 10)}/${t.slice(11, 13)}`;
    const minuteLevel = f.partition.length > 13;
    const want = minuteLevel ? `${hour}/${t.slice(14, 16)}` : hour;
    if (want !== f.partition)
      add({
        code: "RECORD_PATH",
        commit,
        path: f.path,
        line: lineNo,
        ref,
        message: `segment is filed under ${minuteLevel ? "minute" : "hour"} ${f.partition} but its first record's stageTimestamp ${r.stageTimestamp} is in ${minuteLevel ? "minute" : "hour"} ${want}`,
      });
  }
  if (lineNo === 1 && seq !== f.firstSeq)
    add({
      code: "RECORD_PATH",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `file name says first seq ${f.firstSeq}, its first record has seq ${seq}`,
    });
  const before = state.seq.last;
  const verdict = state.seq.observe(seq);
  if (verdict === "gap")
    add({
      code: "SEQ_GAP",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `seq ${seq} follows ${before}: records ${before + 1}..${seq - 1} are missing`,
    });
  else if (verdict === "repeat")
    add({
      code: "SEQ_REPEAT",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `seq ${seq} was already recorded`,
    });
  else if (verdict === "out-of-order")
    add({
      code: "SEQ_OUT_OF_ORDER",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `seq ${seq} arrives after seq ${before}: records were reordered`,
    });
  const micros = info.micros;
  if (micros < state.lastMicros)
    add({
      code: "TIME_BACKWARDS",
      commit,
      path: f.path,
      line: lineNo,
      ref,
      message: `stageTimestamp ${r.stageTimestamp} is earlier than the previous record's ${state.lastTimestamp}`,
    });
  else {
    state.lastMicros = micros;
    state.lastTimestamp = r.stageTimestamp;
  }
}
