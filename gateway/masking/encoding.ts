/**
 * Fail-closed checks on what the masker can read. A response under a mask whose media type or
 * compression cannot be read is refused (Status 502), never passed through.
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import type { Json } from "../../sdk/schema/config.ts";
import { malformedJson, unknownCompression, unreadableEncoding } from "./errors.ts";

export type BodyFormat = "json" | "text";
export type Compression = "identity" | "gzip" | "deflate" | "br";

export interface MaskableResponse {
  /** json: parse, maskJson, serialise (a watch stream is JSON lines); text: textStream */
  format: BodyFormat;
  /** a watch stream (`;stream=watch`, or the request was a watch): mask line by line */
  stream: boolean;
  /** content codings in the order they were applied */
  compression: Compression[];
}

const COMPRESSIONS: Record<string, Compression> = {
  identity: "identity",
  gzip: "gzip",
  "x-gzip": "gzip",
  deflate: "deflate",
  br: "br",
};

/**
 * Decide how a response body will be masked, or throw: MASK_UNREADABLE_ENCODING for protobuf,
 * CBOR, YAML and any other media type that is neither JSON nor text; MASK_UNKNOWN_COMPRESSION
 * for a Content-Encoding outside identity/gzip/deflate/br.
 */
export function assertMaskableResponse(headers: {
  contentType: string | undefined;
  contentEncoding?: string | undefined;
}): MaskableResponse {
  const compression: Compression[] = [];
  for (const raw of (headers.contentEncoding ?? "").split(",")) {
    const e = raw.trim().toLowerCase();
    if (e === "") continue;
    const c = COMPRESSIONS[e];
    if (c === undefined) throw unknownCompression(headers.contentEncoding ?? "");
    if (c !== "identity") compression.push(c);
  }
  const ct = (headers.contentType ?? "").trim();
  const [mediaRaw, ...params] = ct.split(";");
  const media = (mediaRaw ?? "").trim().toLowerCase();
  const stream = params.some((p) => p.trim().toLowerCase() === "stream=watch");
  if (media === "application/json" || /^application\/[a-z0-9.+-]*\+json$/.test(media)) {
    return { format: "json", stream, compression };
  }
  if (media === "text/plain") return { format: "text", stream: false, compression };
  throw unreadableEncoding(ct === "" ? "(none)" : ct);
}

/** Undo the content codings (last applied first). Throws MASK_MALFORMED_JSON if a body does not decode. */
export function decodeBody(body: Uint8Array, compression: readonly Compression[]): Buffer {
  let buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  for (let i = compression.length - 1; i >= 0; i--) {
    const c = compression[i]!;
    try {
      if (c === "gzip") buf = gunzipSync(buf);
      else if (c === "deflate") buf = inflateSync(buf);
      else if (c === "br") buf = brotliDecompressSync(buf);
    } catch {
      throw malformedJson(`the ${c} body does not decompress`, body.byteLength);
    }
  }
  return buf;
}

/** JSON.parse that fails closed with MASK_MALFORMED_JSON. */
export function parseJsonBody(body: string | Uint8Array): Json {
  const text =
    typeof body === "string"
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw malformedJson((e as Error).message, Buffer.byteLength(text));
  }
}

/**
 * Rewrite a client's Accept header so the upstream answers in a maskable form: protobuf and
 * CBOR entries are removed (kubectl's `describe` and `auth can-i` send
 * `application/vnd.kubernetes.protobuf,application/json`), JSON entries (with their `as=Table`
 * parameters) are kept; nothing left means `application/json`.
 */
export function maskableAccept(accept: string | undefined): string {
  if (accept === undefined || accept.trim() === "") return "application/json";
  const kept = accept
    .split(",")
    .map((s) => s.trim())
    .filter((s) => {
      const media = (s.split(";")[0] ?? "").trim().toLowerCase();
      return (
        media === "application/json" || media === "*/*" || media === "text/plain" || /\+json$/.test(media)
      );
    });
  return kept.length > 0 ? kept.join(",") : "application/json";
}
