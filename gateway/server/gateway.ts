/**
 * `startGateway`: the composition of the stages behind an HTTPS server. Every dependency is
 * injectable (evidence sink, approval service, masker factory, clock, logger, policy engine);
 * the CLI and the demo are the composition roots that read files and the environment.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { canonicalJson, sha256Hex } from "../../sdk/lib/canonical.ts";
import { GatewayConfig } from "../../sdk/schema/config.ts";
import { NoApprovalBackend } from "../approval/local.ts";
import { evaluate } from "../decision/index.ts";
import { statusBody } from "../errors.ts";
import { reloadRecord } from "../evidence/record.ts";
import { Authenticator, type AuthenticatorOptions } from "../identity/index.ts";
import type { ApprovalService, EvidenceSink, Masker } from "../ports.ts";
import { parseRequestInfo } from "../requestinfo/index.ts";
import { TLS_CIPHERS } from "../tls/ciphers.ts";
import type { Upstream } from "../upstream/index.ts";
import { handleHttp } from "./http.ts";
import { Metrics, meteredSink, type OpsServer, startOpsServer } from "./metrics.ts";
import {
  type Clock,
  DEFAULT_LIMITS,
  type Limits,
  type Logger,
  type PolicyEngine,
  type Runtime,
  type Snapshot,
  silentLogger,
} from "./runtime.ts";
import { createWebSocketServer, handleUpgrade } from "./upgrade.ts";

export interface GatewayOptions {
  /** the compiled policy (validated with the zod schema) */
  config: unknown;
  upstream: Upstream;
  /** TLS for the listener: PEM cert + key; caPem is what agent kubeconfigs embed */
  tls: { cert: string; key: string; caPem: string };
  /** the listener's cipher preference (OpenSSL cipher list; default TLS_CIPHERS) */
  tlsCiphers?: string;
  listen?: { host?: string; port?: number };
  auth: AuthenticatorOptions;
  sink: EvidenceSink;
  maskerFactory: (config: GatewayConfig) => Masker;
  approval?: ApprovalService;
  engine?: PolicyEngine;
  clock?: Clock;
  logger?: Logger;
  limits?: Partial<Limits>;
  /** send Impersonate-User/Group for the agent, so the cluster's RBAC applies too */
  impersonate?: boolean;
  sleep?: (ms: number) => Promise<void>;
  approvalPollMs?: number;
  /** the operators' listener (/livez, /readyz, /metrics; plain HTTP): bind it to loopback or a private network */
  ops?: { host?: string; port?: number };
}

export interface RunningGateway {
  /** https://host:port */
  url: string;
  port: number;
  caPem: string;
  /** http://host:port of /livez, /readyz and /metrics, when `ops` was given */
  opsUrl?: string;
  /** the policy in force */
  config(): GatewayConfig;
  /** validate and swap the policy atomically; records a "policy-reload" evidence record */
  reload(config: unknown, by?: string): Promise<{ oldPolicyHash: string; newPolicyHash: string }>;
  stop(): Promise<void>;
}

export class ConfigInvalidError extends Error {
  readonly code = "POLICY_CONFIG_INVALID";
  readonly data: { issues: { path: string; message: string }[] };
  constructor(issues: { path: string; message: string }[]) {
    super(
      `the compiled policy is not a valid GatewayConfig: ${issues
        .slice(0, 5)
        .map((i) => `${i.path || "(root)"}: ${i.message}`)
        .join("; ")}; recompile it with "custos compile"`,
    );
    this.data = { issues };
  }
}

/**
 * Validate a compiled policy: the zod schema, and its policyHash against its content (sha256 of
 * the canonical JSON without policyHash), so a hand-edited policy cannot pass as the reviewed one.
 */
