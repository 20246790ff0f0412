/**
 * The masking stage: every response (and every request body before it is stored) passes here.
 *
 * @example
 *   const masker = createMasker(config, { pseudonymKey });
 *   const shape = assertMaskableResponse({ contentType, contentEncoding }); // throws MASK_* (fail closed)
 *   const { value, summary } = masker.maskJson(parseJsonBody(decodeBody(bytes, shape.compression)), ctx);
 *   const { body, summary } = masker.maskJsonBytes(bytes, ctx); // same masking, on the text: bytes in, bytes out
 *   const logs = masker.textStream(ctx); res.write(logs.push(chunk)); ... res.end(logs.end());
 *   const watch = masker.watchStream(ctx); watch.push(chunk, (out) => res.write(out)); ...
 */
import { bindDigest } from "../../sdk/lib/digest.ts";
import type { GatewayConfig, Json } from "../../sdk/schema/config.ts";
import type { MaskContext, Masker, MaskSummary } from "../ports.ts";
import { type CompiledPolicy, compilePolicy } from "./compile.ts";
import { JsonMaskRun } from "./json.ts";
import { createJsonLinesMasker, type JsonLinesMasker } from "./jsonlines.ts";
import { maskJsonBytesWith, maskJsonTextWith } from "./jsontext.ts";
import { SummaryBuilder } from "./summary.ts";
import { type FlushableTextStreamMasker, StreamMasker, type TextStreamOptions } from "./text.ts";

export { type AsciicastHeader, type AsciicastRecorder, createAsciicastRecorder } from "./asciicast.ts";
export {
  assertMaskableResponse,
  type BodyFormat,
  type Compression,
  decodeBody,
  type MaskableResponse,
  maskableAccept,
  parseJsonBody,
} from "./encoding.ts";
export {
  eventTooLarge,
  MaskingError,
  type MaskingErrorCode,
  MAX_JSON_NESTING,
  malformedJson,
  nestedTooDeep,
  recordingFailed,
  unknownCompression,
  unreadableEncoding,
} from "./errors.ts";
export { type JsonLinesMasker, MAX_EVENT_BYTES } from "./jsonlines.ts";
export { partialToken, pseudonymToken, redactToken } from "./strategy.ts";
export { emptySummary, MAX_SUMMARY_PATHS } from "./summary.ts";
export type { FlushableTextStreamMasker, TextStreamOptions } from "./text.ts";

/** Non-resource paths that carry API schema, not data. */
const SCHEMA_PATHS =
  /^\/(?:api|apis)(?:\/[^/]+){0,2}\/?$|^\/openapi\/|^\/version\/?$|^\/(?:healthz|livez|readyz)(?:\/|$)/;

export interface MaskerOptions {
  /** the deployment's pseudonym key (HMAC-SHA256); at least 16 bytes */
  pseudonymKey: Uint8Array;
  /** cap on JSON Pointers per summary (default 200) */
  maxSummaryPaths?: number;
}

export interface CustosMasker extends Masker {
  /** maskJson on the text: untouched spans are copied, not re-serialised (see jsontext.ts). */
  maskJsonText(text: string, ctx: MaskContext): { text: string; summary: MaskSummary };
  /** maskJsonText on a body's bytes, returning the masked bytes (see jsontext.ts maskJsonBytesWith). */
  maskJsonBytes(bytes: Buffer, ctx: MaskContext): { body: Buffer; summary: MaskSummary };
  /** HMAC-SHA256 of `value` under the pseudonym key, 32 hex digits (Masker.digest) */
  digest(value: string): string;
  /** Logs ("lines" mode) for pods/log, exec/attach channels ("chunks" mode) otherwise. */
  textStream(ctx: MaskContext, opts?: Partial<TextStreamOptions>): FlushableTextStreamMasker;
  /** A watch stream (JSON lines): each event masked and emitted as soon as its line is complete. */
  watchStream(ctx: MaskContext, opts?: { maxEventBytes?: number }): JsonLinesMasker;
  /**
   * Whether any mask or detector can touch a response of this request. When false the proxy
   * may pass an unreadable encoding through; when true it must refuse it (fail closed).
   */
  appliesTo(ctx: MaskContext): boolean;
  fieldMasksMayApply(ctx: MaskContext): boolean;
  readonly policyHash: string;
}

export function createMasker(config: GatewayConfig, opts: MaskerOptions): CustosMasker {
  if (!(opts.pseudonymKey instanceof Uint8Array) || opts.pseudonymKey.byteLength < 16) {
    throw new TypeError(
      "createMasker: pseudonymKey must be a Uint8Array of at least 16 bytes (generate 32 random bytes per deployment)",
    );
  }
  const key = Uint8Array.from(opts.pseudonymKey);
  const policy: CompiledPolicy = compilePolicy(config);
  const maxPaths = opts.maxSummaryPaths;
  const masker: CustosMasker = {
    policyHash: config.policyHash,
    maskJson(value: Json, ctx: MaskContext): { value: Json; summary: MaskSummary } {
      const run = new JsonMaskRun(policy, key, ctx, new SummaryBuilder(maxPaths));
      const out = run.top(value);
      return { value: out, summary: run.sum.toSummary() };
    },
    maskJsonText(text: string, ctx: MaskContext): { text: string; summary: MaskSummary } {
      const r = maskJsonTextWith(policy, key, ctx, maxPaths, text);
      return { text: r.text, summary: r.summary };
    },
    maskJsonBytes(bytes: Buffer, ctx: MaskContext): { body: Buffer; summary: MaskSummary } {
      const r = maskJsonBytesWith(policy, key, ctx, maxPaths, bytes);
      return { body: r.body, summary: r.summary };
    },
    digest(value: string): string {
      return bindDigest(key, value);
    },
    textStream(ctx: MaskContext, o: Partial<TextStreamOptions> = {}): FlushableTextStreamMasker {
      const a = policy.applied(policy.requestCandidates(ctx.request), ctx.request.namespace, undefined);
      const mode = o.mode ?? (ctx.request.subresource === "log" ? "lines" : "chunks");
      const so: TextStreamOptions = { mode };
      if (o.maxHold !== undefined) so.maxHold = o.maxHold;
      if (o.tailWindow !== undefined) so.tailWindow = o.tailWindow;
      return new StreamMasker(a, key, so);
    },
    watchStream(ctx: MaskContext, o: { maxEventBytes?: number } = {}): JsonLinesMasker {
      const jo: { maxEventBytes?: number; maxSummaryPaths?: number } = {};
      if (o.maxEventBytes !== undefined) jo.maxEventBytes = o.maxEventBytes;
      if (maxPaths !== undefined) jo.maxSummaryPaths = maxPaths;
      return createJsonLinesMasker(masker, ctx, jo);
    },
    fieldMasksMayApply(ctx: MaskContext): boolean {
      const ns = ctx.request.namespace;
      const cands = policy.requestCandidates(ctx.request);
      return (
        cands.length > 0 && policy.applied(cands, ns !== "" ? ns : undefined, undefined).fields.length > 0
      );
    },
    appliesTo(ctx: MaskContext): boolean {
      // API discovery, OpenAPI schemas, version and health endpoints describe the cluster's
      // API, never its data: relayed as they are (kubectl fetches megabytes of OpenAPI).
      if (!ctx.request.isResourceRequest && SCHEMA_PATHS.test(ctx.request.path)) return false;
      if (policy.everywhere.length > 0) return true;
      return policy.requestCandidates(ctx.request).length > 0;
    },
  };
  return masker;
}
