/**
 * The evidence repo's layout and record shape as the auditor's tools read them.
 * Layout: records/YYYY/MM/DD/HH/MM/<gatewayId>-<firstSeq, 12 digits>.jsonl (the UTC minute of
 * the segment's first record; repositories written before the minute level have
 * records/YYYY/MM/DD/HH/<file> and are read the same way), one canonical JSON EvidenceRecord per
 * line (gateway/ports.ts); sessions/, policies/, checkpoints/ beside.
 */
import * as nodeCrypto from "node:crypto";
import type { EvidenceRecord } from "../../gateway/ports.ts";

export interface RecordFilePath {
  path: string;
  year: number;
  month: number;
  day: number;
  hour: number;
  /** null in the hour-level layout (before the minute level) */
  minute: number | null;
  /** "YYYY/MM/DD/HH" or "YYYY/MM/DD/HH/MM": the directory, which must hold the first record's time */
  partition: string;
  gatewayId: string;
  firstSeq: number;
}

const RECORD_PATH = /^records\/((\d{4})\/(\d{2})\/(\d{2})\/(\d{2})(?:\/(\d{2}))?)\/([^/]+)-(\d{12})\.jsonl$/;

export function parseRecordPath(path: string): RecordFilePath | null {
  const m = RECORD_PATH.exec(path);
  if (!m) return null;
  return {
    path,
    year: Number(m[2]),
    month: Number(m[3]),
    day: Number(m[4]),
    hour: Number(m[5]),
    minute: m[6] === undefined ? null : Number(m[6]),
    partition: m[1]!,
    gatewayId: m[7]!,
    firstSeq: Number(m[8]),
  };
}

const TS = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** hour prefix "YYYY-MM-DDTHH" -> epoch ms of that hour (records arrive in time order: one entry suffices) */
let hourKey = "";
let hourMs = 0;

function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return Number.NaN;
    n = n * 10 + d;
  }
  return n;
}

/**
 * RFC 3339 timestamp -> microseconds since the epoch (Date.parse drops microseconds, and
 * audit.k8s.io timestamps carry them). NaN when the string is not RFC 3339. The common
 * form "YYYY-MM-DDTHH:MM:SS.ffffffZ" takes a fast path: verify parses two per record.
 */
export function parseTimestampMicros(ts: string): number {
  if (ts.length === 27 && ts.charCodeAt(26) === 90 && ts.charCodeAt(19) === 46 && ts.charCodeAt(13) === 58) {
    const key = ts.slice(0, 13);
    if (key !== hourKey) {
      const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})$/.exec(key);
      if (!m) return Number.NaN;
      hourMs = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!);
      hourKey = key;
    }
    const min = digits(ts, 14, 16);
    const sec = digits(ts, 17, 19);
    const frac = digits(ts, 20, 26);
    if (ts.charCodeAt(16) !== 58 || !(min < 60) || !(sec < 61) || Number.isNaN(frac)) return Number.NaN;
    return (hourMs + min * 60_000 + sec * 1000) * 1000 + frac;
  }
  const m = TS.exec(ts);
  if (!m) return Number.NaN;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  let micros = ms * 1000;
  if (m[7]) micros += Number(m[7].padEnd(6, "0").slice(0, 6));
  const zone = m[8]!;
  if (zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const offMin = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
    micros -= sign * offMin * 60_000_000;
  }
  return micros;
}

const DECISIONS = new Set(["allow", "deny", "requireApproval"]);
const TYPES = new Set(["call", "policy-reload", "session", "approval"]);
const LEVELS = new Set(["Metadata", "Request", "RequestResponse"]);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Check the fields the auditor's tools rely on. Returns null when the record has the expected
 * shape, otherwise what is wrong. Hand-written rather than a schema library: it runs once per
 * record and verify must sustain well over 50,000 records/s.
 */