export function parseConfig(config: unknown): GatewayConfig {
  const r = GatewayConfig.safeParse(config);
  if (!r.success)
    throw new ConfigInvalidError(r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
  const { policyHash: _h, ...rest } = config as Record<string, unknown>;
  const actual = `sha256:${sha256Hex(canonicalJson(rest))}`;
  if (actual !== r.data.policyHash)
    throw new ConfigInvalidError([
      {
        path: "policyHash",
        message: `is ${r.data.policyHash} but the content hashes to ${actual} (edited after compiling?)`,
      },
    ]);
  return r.data;
}

export async function startGateway(o: GatewayOptions): Promise<RunningGateway> {
  const first = parseConfig(o.config);
  let snapshot: Snapshot = { config: first, masker: o.maskerFactory(first) };
  const clock = o.clock ?? { now: () => new Date() };
  const logger = o.logger ?? silentLogger;
  let inFlight = 0;
  const metrics = new Metrics({
    policyHash: () => snapshot.config.policyHash,
    inFlight: () => inFlight,
    sinkHealth: () => o.sink.health?.(),
  });
  const rt: Runtime = {
    snapshot: () => snapshot,
    engine: o.engine ?? { parseRequestInfo: (m, u) => parseRequestInfo(m, u), evaluate },
    auth: new Authenticator(o.auth),
    upstream: o.upstream,
    sink: meteredSink(o.sink, metrics),
    approval: o.approval ?? new NoApprovalBackend(),
    clock,
    logger,
    limits: { ...DEFAULT_LIMITS, ...o.limits },
    impersonate: o.impersonate ?? false,
    sleep: o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
    approvalPollMs: o.approvalPollMs ?? 2000,
    live: new Set(),
    reloads: new Set(),
  };
  if (o.auth.loginKey) rt.loginKey = o.auth.loginKey;

  const wss = createWebSocketServer();
  // HTTP/2 (ALPN h2) like kube-apiserver, so client-go can cancel a watch at once (RST_STREAM)
  // instead of waiting for the next byte on an HTTP/1.1 connection; HTTP/1.1 stays for clients
  // that need it and for the WebSocket upgrades of exec/attach/port-forward.
  const server = http2.createSecureServer(
    // Go's cipher order (AES-128-GCM first), chosen by the server whatever the client's order
    {
      cert: o.tls.cert,
      key: o.tls.key,
      allowHTTP1: true,
      ciphers: o.tlsCiphers ?? TLS_CIPHERS,
      honorCipherOrder: true,
    },
    (req, res) => {
      served.add(req.socket);
      inFlight++;
      res.once("close", () => inFlight--);
      void handleHttp(rt, req as unknown as IncomingMessage, res as unknown as ServerResponse);
    },
  );
  // the HTTP/1.1 side: no overall request deadline (watches and logs -f are long), bounded headers
  const h1 = server as unknown as {
    requestTimeout: number;
    headersTimeout: number;
    keepAliveTimeout: number;
  };
  h1.requestTimeout = 0;
  h1.headersTimeout = 30_000;
  h1.keepAliveTimeout = 65_000;
  // stop() must end keep-alive connections and HTTP/2 sessions too
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    // like http.createServer's default: no Nagle (it stalls multi-chunk bodies ~40 ms on delayed ACKs)
    s.setNoDelay(true);
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  // connections with no call in flight are closed after idleConnectionMs (else any peer could
  // hold file descriptors for ever): an HTTP/2 session once its last stream is gone, ...
  const idleMs = rt.limits.idleConnectionMs;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      idle = setTimeout(() => s.close(), idleMs);
    };
    s.on("stream", (st: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(idle);
      st.once("close", () => {
        if (--open === 0 && !s.closed && !s.destroyed) arm();
      });
    });
    arm();
    s.on("close", () => {
      clearTimeout(idle);
      sessions.delete(s);
    });
    s.on("error", () => {});
  });
  // ... and an HTTP/1.1 connection that never sends a request (after one, keepAliveTimeout applies)
  const served = new WeakSet<object>();
  server.on("secureConnection", (s: TLSSocket) => {
    if (s.alpnProtocol === "h2") return;
    const idle = setTimeout(() => {
      if (!served.has(s)) s.destroy();
    }, idleMs);
    s.once("close", () => clearTimeout(idle));
  });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    served.add(socket);
    inFlight++;
    socket.once("close", () => inFlight--);
    void handleUpgrade(rt, wss, req, socket, head);
  });
  // malformed HTTP/1.1 (the parser refused it): a Status, then close; nothing reached the stages
  // (an HTTP/1.1 server event, emitted by the HTTP/2 server for its allowHTTP1 connections)
  (server as unknown as NodeJS.EventEmitter).on("clientError", (_err: Error, socket: Socket) => {
    if (socket.destroyed || !socket.writable) return;
    const body = JSON.stringify(
      statusBody(
        400,
        "BadRequest",
        "custos: malformed HTTP request; the connection is closed — check the client",
      ),
    );
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  const host = o.listen?.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.listen?.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  logger.info("gateway listening", { url: `https://${urlHost}:${port}`, policyHash: first.policyHash });
  let ops: OpsServer | undefined;
  if (o.ops) {
    try {
      ops = await startOpsServer(o.ops, metrics);
    } catch (e) {
      server.close();
      throw e;
    }
    logger.info("operations endpoints listening", { url: ops.url, paths: ["/livez", "/readyz", "/metrics"] });
  }

  let reloading: Promise<unknown> = Promise.resolve();
  return {
    url: `https://${urlHost}:${port}`,
    port,
    caPem: o.tls.caPem,
    ...(ops ? { opsUrl: ops.url } : {}),
    config: () => snapshot.config,
    reload(config, by = "custos-gateway") {
      const run = async () => {
        const next = parseConfig(config);
        const masker = o.maskerFactory(next);
        const oldPolicyHash = snapshot.config.policyHash;
        // the switch is itself evidence; if it cannot be recorded, the old policy stays
        await rt.sink.append(
          reloadRecord({
            auditID: randomUUID(),
            at: clock.now(),
            oldPolicyHash,
            newPolicyHash: next.policyHash,
            by,
          }),
        );
        snapshot = { config: next, masker };
        logger.info("policy reloaded", { oldPolicyHash, newPolicyHash: next.policyHash });
        // open watches and log streams end (re-opened under the new policy); sessions are told
        if (next.policyHash !== oldPolicyHash)
          for (const f of [...rt.reloads]) f({ oldPolicyHash, newPolicyHash: next.policyHash });
        return { oldPolicyHash, newPolicyHash: next.policyHash };
      };
      const p = reloading.then(run, run);
      reloading = p.catch(() => undefined);
      return p;
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of rt.live) s.destroy();
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
      });
      for (const c of wss.clients) c.terminate();
      await ops?.close();
      o.upstream.close();
    },
  };
}
