/**
 * Upstream response -> masking -> client. Buffered bodies (objects, lists, Tables, Status)
 * are decompressed, parsed, masked and re-serialised; watch streams are split on newlines
 * and each event is masked and written as soon as it arrives; pod logs go line by line
 * through a streaming text masker. Anything the masker cannot read (protobuf, unknown
 * compression, malformed JSON) is refused, never passed through.
 */
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { pipeline, type Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import zlib from "node:zlib";
import type { Json } from "../../sdk/schema/config.ts";
import { asGatewayError, badGateway, type GatewayError, gatewayTimeout, toStatus } from "../errors.ts";
import { malformedJson, unknownCompression, unreadableEncoding } from "../masking/errors.ts";
import { createJsonLinesMasker } from "../masking/jsonlines.ts";
import type { MaskContext, Masker, MaskSummary } from "../ports.ts";
import { downstreamHeaders } from "../upstream/headers.ts";
import type { UpstreamResponse } from "../upstream/index.ts";
import { mediaType } from "./body.ts";

export type MediaKind = "json" | "text" | "unreadable";

/** charsets whose text the masker reads as it reads UTF-8 (no charset: UTF-8, as JSON is) */
const READABLE_CHARSETS = new Set(["utf-8", "utf8", "us-ascii", "ascii"]);

/** the `charset` parameter of a content type (lower-case, unquoted), or undefined */
export function charset(contentType: string | undefined): string | undefined {
  for (const p of (contentType ?? "").split(";").slice(1)) {
    const eq = p.indexOf("=");
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    return p
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1")
      .toLowerCase();
  }
  return undefined;
}

export function classify(contentType: string | undefined): MediaKind {
  const mt = mediaType(contentType);
  // UTF-16 text read as UTF-8 hides every identifier from the detectors (a NUL between its characters)
  const cs = charset(contentType);
  if (cs !== undefined && !READABLE_CHARSETS.has(cs)) return "unreadable";
  if (mt === "application/json" || mt.endsWith("+json")) return "json";
  if (mt.startsWith("text/")) return "text";
  return "unreadable";
}

/** The decompressed body stream (gzip/deflate/br or identity), or a 502 for anything else. */
export function decoded(res: UpstreamResponse): Readable {
  // the body already failed (reset, malformed) before it was read: nothing of it is relayed
  if (res.destroyed && !res.readableEnded)
    throw badGateway(
      "UPSTREAM_RESET",
      "custos: the upstream connection failed while sending the response; retry",
    );
  const enc = String(res.headers["content-encoding"] ?? "identity")
    .trim()
    .toLowerCase();
  if (enc === "" || enc === "identity") return res;
  const z =
    enc === "gzip" || enc === "x-gzip"
      ? zlib.createGunzip()
      : enc === "deflate"
        ? zlib.createInflate()
        : enc === "br"
          ? zlib.createBrotliDecompress()
          : undefined;
  if (z === undefined) {
    res.resume();
    throw unknownCompression(enc);
  }
  // linked both ways (not a plain pipe): a reader that stops (client gone, size cap, mask error)
  // releases the upstream connection, and an upstream that fails mid-body fails the reader
  pipeline(res, z, () => {});
  return z;
}

/** Read a whole (decompressed) body, with a size cap and an idle timeout. */
export function readAll(stream: Readable, limit: number, idleMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer = setTimeout(() => fail(gatewayTimeout(idleMs)), idleMs);
    const fail = (e: GatewayError) => {
      clearTimeout(timer);
      stream.destroy();
      reject(e);
    };
    if (stream.destroyed && !stream.readableEnded) {
      fail(
        badGateway(
          "UPSTREAM_RESET",
          "custos: the upstream connection failed while reading the response; retry",
        ),
      );
      return;
    }
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        fail(
          badGateway(
            "UPSTREAM_RESPONSE_TOO_LARGE",
            `custos: the upstream response exceeded ${limit} bytes; narrow the request (use limit/continue)`,
          ),
        );
        return;
      }
      chunks.push(c);
      clearTimeout(timer);
      timer = setTimeout(() => fail(gatewayTimeout(idleMs)), idleMs);
    });
    stream.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size));
    });
    stream.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "error";
      fail(
        code.startsWith("Z_")
          ? badGateway(
              "UPSTREAM_BAD_ENCODING",
              `custos: the upstream response could not be decompressed (${code}); it was refused`,
            )
          : badGateway(
              "UPSTREAM_RESET",
              `custos: the upstream connection failed while reading the response (${code}); retry`,
            ),
      );
    });
  });
}

