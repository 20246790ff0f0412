/**
 * The upstream adapter: the only holder of the cluster credential. The KubeConfig is loaded
 * with `@kubernetes/client-node` (file or in-cluster); its TLS and auth options are applied
 * to the gateway's own `https.request` / WebSocket client so streaming and upgrades stay
 * under the gateway's control. The credential never reaches a client, a log or evidence.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import net from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { badGateway, type GatewayError, gatewayTimeout } from "../errors.ts";
import type { CallSignal } from "../ports.ts";
import { FIELD_VALUE, TOKEN } from "./h1parse.ts";
import { H1Pool, type LeanResponse } from "./h1pool.ts";

export type { UpstreamResponse } from "./h1pool.ts";

export interface UpstreamOptions {
  /** answer 504 when the upstream sends no response headers within this time */
  timeoutMs: number;
  /** how long fetched credentials (exec plugins, rotated SA tokens) are reused */
  credentialTtlMs?: number;
  now?: () => number;
  /** plain GETs through the lean client (h1pool.ts; default) or always through `https.request` */
  client?: "lean" | "node";
}

export interface UpstreamTls {
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface UpstreamCredential {
  headers: Record<string, string>;
  tls: UpstreamTls;
}

export class UpstreamConfigError extends Error {
  readonly code = "UPSTREAM_CONFIG_INVALID";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.data = data;
  }
}

export function loadKubeConfig(source: {
  kubeconfig?: string;
  inCluster?: boolean;
  context?: string;
}): KubeConfig {
  const kc = new KubeConfig();
  if (source.inCluster) kc.loadFromCluster();
  else if (source.kubeconfig) kc.loadFromFile(source.kubeconfig);
  else
    throw new UpstreamConfigError("upstream: give upstream.kubeconfig (a file) or upstream.inCluster: true");
  if (source.context) kc.setCurrentContext(source.context);
  if (!kc.getCurrentCluster())
    throw new UpstreamConfigError(
      "upstream kubeconfig has no current cluster; set current-context or upstream.context",
    );
  return kc;
}

/** a path (+ query) that the WHATWG URL parser leaves exactly as it is (after a `/`) */
const SIMPLE_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(\?[A-Za-z0-9\-._~!$&()*+,;=:@/%?]+)?$/;
/** `.`/`..` segments (also percent-encoded) are resolved by the URL parser */
const DOT_SEGMENT = /(^|\/)(\.|%2e)(\.|%2e)?(\/|$)|\/\//i;
/** what Node's http client accepts in a request target (else it throws); header names and values: h1parse's */
const REQUEST_TARGET = /^[\x21-\x7e]+$/;
/** requests in flight over the lean client before further ones queue on the agent instead */
const LEAN_MAX_ACTIVE = 256;

export class Upstream {
  readonly base: URL;
  readonly #kc: KubeConfig;
  readonly #o: UpstreamOptions;
  #cred: { value: UpstreamCredential; at: number } | undefined;
  #agent: http.Agent | undefined;
  /** the agent for long-lived calls (watches, log streams): no socket cap */
  #longAgent: http.Agent | undefined;
  #agentKey = "";
  /** the credential the agent was last checked against (the key is recomputed only when it changes) */
  #agentCred: UpstreamCredential | undefined;
  readonly #prefix: string;
  readonly #hostname: string;
  #pool: H1Pool | undefined;
  /** the credential the pool was built for */
  #poolCred: UpstreamCredential | undefined;

