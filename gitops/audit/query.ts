/**
 * `custos audit query`: who accessed what, read from the head of each evidence branch.
 * The tree is walked by time partition (records/YYYY/MM/DD/HH[/MM]), so a query over a day of a
 * six-year repository reads that day's segments only. Records are yielded hour by hour,
 * ordered by stageTimestamp across gateways.
 */
import picomatch from "picomatch";
import type { EvidenceRecord } from "../../gateway/ports.ts";
import { listEvidenceRefs, ObjectReader, parseCommit, parseTree, type TreeEntry } from "./git-objects.ts";
import { parseRecordPath, parseTimestampMicros, splitLines } from "./records.ts";

export interface RecordFilter {
  resource?: string;
  namespace?: string;
  /** the keyed digest of `namespace`: a record that names the namespace masked (`[MASKED:mrn]#<digest>`) matches too */
  namespaceDigest?: string;
  name?: string;
  /**
   * the keyed digest of `name` (see sdk/lib/digest.ts): a record that names the object masked
   * (`record-[MASKED:mrn]#<digest>`) matches too
   */
  nameDigest?: string;
  user?: string;
  verb?: string;
  decision?: string;
  gatewayId?: string;
  /** custos.approval.requestId / fingerprint / grantId: a call and its approval trail */
  requestId?: string;
  fingerprint?: string;
  grantId?: string;
  /** RFC 3339 bounds on stageTimestamp: since inclusive, until exclusive */
  since?: string;
  until?: string;
}

export interface FoundRecord {
  record: EvidenceRecord;
  gatewayId: string;
  path: string;
  line: number;
}

export class QueryInputError extends Error {
  readonly code = "AUDIT_QUERY_INPUT";
  readonly data: { field: string; value: string };
  constructor(field: string, value: string, expected: string) {
    super(`--${field} "${value}" is not valid: expected ${expected}`);
    this.name = "QueryInputError";
    this.data = { field, value };
  }
}

const HOUR_US = 3_600_000_000;
/**
 * A segment lives under the hour of its FIRST record; its later records may fall in the
 * next hour(s). Partitions up to this long before `since` are read too, then filtered exactly.
 */
const SPILL_US = 2 * HOUR_US;

