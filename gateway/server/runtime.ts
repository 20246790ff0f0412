/**
 * What every request handler shares: the current policy snapshot (swapped atomically on
 * reload), the stage implementations and the injected clock, logger and limits.
 */
import type { GatewayConfig } from "../../sdk/schema/config.ts";
import type { DecisionOutcome } from "../decision/index.ts";
import type { Authenticator } from "../identity/index.ts";
import type {
  ApprovalService,
  DecisionInput,
  EvidenceSink,
  Masker,
  MaskSummary,
  RequestInfo,
} from "../ports.ts";
import type { Upstream } from "../upstream/index.ts";

export interface Clock {
  now(): Date;
}

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** JSON lines on stderr (the default at composition roots). */
export const stderrLogger: Logger = {
  info: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: "info", msg, ...fields })}\n`),
  warn: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: "warn", msg, ...fields })}\n`),
  error: (msg, fields) => process.stderr.write(`${JSON.stringify({ level: "error", msg, ...fields })}\n`),
};

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export interface Limits {
  /** request bodies larger than this are refused with 413 */
  maxBodyBytes: number;
  /** buffered (non-stream) upstream responses larger than this are refused with 502 */
  maxResponseBytes: number;
  /** one watch event (line) larger than this closes the stream */
  maxEventBytes: number;
  /** a required exec/attach session recording larger than this closes the session (fail closed) */
  maxRecordingBytes: number;
  /**
   * a client connection with no call in flight is closed after this long: an HTTP/2 session
   * without streams, a TLS connection that never sends a request (as kube-apiserver's 90 s
   * IdleTimeout); HTTP/1.1 between requests keeps its keep-alive timeout
   */
  idleConnectionMs: number;
  /**
   * an exec/attach/port-forward client is sent a WebSocket ping this often; one that has not
   * answered (pong) nor sent anything by the next ping is gone (a laptop that slept, a dropped
   * network without a FIN): both sides of its session are closed
   */
  sessionPingMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 3 * 1024 * 1024, // kube-apiserver's own default request size limit is 3 MiB
  maxResponseBytes: 256 * 1024 * 1024,
  maxEventBytes: 16 * 1024 * 1024,
  maxRecordingBytes: 64 * 1024 * 1024,
  idleConnectionMs: 90_000,
  sessionPingMs: 30_000,
};

export interface Snapshot {
  config: GatewayConfig;
  masker: Masker;
}

export interface PolicyEngine {
  parseRequestInfo(method: string, rawUrl: string): RequestInfo;
  evaluate(config: GatewayConfig, input: DecisionInput): DecisionOutcome;
}

export interface Runtime {
  snapshot(): Snapshot;
  engine: PolicyEngine;
  auth: Authenticator;
  upstream: Upstream;
  sink: EvidenceSink;
  approval: ApprovalService;
  clock: Clock;
  logger: Logger;
  limits: Limits;
  impersonate: boolean;
  sleep: (ms: number) => Promise<void>;
  approvalPollMs: number;
  loginKey?: Uint8Array;
  /** open streams and sockets, closed by stop() */
  live: Set<{ destroy(): void }>;
  /** told of each reload that changes the policy hash (open watches, log streams, sessions) */
  reloads: Set<(change: { oldPolicyHash: string; newPolicyHash: string }) => void>;
}

export function mergeSummaries(a: MaskSummary | undefined, b: MaskSummary, maxPaths = 200): MaskSummary {
  if (!a) return b;
  const rules = [...new Set([...a.rules, ...b.rules])].sort();
  const paths = [...a.paths];
  let truncated = a.truncated || b.truncated;
  for (const p of b.paths) {
    if (paths.length >= maxPaths) {
      truncated = true;
      break;
    }
    if (!paths.includes(p)) paths.push(p);
  }
  const counts: Record<string, number> = { ...a.counts };
  for (const [k, v] of Object.entries(b.counts)) counts[k] = (counts[k] ?? 0) + v;
  return { rules, paths, truncated, counts };
}