  constructor(kc: KubeConfig, o: UpstreamOptions) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new UpstreamConfigError("upstream kubeconfig has no current cluster");
    this.#kc = kc;
    this.#o = o;
    this.base = new URL(cluster.server);
    if (this.base.protocol !== "https:" && this.base.protocol !== "http:")
      throw new UpstreamConfigError(
        `upstream server must be https:// (or http:// for tests), found ${this.base.protocol}`,
      );
    this.#prefix = this.base.pathname.replace(/\/+$/, "");
    this.#hostname = this.base.hostname.replace(/^\[|\]$/g, "");
  }

  get timeoutMs(): number {
    return this.#o.timeoutMs;
  }

  /** The credential and TLS options from the kubeconfig (cached briefly; exec plugins may be slow). */
  /** the fetched credential while it is fresh (credentialTtlMs), else undefined */
  #freshCredential(now: number): UpstreamCredential | undefined {
    const c = this.#cred;
    return c && now - c.at < (this.#o.credentialTtlMs ?? 10_000) ? c.value : undefined;
  }

  async credential(): Promise<UpstreamCredential> {
    const now = (this.#o.now ?? Date.now)();
    const fresh = this.#freshCredential(now);
    if (fresh) return fresh;
    const opts: https.RequestOptions & { headers: Record<string, string> } = { headers: {} };
    await this.#kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {}))
      if (typeof v === "string") headers[k.toLowerCase()] = v;
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
    const tls: UpstreamTls = {};
    if (opts.ca) tls.ca = opts.ca as Buffer;
    if (opts.cert) tls.cert = opts.cert as Buffer;
    if (opts.key) tls.key = opts.key as Buffer;
    if (opts.rejectUnauthorized !== undefined) tls.rejectUnauthorized = opts.rejectUnauthorized;
    if (opts.servername) tls.servername = opts.servername;
    const value = { headers, tls };
    this.#cred = { value, at: now };
    return value;
  }

  #agentFor(cred: UpstreamCredential, long = false): http.Agent {
    if (this.#agent && cred === this.#agentCred) return long ? this.#longAgent! : this.#agent;
    this.#agentCred = cred;
    const tls = cred.tls;
    const key = JSON.stringify([
      String(tls.ca ?? ""),
      String(tls.cert ?? ""),
      tls.rejectUnauthorized,
      tls.servername,
    ]);
    if (!this.#agent || key !== this.#agentKey) {
      this.#agent?.destroy();
      this.#longAgent?.destroy();
      this.#agentKey = key;
      const agent = (maxSockets: number) =>
        this.base.protocol === "https:"
          ? new https.Agent({ keepAlive: true, maxSockets, ...tls })
          : new http.Agent({ keepAlive: true, maxSockets });
      this.#agent = agent(256);
      // a watch or a log stream holds its connection for as long as it lasts: not counted
      // against the short calls' cap (256 open watches would queue every write behind them)
      this.#longAgent = agent(Number.POSITIVE_INFINITY);
    }
    return long ? this.#longAgent! : this.#agent;
  }

  /** Absolute upstream URL for a request path (+query), honouring a path prefix in the server URL. */
  url(pathAndQuery: string, scheme?: "wss" | "ws"): URL {
    const prefix = this.#prefix;
    const u = new URL(this.base.href);
    const q = pathAndQuery.indexOf("?");
    u.pathname = prefix + (q >= 0 ? pathAndQuery.slice(0, q) : pathAndQuery);
    u.search = q >= 0 ? pathAndQuery.slice(q) : "";
    if (scheme) u.protocol = this.base.protocol === "https:" ? "wss:" : "ws:";
    return u;
  }

  /**
   * The request target (path + query) sent upstream: what `url()` would give, without building
   * URL objects for the common case of a plain path. Anything with characters a URL parser
   * would rewrite (dot segments, backslashes, spaces, non-ASCII, ...) goes through `url()`.
   */
  path(pathAndQuery: string): string {
    if (SIMPLE_TARGET.test(pathAndQuery) && !DOT_SEGMENT.test(pathAndQuery.split("?", 1)[0]!))
      return this.#prefix + pathAndQuery;
    const u = this.url(pathAndQuery);
    return u.pathname + u.search;
  }

  /**
   * Send one request. Resolves with the response once its headers arrive; rejects with a 502
   * (unreachable, TLS failure, reset) or 504 (no response headers in time) GatewayError.
   * `long`: a call that holds its connection for as long as it lasts (a watch, a log stream).
   */
  async request(
    method: string,
    pathAndQuery: string,
    headers: OutgoingHttpHeaders,
    body: Buffer | undefined,
    signal?: CallSignal,
    long = false,
  ): Promise<IncomingMessage> {
    const cred = await this.credential();
    const path = this.path(pathAndQuery);
    const isHttps = this.base.protocol === "https:";
    const mod = isHttps ? https : http;
    const all: OutgoingHttpHeaders = { ...headers, ...cred.headers };
    return new Promise<IncomingMessage>((resolve, reject) => {
      let settled = false;
      const req = mod.request(
        {
          method,
          protocol: this.base.protocol,
          hostname: this.#hostname,
          port: this.base.port,
          path,
          headers: all,
          // the agent carries the TLS options (CA, client certificate, servername): its options
          // override a request's, and its sockets (and TLS sessions) are reused across requests
          agent: this.#agentFor(cred, long),
        },
        (res) => {
          if (settled) {
            res.resume();
            return;
          }
          settled = true;
          clearTimeout(timer);
          resolve(res);
        },
      );
      const fail = (err: GatewayError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(gatewayTimeout(this.#o.timeoutMs)), this.#o.timeoutMs);
      req.on("error", (e: NodeJS.ErrnoException) => fail(this.#unreachable(e.code)));
      signal?.addEventListener(
        "abort",
        () => settled || fail(badGateway("CLIENT_GONE", "client went away")),
        {
          once: true,
        },
      );
      if (body && body.length > 0) req.end(body);
      else req.end();
    });
  }

  /** Options for a WebSocket client (`ws`) to the upstream: TLS + credential headers. */
  async wsOptions(): Promise<{ headers: Record<string, string>; tls: UpstreamTls }> {
    const cred = await this.credential();
    return { headers: { ...cred.headers }, tls: { ...cred.tls } };
  }

  #poolFor(cred: UpstreamCredential): H1Pool {
    if (this.#pool && cred === this.#poolCred) return this.#pool;
    // a new credential object (refreshed every credentialTtlMs): keep the pool unless its TLS changed
    const t = cred.tls;
    const p = this.#poolCred?.tls;
    if (
      !this.#pool ||
      !p ||
      String(p.ca ?? "") !== String(t.ca ?? "") ||
      String(p.cert ?? "") !== String(t.cert ?? "") ||
      String(p.key ?? "") !== String(t.key ?? "") ||
      p.rejectUnauthorized !== t.rejectUnauthorized ||
      p.servername !== t.servername
    ) {
      this.#pool?.close();
      const port = Number(this.base.port) || (this.base.protocol === "https:" ? 443 : 80);
      const host = this.#hostname;
      this.#pool = new H1Pool(
        this.base.protocol === "https:"
          ? {
              host,
              port,
              tls: {
                ...(t.ca !== undefined ? { ca: t.ca } : {}),
                ...(t.cert !== undefined ? { cert: t.cert } : {}),
                ...(t.key !== undefined ? { key: t.key } : {}),
                ...(t.rejectUnauthorized !== undefined ? { rejectUnauthorized: t.rejectUnauthorized } : {}),
                // SNI and the name checked against the certificate, as https.Agent does (no SNI for IPs)
                ...(t.servername !== undefined
                  ? { servername: t.servername }
                  : net.isIP(host) === 0
                    ? { servername: host }
                    : {}),
              },
            }
          : { host, port },
      );
    }
    this.#poolCred = cred;
    return this.#pool;
  }

  /** the request head for the lean client, or undefined when Node's client would refuse a value */
  #head(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    cred: UpstreamCredential,
  ): string | undefined {
    if (!REQUEST_TARGET.test(path)) return undefined;
    let s = `${method} ${path} HTTP/1.1\r\nhost: ${this.base.host}\r\nconnection: keep-alive\r\n`;
    const add = (k: string, v: OutgoingHttpHeaders[string]): boolean => {
      if (v === undefined) return true;
      if (!TOKEN.test(k)) return false;
      for (const x of Array.isArray(v) ? v : [v]) {
        const value = String(x);
        if (!FIELD_VALUE.test(value)) return false;
        s += `${k}: ${value}\r\n`;
      }
      return true;
    };
    for (const k in headers) {
      const n = k.toLowerCase();
      if (n === "host" || n === "connection" || Object.hasOwn(cred.headers, n)) continue;
      if (!add(n, headers[k])) return undefined;
    }
    for (const k in cred.headers) if (!add(k, cred.headers[k])) return undefined;
    return `${s}\r\n`;
  }

  /**
   * A GET without a body (objects, lists; not watches or streams): through the lean client,
   * same results and errors as `request` (502 unreachable or malformed, 504 no head in time).
   */
  get(
    pathAndQuery: string,
    headers: OutgoingHttpHeaders,
    signal?: CallSignal,
  ): Promise<IncomingMessage | LeanResponse> {
    if (this.#o.client === "node") return this.request("GET", pathAndQuery, headers, undefined, signal);
    // with a cached credential the request is written before this returns (no await on the way)
    const cred = this.#freshCredential((this.#o.now ?? Date.now)());
    if (!cred) return this.credential().then((c) => this.#get(c, pathAndQuery, headers, signal));
    try {
      return this.#get(cred, pathAndQuery, headers, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #get(
    cred: UpstreamCredential,
    pathAndQuery: string,
    headers: OutgoingHttpHeaders,
    signal: CallSignal | undefined,
  ): Promise<IncomingMessage | LeanResponse> {
    const pool = this.#poolFor(cred);
    const head =
      pool.active < LEAN_MAX_ACTIVE ? this.#head("GET", this.path(pathAndQuery), headers, cred) : undefined;
    if (head === undefined) return this.request("GET", pathAndQuery, headers, undefined, signal);
    return pool.request(head, {
      timeoutMs: this.#o.timeoutMs,
      signal,
      timeout: () => gatewayTimeout(this.#o.timeoutMs),
      unreachable: (errno) => this.#unreachable(errno),
      malformed: (problem) =>
        badGateway(
          "UPSTREAM_MALFORMED_RESPONSE",
          `custos: the Kubernetes API server at ${this.base.host} sent a malformed HTTP response (${problem}); it was refused`,
          { problem },
        ),
      gone: () => badGateway("CLIENT_GONE", "client went away"),
    });
  }

  #unreachable(errno: string | undefined): GatewayError {
    return badGateway(
      "UPSTREAM_UNREACHABLE",
      `custos: the Kubernetes API server at ${this.base.host} could not be reached (${errno ?? "connection error"}); retry later or ask the operator to check the upstream`,
      { errno: errno ?? "unknown" },
    );
  }

  close(): void {
    this.#agent?.destroy();
    this.#longAgent?.destroy();
    this.#pool?.close();
  }
}