export function checkRecordShape(r: unknown): string | null {
  if (!isObj(r)) return "not a JSON object";
  if (r.apiVersion !== "audit.k8s.io/v1")
    return `apiVersion is ${JSON.stringify(r.apiVersion)}, expected "audit.k8s.io/v1"`;
  if (r.kind !== "Event") return `kind is ${JSON.stringify(r.kind)}, expected "Event"`;
  if (typeof r.level !== "string" || !LEVELS.has(r.level)) return "level missing or invalid";
  if (typeof r.auditID !== "string" || r.auditID === "") return "auditID missing";
  if (typeof r.verb !== "string") return "verb missing";
  if (typeof r.requestURI !== "string") return "requestURI missing";
  const user = r.user;
  if (!isObj(user) || typeof user.username !== "string" || !Array.isArray(user.groups))
    return "user missing or invalid";
  if (!isObj(r.responseStatus) || typeof r.responseStatus.code !== "number")
    return "responseStatus.code missing";
  if (r.objectRef !== undefined && !isObj(r.objectRef)) return "objectRef is not an object";
  if (typeof r.stageTimestamp !== "string" || Number.isNaN(parseTimestampMicros(r.stageTimestamp)))
    return "stageTimestamp missing or not RFC 3339";
  if (
    typeof r.requestReceivedTimestamp !== "string" ||
    Number.isNaN(parseTimestampMicros(r.requestReceivedTimestamp))
  )
    return "requestReceivedTimestamp missing or not RFC 3339";
  const c = r.custos;
  if (!isObj(c)) return "custos block missing";
  if (typeof c.decision !== "string" || !DECISIONS.has(c.decision))
    return "custos.decision missing or invalid";
  if (typeof c.effective !== "string" || !DECISIONS.has(c.effective))
    return "custos.effective missing or invalid";
  if (typeof c.ruleId !== "string") return "custos.ruleId missing";
  if (typeof c.policyHash !== "string") return "custos.policyHash missing";
  if (typeof c.type !== "string" || !TYPES.has(c.type)) return "custos.type missing or invalid";
  if (typeof c.gatewayId !== "string" || c.gatewayId === "") return "custos.gatewayId missing";
  if (typeof c.seq !== "number" || !Number.isSafeInteger(c.seq) || c.seq < 1)
    return "custos.seq missing or not a positive integer";
  if (c.masking !== undefined && (!isObj(c.masking) || !isObj(c.masking.counts)))
    return "custos.masking invalid";
  return null;
}

export type { EvidenceRecord };

/** Split a blob's text into lines; a trailing newline ends the last line (jsonl). */
export function splitLines(text: string): { lines: string[]; complete: boolean } {
  if (text === "") return { lines: [], complete: true };
  const complete = text.endsWith("\n");
  const lines = text.split("\n");
  if (complete) lines.pop();
  return { lines, complete };
}

/** What verify needs from one record line; computed line by line, possibly in a worker thread. */
export interface LineInfo {
  /** why the line is not a record (not JSON, wrong shape), or null */
  problem: string | null;
  seq: number;
  gatewayId: string;
  stageTimestamp: string;
  micros: number;
}

export function parseLine(line: string): LineInfo {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return { problem: "line is not valid JSON", seq: 0, gatewayId: "", stageTimestamp: "", micros: 0 };
  }
  const problem = checkRecordShape(rec);
  if (problem) return { problem, seq: 0, gatewayId: "", stageTimestamp: "", micros: 0 };
  const r = rec as { stageTimestamp: string; custos: { gatewayId: string; seq: number } };
  return {
    problem: null,
    seq: r.custos.seq,
    gatewayId: r.custos.gatewayId,
    stageTimestamp: r.stageTimestamp,
    micros: parseTimestampMicros(r.stageTimestamp),
  };
}

/** A parsed jsonl chunk: one LineInfo per line, and sha256 of each line's bytes (the chain's leaves). */
export interface ParsedChunk {
  infos: LineInfo[];
  /** 32 bytes per line: sha256(line without its newline) */
  leaves: Uint8Array;
}

const sha256 =
  typeof nodeCrypto.hash === "function"
    ? (b: Uint8Array): Uint8Array => nodeCrypto.hash("sha256", b, "buffer")
    : (b: Uint8Array): Uint8Array => nodeCrypto.createHash("sha256").update(b).digest();

/** Parse every line of a jsonl chunk (a trailing partial line included). */
export function parseLines(bytes: Uint8Array): ParsedChunk {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { lines } = splitLines(buf.toString("utf8"));
  const leaves = new Uint8Array(lines.length * 32);
  let pos = 0;
  for (let j = 0; j < lines.length; j++) {
    // "\n" never occurs inside a UTF-8 sequence: string lines and byte lines correspond
    const end = buf.indexOf(10, pos);
    leaves.set(sha256(buf.subarray(pos, end < 0 ? buf.length : end)), j * 32);
    pos = end + 1;
  }
  return { infos: lines.map(parseLine), leaves };
}
