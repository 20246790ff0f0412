/**
 * The evidence repo's layout and record shape as the auditor's tools read them.
 * Layout: records/YYYY/MM/DD/HH/<gatewayId>-<firstSeq, 12 digits>.jsonl, one canonical
 * JSON EvidenceRecord per line (gateway/ports.ts); sessions/, policies/, checkpoints/ beside.
 */
import type { EvidenceRecord } from "../../gateway/ports.ts";

export interface RecordFilePath {
  path: string;
  year: number;
  month: number;
  day: number;
  hour: number;
  gatewayId: string;
  firstSeq: number;
}

const RECORD_PATH = /^records\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(.+)-(\d{12})\.jsonl$/;

export function parseRecordPath(path: string): RecordFilePath | null {
  const m = RECORD_PATH.exec(path);
  if (!m) return null;
  return {
    path,
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4]),
    gatewayId: m[5]!,
    firstSeq: Number(m[6]),
  };
}

const TS = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * RFC 3339 timestamp -> microseconds since the epoch (Date.parse drops microseconds, and
 * audit.k8s.io timestamps carry them). NaN when the string is not RFC 3339.
 */
export function parseTimestampMicros(ts: string): number {
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
  if (r.apiVersion !== "audit.k8s.io/v1") return `apiVersion is ${JSON.stringify(r.apiVersion)}, expected "audit.k8s.io/v1"`;
  if (r.kind !== "Event") return `kind is ${JSON.stringify(r.kind)}, expected "Event"`;
  if (typeof r.level !== "string" || !LEVELS.has(r.level)) return "level missing or invalid";
  if (typeof r.auditID !== "string" || r.auditID === "") return "auditID missing";
  if (typeof r.verb !== "string") return "verb missing";
  if (typeof r.requestURI !== "string") return "requestURI missing";
  const user = r.user;
  if (!isObj(user) || typeof user.username !== "string" || !Array.isArray(user.groups)) return "user missing or invalid";
  if (!isObj(r.responseStatus) || typeof r.responseStatus.code !== "number") return "responseStatus.code missing";
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
  if (typeof c.decision !== "string" || !DECISIONS.has(c.decision)) return "custos.decision missing or invalid";
  if (typeof c.effective !== "string" || !DECISIONS.has(c.effective)) return "custos.effective missing or invalid";
  if (typeof c.ruleId !== "string") return "custos.ruleId missing";
  if (typeof c.policyHash !== "string") return "custos.policyHash missing";
  if (typeof c.type !== "string" || !TYPES.has(c.type)) return "custos.type missing or invalid";
  if (typeof c.gatewayId !== "string" || c.gatewayId === "") return "custos.gatewayId missing";
  if (typeof c.seq !== "number" || !Number.isSafeInteger(c.seq) || c.seq < 1)
    return "custos.seq missing or not a positive integer";
  if (c.masking !== undefined && (!isObj(c.masking) || !isObj(c.masking.counts))) return "custos.masking invalid";
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
