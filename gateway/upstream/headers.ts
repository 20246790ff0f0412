/**
 * What the gateway sends upstream. The client's credentials and identity claims never pass:
 * `Authorization`, every `Impersonate-*` (the gateway may set its own), authenticating-proxy
 * headers (`X-Remote-*`), hop-by-hop headers (RFC 9110 §7.6.1: Connection and the fields it
 * lists, plus Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) and custos' own
 * `Custos-Purpose`, and method overrides (`X-HTTP-Method-Override` and its variants: a proxy
 * in front of the API server that honoured one would run another verb than the one decided).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Identity } from "../ports.ts";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** headers the gateway computes itself */
const RECOMPUTED = new Set([
  "host",
  "authorization",
  "accept",
  "accept-encoding",
  "content-length",
  "custos-purpose",
  "cookie",
]);

/** headers asking a server to treat the request as another method */
const METHOD_OVERRIDES = new Set(["x-http-method-override", "x-http-method", "x-method-override"]);

export function isStrippedHeader(name: string, connectionListed: Set<string>): boolean {
  const n = name.toLowerCase();
  return (
    HOP_BY_HOP.has(n) ||
    RECOMPUTED.has(n) ||
    METHOD_OVERRIDES.has(n) ||
    n.startsWith("impersonate-") ||
    n.startsWith("x-remote-") ||
    n.startsWith("sec-websocket-") ||
    connectionListed.has(n)
  );
}

/**
 * Protobuf, CBOR and YAML are never requested: the masking stage reads JSON only. Media ranges
 * that name them are dropped (keeping the `as=Table` JSON variants): a client that prefers YAML
 * but accepts JSON gets JSON, not a refusal of the YAML the API server would choose; if nothing
 * is left, `application/json`.
 */
export function rewriteAccept(accept: string | undefined): string {
  if (!accept) return "application/json";
  const kept = accept
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "" && !/protobuf/i.test(s));
  const acceptable = kept.filter((s) => /^(application\/(json|\*)|text\/|\*\/\*)/i.test(s));
  return acceptable.length > 0 ? acceptable.join(",") : "application/json";
}

export interface UpstreamHeaderOptions {
  impersonate: boolean;
  identity: Identity;
  /** set when the body was re-encoded or is known */
  contentLength?: number;
  /** keep the Upgrade/Connection pair (WebSocket) */
  upgrade?: boolean;
}

export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  o: UpstreamHeaderOptions,
): OutgoingHttpHeaders {
  const connectionListed = new Set(
    String(incoming.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== "" && s !== "upgrade"),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || isStrippedHeader(name, connectionListed)) continue;
    out[name] = value;
  }
  out.accept = rewriteAccept(typeof incoming.accept === "string" ? incoming.accept : undefined);
  // gzip or nothing: the gateway decompresses before masking (never passes an encoding it cannot read)
  out["accept-encoding"] = "gzip";
  if (o.contentLength !== undefined) out["content-length"] = String(o.contentLength);
  if (o.impersonate) {
    out["impersonate-user"] = o.identity.subject;
    if (o.identity.groups.length > 0) out["impersonate-group"] = [...o.identity.groups];
  }
  return out;
}

/** Response headers passed back to the client (the body may be re-encoded, so length/encoding are recomputed). */
export function downstreamHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const connectionListed = new Set(
    String(incoming.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase()),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    const n = name.toLowerCase();
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(n) || connectionListed.has(n)) continue;
    if (n === "content-length" || n === "content-encoding" || n === "set-cookie" || n === "www-authenticate")
      continue;
    out[n] = value;
  }
  return out;
}
