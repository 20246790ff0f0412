/**
 * Operator-facing health and metrics, on a listener of their own (never the agents' port):
 * `/livez`, `/readyz` and `/metrics` in the Prometheus text format. Everything is counted where
 * the evidence is written — every call produces exactly one record — so the figures are the
 * evidence's own view, and they carry no values: no tokens, users, paths or PHI, only decisions,
 * status classes and the policy hash.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { EvidenceRecord, EvidenceSink } from "../ports.ts";

/** upper bounds (seconds) of the call-duration histogram */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface MetricsState {
  policyHash: () => string;
  /** calls in flight (HTTP requests and sessions) */
  inFlight: () => number;
  /** the evidence sink's own view, when it has one (it may recover without an append) */
  sinkHealth?: () => { ok: boolean; reason: string } | undefined;
}

export class Metrics {
  private readonly records = new Map<string, number>();
  private readonly buckets = new Array<number>(BUCKETS.length).fill(0);
  private durationSum = 0;
  private durationCount = 0;
  private appendFailures = 0;
  private lastAppendFailedAt: number | null = null;
  private lastAppendOkAt: number | null = null;
  private readonly started = Date.now();

  constructor(private readonly state: MetricsState) {}

  /** count a durable record (called after the sink accepted it) */
  recorded(r: EvidenceRecord): void {
    const type = r.custos.type;
    const code = r.responseStatus.code;
    const key =
      type === "call"
        ? `type="call",decision="${r.custos.decision}",effective="${r.custos.effective}",code="${Math.floor(code / 100)}xx"`
        : `type="${type}",decision="",effective="",code=""`;
    this.records.set(key, (this.records.get(key) ?? 0) + 1);
    this.lastAppendOkAt = Date.now();
    if (type !== "call") return;
    const from = Date.parse(r.requestReceivedTimestamp);
    const to = Date.parse(r.stageTimestamp);
    if (!Number.isFinite(from) || !Number.isFinite(to) || to < from) return;
    const s = (to - from) / 1000;
    this.durationSum += s;
    this.durationCount++;
    for (let i = 0; i < BUCKETS.length; i++) if (s <= BUCKETS[i]!) this.buckets[i]!++;
  }

  appendFailed(): void {
    this.appendFailures++;
    this.lastAppendFailedAt = Date.now();
  }

  /**
   * ready unless the sink says it refuses records, or (a sink without a view of its own) the
   * most recent evidence append failed: calls are being refused
   */
  readiness(): { ready: boolean; reason: string } {
    const h = this.state.sinkHealth?.();
    if (h) return h.ok ? { ready: true, reason: "ok" } : { ready: false, reason: h.reason };
    if (this.lastAppendFailedAt !== null && (this.lastAppendOkAt ?? 0) <= this.lastAppendFailedAt)
      return {
        ready: false,
        reason: "the last evidence append failed: calls are refused until the evidence store accepts records",
      };
    return { ready: true, reason: "ok" };
  }

  /** the Prometheus text exposition format (version 0.0.4) */
  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    metric(
      "custos_records_total",
      "counter",
      "Evidence records written, by type; calls by decision, effect and status class.",
    );
    for (const [k, v] of [...this.records].sort(([a], [b]) => (a < b ? -1 : 1)))
      out.push(`custos_records_total{${k}} ${v}`);
    metric(
      "custos_evidence_append_failures_total",
      "counter",
      "Records the evidence sink refused (each refused its call).",
    );
    out.push(`custos_evidence_append_failures_total ${this.appendFailures}`);
    metric(
      "custos_call_duration_seconds",
      "histogram",
      "Received to answered (sessions: to their end), per call.",
    );
    BUCKETS.forEach((b, i) => {
      out.push(`custos_call_duration_seconds_bucket{le="${b}"} ${this.buckets[i]}`);
    });
    out.push(`custos_call_duration_seconds_bucket{le="+Inf"} ${this.durationCount}`);
    out.push(`custos_call_duration_seconds_sum ${this.durationSum.toFixed(6)}`);
    out.push(`custos_call_duration_seconds_count ${this.durationCount}`);
    metric("custos_calls_in_flight", "gauge", "Calls and sessions being served now.");
    out.push(`custos_calls_in_flight ${this.state.inFlight()}`);
    metric("custos_policy_info", "gauge", "The policy in force (always 1).");
    out.push(`custos_policy_info{policy_hash="${this.state.policyHash()}"} 1`);
    metric("custos_ready", "gauge", "1 when the gateway accepts calls (see /readyz).");
    out.push(`custos_ready ${this.readiness().ready ? 1 : 0}`);
    metric("custos_uptime_seconds", "gauge", "Seconds since the gateway started.");
    out.push(`custos_uptime_seconds ${((Date.now() - this.started) / 1000).toFixed(3)}`);
    return `${out.join("\n")}\n`;
  }
}

/** The sink, counting what it accepts and refuses (the calls' fate is the sink's answer). */
export function meteredSink(sink: EvidenceSink, m: Metrics): EvidenceSink {
  return {
    async append(r) {
      try {
        const res = await sink.append(r);
        m.recorded(r);
        return res;
      } catch (e) {
        m.appendFailed();
        throw e;
      }
    },
    appendArtifact: (a) => sink.appendArtifact(a),
    close: () => sink.close(),
    ...(sink.health ? { health: () => sink.health!() } : {}),
  };
}

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

/** `/livez`, `/readyz`, `/metrics` over plain HTTP (bind it to loopback or a private network). */
export async function startOpsServer(
  listen: { host?: string; port?: number },
  m: Metrics,
): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    if (path === "/livez") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const r = m.readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(`${r.reason}\n`);
    } else if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(m.render());
    } else {
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end("custos operations endpoints: /livez, /readyz, /metrics\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port ?? 0, listen.host ?? "127.0.0.1", () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