/**
 * Response headers the API server sets from its own state, never from an object's data: passed
 * as they are (masking them could only break them: a date detector would rewrite `Date`).
 */
const DATA_FREE_HEADERS = new Set([
  "content-type",
  "cache-control",
  "date",
  "expires",
  "last-modified",
  "etag",
  "vary",
  "retry-after",
  "audit-id",
  "x-kubernetes-pf-flowschema-uid",
  "x-kubernetes-pf-prioritylevel-uid",
  "x-content-type-options",
  "strict-transport-security",
]);

/**
 * The upstream's headers masked like a body's strings: an admission webhook's warning can
 * quote the object it judged (`299 - "env PATIENT_SSN holds 900-12-3456"`), and a Location,
 * a Content-Disposition or an aggregated API server's own header can name one. Only the
 * headers the API server sets from its own state (DATA_FREE_HEADERS) pass as they are.
 */
export function maskedHeaders(h: OutgoingHttpHeaders, masker: Masker, ctx: MaskContext): OutgoingHttpHeaders {
  const mask = (v: string) => {
    const t = masker.textStream(ctx);
    return t.push(v) + t.end();
  };
  const out: Record<string, OutgoingHttpHeader | undefined> = {};
  for (const [name, v] of Object.entries(h)) {
    if (v === undefined || DATA_FREE_HEADERS.has(name.toLowerCase())) out[name] = v;
    else out[name] = Array.isArray(v) ? v.map((x) => mask(String(x))) : mask(String(v));
  }
  return out;
}

export interface Masked {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
  summary?: MaskSummary;
}

/** Mask a complete upstream response. Throws a GatewayError (502) when it cannot be read. */
export function maskBuffered(
  up: { status: number; headers: IncomingMessage["headers"]; body: Buffer },
  masker: Masker,
  ctx: MaskContext,
): Masked {
  const headers = downstreamHeaders(up.headers);
  const empty = up.body.length === 0;
  const ct = typeof up.headers["content-type"] === "string" ? up.headers["content-type"] : undefined;
  const kind = classify(ct);
  // nothing in the policy can touch this response: relay the (decompressed, readable) bytes as they are
  if ((empty || kind !== "unreadable") && masker.appliesTo?.(ctx) === false)
    return { status: up.status, headers, body: up.body };
  // a response without a body (204, 304, HEAD) still has headers to mask
  const masked = maskedHeaders(headers, masker, ctx);
  if (empty) return { status: up.status, headers: masked, body: up.body };
  if (kind === "json") {
    if (masker.maskJsonBytes !== undefined) {
      // masks the text itself, bytes in and bytes out: what no mask touches is copied
      let m: { body: Buffer; summary: MaskSummary };
      try {
        m = masker.maskJsonBytes(up.body, ctx);
      } catch (e) {
        if (e instanceof SyntaxError) throw malformedJson(e.message, up.body.length);
        throw e;
      }
      return { status: up.status, headers: masked, body: m.body, summary: m.summary };
    }
    const text = up.body.toString("utf8");
    let value: Json;
    try {
      value = JSON.parse(text) as Json;
    } catch (e) {
      throw malformedJson((e as Error).message, up.body.length);
    }
    const m = masker.maskJson(value, ctx);
    return {
      status: up.status,
      headers: masked,
      body: Buffer.from(JSON.stringify(m.value)),
      summary: m.summary,
    };
  }
  if (kind === "text") {
    const t = masker.textStream(ctx);
    const text = t.push(up.body.toString("utf8")) + t.end();
    return { status: up.status, headers: masked, body: Buffer.from(text), summary: t.summary() };
  }
  throw unreadableEncoding(ct ?? "(none)");
}

/**
 * Write to a streaming response, keeping backpressure: when the client's side is full (a client
 * that does not read, an HTTP/2 flow-control window at zero) the source is paused until it
 * drains, so a fast upstream is never buffered without bound for a slow reader.
 */
function writeKeepingPace(res: ServerResponse, src: Readable, data: Buffer | string): void {
  if (res.write(data) || src.isPaused() || res.destroyed) return;
  src.pause();
  res.once("drain", () => src.resume());
}

export interface StreamResult {
  summary?: MaskSummary;
  /** why the stream ended ("policy-reload": ended by a reload that changed the policy) */
  end: "upstream-end" | "client-closed" | "upstream-error" | "mask-error" | "policy-reload";
  error?: GatewayError;
  bytesOut: number;
  /** a failed watch's ERROR event is out (flushed to the client's socket), or the cap passed */
  flushed?: Promise<void>;
}

