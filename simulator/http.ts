/**
 * HTTP plumbing shared by the request handlers: Accept negotiation (JSON, YAML, Table,
 * PartialObjectMetadata, aggregated discovery), body reading and decoding, and writing
 * JSON/Status answers (gzip above 128 KiB when the client accepts it, like kube-apiserver's
 * APIResponseCompression).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import YAML from "yaml";
import { errors, type Json, SimulatorError } from "./errors.ts";

export interface MediaType {
  type: string;
  params: Record<string, string>;
}

export function parseAccept(header: string | undefined): MediaType[] {
  if (!header) return [{ type: "*/*", params: {} }];
  return header
    .split(",")
    .map((part) => {
      const [type, ...ps] = part.split(";").map((s) => s.trim());
      const params: Record<string, string> = {};
      for (const p of ps) {
        const i = p.indexOf("=");
        if (i > 0) params[p.slice(0, i).trim()] = p.slice(i + 1).trim();
      }
      return { type: (type ?? "").toLowerCase(), params };
    })
    .filter((m) => m.type !== "");
}

export type Negotiated =
  | { as: "object"; format: "json" | "yaml" }
  | { as: "table"; version: "v1" | "v1beta1" }
  | { as: "partial"; version: "v1" | "v1beta1" }
  | { as: "discovery"; version: "v2" | "v2beta1" };

/** The first representation in the client's Accept list that the simulator can produce. */
export function negotiate(
  accept: string | undefined,
  allow: { table?: boolean; discovery?: boolean; partial?: boolean } = {},
): Negotiated {
  for (const m of parseAccept(accept)) {
    const jsonish = m.type === "application/json" || m.type === "*/*" || m.type === "application/*";
    if (m.params.as) {
      if (m.type !== "application/json") continue;
      const { as, g, v } = m.params;
      if (allow.table && as === "Table" && g === "meta.k8s.io" && (v === "v1" || v === "v1beta1"))
        return { as: "table", version: v };
      if (
        allow.partial &&
        (as === "PartialObjectMetadata" || as === "PartialObjectMetadataList") &&
        g === "meta.k8s.io" &&
        (v === "v1" || v === "v1beta1")
      ) {
        return { as: "partial", version: v };
      }
      if (
        allow.discovery &&
        as === "APIGroupDiscoveryList" &&
        g === "apidiscovery.k8s.io" &&
        (v === "v2" || v === "v2beta1")
      ) {
        return { as: "discovery", version: v };
      }
      continue;
    }
    if (jsonish) return { as: "object", format: "json" };
    if (m.type === "application/yaml") return { as: "object", format: "yaml" };
  }
  throw errors.notAcceptable(accept ?? "");
}

export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > limit) throw errors.tooLarge(limit);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Decode a JSON or YAML body. */
export function decodeBody(buf: Buffer, contentType: string | undefined): Json {
  const mt = mediaTypeOf(contentType);
  const text = buf.toString("utf8");
  try {
    if (mt === "application/yaml" || mt === "application/apply-patch+yaml" || mt === "text/yaml")
      return YAML.parse(text) as Json;
    if (mt === "" || mt.endsWith("json")) return JSON.parse(text) as Json;
  } catch (e) {
    throw errors.badRequest(
      `the request body could not be decoded as ${mt || "JSON"}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  throw errors.unsupportedMediaType(contentType ?? "");
}

export interface WriteOptions {
  gzip?: boolean;
  /** already-serialised JSON to send instead of `body` */
  raw?: string;
  format?: "json" | "yaml";
  contentType?: string;
}

const GZIP_THRESHOLD = 128 * 1024;

export function writeJson(
  req: IncomingMessage,
  res: ServerResponse,
  code: number,
  body: unknown,
  opts: WriteOptions = {},
): void {
  const yaml = opts.format === "yaml";
  let payload = Buffer.from(opts.raw ?? (yaml ? YAML.stringify(body) : JSON.stringify(body)), "utf8");
  const headers: Record<string, string> = {
    "Content-Type": opts.contentType ?? (yaml ? "application/yaml" : "application/json"),
    "Cache-Control": "no-cache, private",
  };
  const acceptsGzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  if (opts.gzip !== false && acceptsGzip && payload.length > GZIP_THRESHOLD) {
    payload = gzipSync(payload);
    headers["Content-Encoding"] = "gzip";
    headers.Vary = "Accept-Encoding";
  }
  headers["Content-Length"] = String(payload.length);
  res.writeHead(code, headers);
  res.end(payload);
}

export function writeError(req: IncomingMessage, res: ServerResponse, e: unknown): void {
  const err = e instanceof SimulatorError ? e : errors.internal(e instanceof Error ? e.message : String(e));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  writeJson(req, res, err.httpStatus, err.status);
}

export function query(url: URL): {
  one: (k: string) => string | undefined;
  all: (k: string) => string[];
  bool: (k: string) => boolean;
  int: (k: string) => number | undefined;
} {
  return {
    one: (k) => url.searchParams.get(k) ?? undefined,
    all: (k) => url.searchParams.getAll(k),
    bool: (k) => {
      const v = url.searchParams.get(k);
      return v === "true" || v === "1";
    },
    int: (k) => {
      const v = url.searchParams.get(k);
      if (v === null || v === "") return undefined;
      const n = Number(v);
      if (!Number.isInteger(n))
        throw errors.badRequest(`invalid value for ${k}: ${JSON.stringify(v)}: not an integer`);
      return n;
    },
  };
}