function bound(field: string, v: string | undefined): number | null {
  if (v === undefined) return null;
  const us = parseTimestampMicros(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
  if (Number.isNaN(us))
    throw new QueryInputError(field, v, "an RFC 3339 time (2026-11-25T10:00:00Z) or a date (2026-11-25)");
  return us;
}

type Matcher = (v: string | undefined) => boolean;
function matcher(pattern: string | undefined): Matcher | null {
  if (pattern === undefined) return null;
  if (/[*?[\]{}]/.test(pattern)) {
    const m = picomatch(pattern, { dot: true });
    return (v) => v !== undefined && m(v);
  }
  return (v) => v === pattern;
}

/** Compile a filter into a predicate over records (also used by `report`). */
export function compileFilter(f: RecordFilter): (r: EvidenceRecord) => boolean {
  const since = bound("since", f.since);
  const until = bound("until", f.until);
  const checks: ((r: EvidenceRecord) => boolean)[] = [];
  const add = (m: Matcher | null, get: (r: EvidenceRecord) => string | undefined) => {
    if (m) checks.push((r) => m(get(r)));
  };
  add(matcher(f.resource), (r) => r.objectRef?.resource);
  // a value given in the clear, or its keyed digest after a masked stored value
  const plainOrDigest = (
    pattern: string | undefined,
    digest: string | undefined,
    get: (r: EvidenceRecord) => string | undefined,
  ) => {
    const plain = matcher(pattern);
    if (digest === undefined) return add(plain, get);
    const tail = `#${digest}`;
    checks.push((r) => {
      const v = get(r);
      return v !== undefined && (plain?.(v) === true || v.endsWith(tail));
    });
  };
  plainOrDigest(f.namespace, f.namespaceDigest, (r) => r.objectRef?.namespace);
  plainOrDigest(f.name, f.nameDigest, (r) => r.objectRef?.name);
  add(matcher(f.user), (r) => r.user?.username);
  add(matcher(f.verb), (r) => r.verb);
  add(matcher(f.decision), (r) => r.custos?.decision);
  add(matcher(f.gatewayId), (r) => r.custos?.gatewayId);
  add(matcher(f.requestId), (r) => r.custos?.approval?.requestId);
  add(matcher(f.fingerprint), (r) => r.custos?.approval?.fingerprint);
  add(matcher(f.grantId), (r) => r.custos?.approval?.grantId);
  if (since !== null || until !== null)
    checks.push((r) => {
      const t = parseTimestampMicros(r.stageTimestamp);
      return (since === null || t >= since) && (until === null || t < until);
    });
  return (r) => checks.every((c) => c(r));
}

/** One branch head per gateway: the remote-tracking ref (updated by fetch) over a local one. */
async function heads(gitDir: string): Promise<Map<string, string>> {
  const out = new Map<string, { oid: string; remote: boolean }>();
  for (const r of await listEvidenceRefs(gitDir)) {
    const remote = r.ref.startsWith("refs/remotes/");
    const cur = out.get(r.gatewayId);
    if (!cur || (remote && !cur.remote)) out.set(r.gatewayId, { oid: r.oid, remote });
  }
  return new Map([...out].map(([k, v]) => [k, v.oid]));
}

async function subtree(reader: ObjectReader, entries: TreeEntry[], name: string): Promise<TreeEntry[]> {
  const e = entries.find((x) => x.name === name && x.isTree);
  return e ? parseTree(await reader.readType(e.oid, "tree")) : [];
}

const byName = (a: TreeEntry, b: TreeEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export interface WalkOptions {
  gitDir: string;
  since?: string;
  until?: string;
  gatewayId?: string;
  /** after each hour partition: which hour (UTC, "YYYY-MM-DDTHH") and how many records were read so far */
  onProgress?: (p: { hour: string; records: number }) => void;
}

/**
 * Every record in the time range (partition-pruned, then exact on stageTimestamp), hour by
 * hour, each hour's records ordered by stageTimestamp across gateways.
 */
export async function* walkRecords(opts: WalkOptions): AsyncGenerator<FoundRecord> {
  const since = bound("since", opts.since);
  const until = bound("until", opts.until);
  const reader = new ObjectReader(opts.gitDir);
  try {
    const roots: { gatewayId: string; records: TreeEntry[] }[] = [];
    for (const [gatewayId, oid] of await heads(opts.gitDir)) {
      if (opts.gatewayId !== undefined && opts.gatewayId !== gatewayId) continue;
      const commit = parseCommit(oid, await reader.readType(oid, "commit"));
      const root = parseTree(await reader.readType(commit.tree, "tree"));
      roots.push({ gatewayId, records: await subtree(reader, root, "records") });
    }
    const lo = since === null ? null : since - SPILL_US;
    const hourStart = (y: string, m = "01", d = "01", h = "00") =>
      Date.UTC(Number(y), Number(m) - 1, Number(d), Number(h)) * 1000;
    // a partition [start, end) is pruned when it cannot overlap [lo, until)
    const keep = (start: number, end: number) =>
      (lo === null || end > lo) && (until === null || start < until);
    const nextYear = (y: string) => hourStart(String(Number(y) + 1));
    const nextMonth = (y: string, m: string) =>
      Number(m) === 12 ? nextYear(y) : hourStart(y, String(Number(m) + 1).padStart(2, "0"));

    const years = new Set<string>();
    for (const r of roots) for (const e of r.records) if (e.isTree) years.add(e.name);
    let read = 0;
    const filter = compileFilter({
      ...(opts.since !== undefined ? { since: opts.since } : {}),
      ...(opts.until !== undefined ? { until: opts.until } : {}),
    });
    for (const y of [...years].sort()) {
      if (!keep(hourStart(y), nextYear(y))) continue;
      const yTrees = await Promise.all(roots.map((r) => subtree(reader, r.records, y)));
      const months = new Set(
        yTrees
          .flat()
          .filter((e) => e.isTree)
          .map((e) => e.name),
      );
      for (const m of [...months].sort()) {
        if (!keep(hourStart(y, m), nextMonth(y, m))) continue;
        const mTrees = await Promise.all(yTrees.map((t) => subtree(reader, t, m)));
        const days = new Set(
          mTrees
            .flat()
            .filter((e) => e.isTree)
            .map((e) => e.name),
        );
        for (const d of [...days].sort()) {
          const dStart = hourStart(y, m, d);
          if (!keep(dStart, dStart + 24 * HOUR_US)) continue;
          const dTrees = await Promise.all(mTrees.map((t) => subtree(reader, t, d)));
          const hours = new Set(
            dTrees
              .flat()
              .filter((e) => e.isTree)
              .map((e) => e.name),
          );
          for (const h of [...hours].sort()) {
            const hStart = hourStart(y, m, d, h);
            if (!keep(hStart, hStart + HOUR_US)) continue;
            const hTrees = await Promise.all(dTrees.map((t) => subtree(reader, t, h)));
            // segments sit in minute directories (HH/MM/), or directly in the hour (older layout)
            const files: { dir: string; entry: TreeEntry }[] = [];
            for (const t of hTrees) {
              for (const e of t) {
                if (!e.isTree) {
                  if (e.name.endsWith(".jsonl")) files.push({ dir: h, entry: e });
                } else if (/^\d{2}$/.test(e.name)) {
                  const mStart = hStart + Number(e.name) * 60_000_000;
                  if (!keep(mStart, mStart + 60_000_000)) continue;
                  for (const f of parseTree(await reader.readType(e.oid, "tree")))
                    if (!f.isTree && f.name.endsWith(".jsonl"))
                      files.push({ dir: `${h}/${e.name}`, entry: f });
                }
              }
            }
            files.sort((a, b) => byName(a.entry, b.entry));
            const blobs = await Promise.all(files.map((f) => reader.readType(f.entry.oid, "blob")));
            const found: (FoundRecord & { t: number })[] = [];
            files.forEach(({ dir, entry: f }, i) => {
              const path = `records/${y}/${m}/${d}/${dir}/${f.name}`;
              const gatewayId = parseRecordPath(path)?.gatewayId ?? "";
              splitLines(blobs[i]!.toString("utf8")).lines.forEach((line, j) => {
                read++;
                let record: EvidenceRecord;
                try {
                  record = JSON.parse(line) as EvidenceRecord;
                } catch {
                  return; // verify reports malformed lines; query skips them
                }
                if (!filter(record)) return;
                found.push({
                  record,
                  gatewayId,
                  path,
                  line: j + 1,
                  t: parseTimestampMicros(record.stageTimestamp),
                });
              });
            });
            found.sort((a, b) => a.t - b.t || (a.gatewayId < b.gatewayId ? -1 : 1) || a.line - b.line);
            opts.onProgress?.({ hour: `${y}-${m}-${d}T${h}`, records: read });
            for (const { t: _t, ...rec } of found) yield rec;
          }
        }
      }
    }
  } finally {
    reader.close();
  }
}

/** Records matching every given filter field. */
export async function* queryRecords(
  gitDir: string,
  filter: RecordFilter,
  onProgress?: WalkOptions["onProgress"],
): AsyncGenerator<FoundRecord> {
  const match = compileFilter(filter);
  const walk: WalkOptions = { gitDir };
  if (onProgress) walk.onProgress = onProgress;
  if (filter.since !== undefined) walk.since = filter.since;
  if (filter.until !== undefined) walk.until = filter.until;
  if (filter.gatewayId !== undefined) walk.gatewayId = filter.gatewayId;
  for await (const found of walkRecords(walk)) if (match(found.record)) yield found;
}

/** Session recordings (sessions/YYYY/MM/DD/<auditID>.cast) of the heads, in a date range. */
export async function listSessions(
  opts: WalkOptions,
): Promise<{ gatewayId: string; path: string; auditID: string }[]> {
  const since = bound("since", opts.since);
  const until = bound("until", opts.until);
  const reader = new ObjectReader(opts.gitDir);
  const out: { gatewayId: string; path: string; auditID: string }[] = [];
  try {
    for (const [gatewayId, oid] of await heads(opts.gitDir)) {
      if (opts.gatewayId !== undefined && opts.gatewayId !== gatewayId) continue;
      const commit = parseCommit(oid, await reader.readType(oid, "commit"));
      const root = parseTree(await reader.readType(commit.tree, "tree"));
      for (const y of (await subtree(reader, root, "sessions")).filter((e) => e.isTree)) {
        for (const m of parseTree(await reader.readType(y.oid, "tree")).filter((e) => e.isTree)) {
          for (const d of parseTree(await reader.readType(m.oid, "tree")).filter((e) => e.isTree)) {
            const dayStart = Date.UTC(Number(y.name), Number(m.name) - 1, Number(d.name)) * 1000;
            if (since !== null && dayStart + 24 * HOUR_US <= since) continue;
            if (until !== null && dayStart >= until) continue;
            for (const f of parseTree(await reader.readType(d.oid, "tree"))) {
              if (f.isTree || !f.name.endsWith(".cast")) continue;
              out.push({
                gatewayId,
                path: `sessions/${y.name}/${m.name}/${d.name}/${f.name}`,
                auditID: f.name.slice(0, -5),
              });
            }
          }
        }
      }
    }
  } finally {
    reader.close();
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}