/** how long a failed watch's ERROR event may take to reach the client before the stream is cut */
export const ERROR_FLUSH_MS = 1000;

/**
 * Relay a watch stream: one JSON event per line, each masked and written (and flushed) as it
 * arrives. A malformed or oversized event ends the stream with an ERROR event (fail closed).
 * Returns `stop`: end the stream now (end "policy-reload"); the events already complete are
 * written, an event still arriving is not (never sent: the client re-watches from the last
 * resourceVersion it received).
 */
export function relayWatch(
  src: Readable,
  res: ServerResponse,
  masker: Masker,
  ctx: MaskContext,
  maxEventBytes: number,
  onDone: (r: StreamResult) => void,
): () => void {
  const w = createJsonLinesMasker(masker, ctx, { maxEventBytes });
  let bytesOut = 0;
  let done = false;
  // the events one chunk completes leave in one write (one TLS record, not one per event)
  const write = (out: Buffer) => {
    bytesOut += out.length;
    writeKeepingPace(res, src, out);
  };
  const finish = (r: Omit<StreamResult, "summary" | "bytesOut">) => {
    if (done) return;
    done = true;
    src.destroy();
    onDone({ ...r, bytesOut, summary: w.summary() });
  };
  // fail closed: an event that cannot be masked (or an upstream that fails) ends the stream with
  // an ERROR event saying why; the stream is cut only once it is out (or after ERROR_FLUSH_MS),
  // never while it waits behind the events queued for a slow client
  const fail = (e: unknown, end: "mask-error" | "upstream-error") => {
    if (done) return;
    const err = asGatewayError(e);
    let flushed: Promise<void> = Promise.resolve();
    if (!res.writableEnded && !res.destroyed)
      flushed = new Promise<void>((resolve) => {
        const cap = setTimeout(resolve, ERROR_FLUSH_MS);
        res.write(`${JSON.stringify({ type: "ERROR", object: toStatus(err) })}\n`, () => {
          clearTimeout(cap);
          resolve();
        });
      });
    finish({ end, error: err, flushed });
  };
  src.on("data", (chunk: Buffer) => {
    if (done) return;
    try {
      w.push(chunk, write);
    } catch (e) {
      fail(e, "mask-error");
    }
  });
  src.on("end", () => {
    if (done) return;
    try {
      w.end(write);
    } catch (e) {
      fail(e, "mask-error");
      return;
    }
    finish({ end: "upstream-end" });
  });
  src.on("error", () =>
    fail(
      badGateway(
        "UPSTREAM_RESET",
        "custos: the upstream connection failed during the watch; the client re-watches",
      ),
      "upstream-error",
    ),
  );
  res.on("close", () => finish({ end: "client-closed" }));
  return () => finish({ end: "policy-reload" });
}

/**
 * Relay a text stream (pod logs) through a streaming text masker, writing as lines complete.
 * Returns `stop`: end the stream now (end "policy-reload"); the lines already complete are
 * written, the unterminated tail the masker holds is not (it was never sent).
 */
export function relayText(
  src: Readable,
  res: ServerResponse,
  masker: Masker,
  ctx: MaskContext,
  onDone: (r: StreamResult) => void,
): () => void {
  const dec = new StringDecoder("utf8");
  const t = masker.textStream(ctx);
  let bytesOut = 0;
  let done = false;
  const write = (s: string) => {
    if (s === "") return;
    bytesOut += Buffer.byteLength(s);
    writeKeepingPace(res, src, s);
  };
  const finish = (end: StreamResult["end"]) => {
    if (done) return;
    done = true;
    src.destroy();
    if (end === "upstream-end") {
      try {
        write(t.push(dec.end()) + t.end());
      } catch {
        onDone({
          end: "mask-error",
          bytesOut,
          error: badGateway("MASK_FAILED", "custos: the log stream could not be masked; it was closed"),
        });
        return;
      }
    }
    onDone({ end, bytesOut, summary: t.summary() });
  };
  src.on("data", (chunk: Buffer) => {
    if (done) return;
    try {
      write(t.push(dec.write(chunk)));
    } catch {
      // a masker failure ends the stream abnormally (fail closed), never passes the chunk through
      if (done) return;
      done = true;
      src.destroy();
      onDone({
        end: "mask-error",
        bytesOut,
        error: badGateway("MASK_FAILED", "custos: the log stream could not be masked; it was closed"),
      });
    }
  });
  src.on("end", () => finish("upstream-end"));
  src.on("error", () => finish("upstream-error"));
  res.on("close", () => finish("client-closed"));
  return () => finish("policy-reload");
}
