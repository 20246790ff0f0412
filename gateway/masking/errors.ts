/**
 * Masking failures. The gateway fails closed: a response under a mask rule that cannot be read
 * (protobuf, CBOR, YAML, an unknown compression, malformed JSON, an oversized watch event) is
 * refused with one of these, never passed through. Messages never carry PHI or values.
 */
import { GatewayError, type StatusReason } from "../errors.ts";

export type MaskingErrorCode =
  | "MASK_UNREADABLE_ENCODING"
  | "MASK_UNKNOWN_COMPRESSION"
  | "MASK_MALFORMED_JSON"
  | "MASK_EVENT_TOO_LARGE"
  | "MASK_TOO_DEEP"
  | "MASK_RECORDING_FAILED"
  | "MASK_CONFIG_INVALID";

export class MaskingError extends GatewayError {
  declare readonly code: MaskingErrorCode;
  constructor(
    code: MaskingErrorCode,
    httpStatus: number,
    reason: StatusReason,
    message: string,
    data: Record<string, unknown>,
  ) {
    super(code, httpStatus, reason, message, data);
    this.name = "MaskingError";
  }
}

/** The body's media type (protobuf, CBOR, YAML, anything not JSON or text) cannot be masked. */
export const unreadableEncoding = (contentType: string, where: "response" | "request" = "response") =>
  new MaskingError(
    "MASK_UNREADABLE_ENCODING",
    502,
    "BadGateway",
    `custos: the ${where} is under a masking rule but its content type "${contentType}" cannot be masked (expected application/json or text/plain); it was refused, not passed through. Ask for JSON (e.g. kubectl --output json, or Accept: application/json) instead of protobuf/CBOR/YAML`,
    { contentType, where },
  );

/** The body's Content-Encoding is not one the masker can decode. */
export const unknownCompression = (contentEncoding: string) =>
  new MaskingError(
    "MASK_UNKNOWN_COMPRESSION",
    502,
    "BadGateway",
    `custos: the response is under a masking rule but its Content-Encoding "${contentEncoding}" cannot be decoded (expected identity, gzip, deflate or br); it was refused, not passed through. Retry without Accept-Encoding`,
    { contentEncoding },
  );

/** The body claims to be JSON but does not parse. */
/**
 * What a JSON parser said, without the body: V8 quotes the input in its messages
 * (`Unexpected token 'S', "SSN 123-45-6789" is not valid JSON`), and the body is exactly what
 * must not reach the client, the evidence or a log unmasked. Everything from the first to the
 * last double quote goes; what remains (the kind of error, a position, one character) does not
 * identify anybody.
 */
export function parseErrorDetail(message: string): string {
  return message.replace(/"[\s\S]*"/, "…").slice(0, 120);
}

export const malformedJson = (parserMessage: string, bytes: number) => {
  const detail = parseErrorDetail(parserMessage);
  return new MaskingError(
    "MASK_MALFORMED_JSON",
    502,
    "BadGateway",
    `custos: the response is under a masking rule but is not valid JSON (${detail}, ${bytes} bytes); it was refused, not passed through. Retry; if it persists, tell the operator (the upstream sent a broken body)`,
    { detail, bytes },
  );
};

/** One watch event (one JSON line) grew past the bound the masker holds in memory. */
export const eventTooLarge = (limit: number) =>
  new MaskingError(
    "MASK_EVENT_TOO_LARGE",
    502,
    "BadGateway",
    `custos: a watch event exceeded ${limit} bytes without a line end, so it could not be masked within bounded memory; the stream was closed. Narrow the watch (label/field selector) or ask the operator to raise the masking event limit`,
    { limit },
  );

/**
 * How deeply nested a JSON body (objects and arrays) the masker reads: its walks recurse once per
 * level, and far deeper than any Kubernetes object nests, well within the stack.
 */
export const MAX_JSON_NESTING = 1000;

/** the masker ran out of stack: a body nested deeper than it reads */
export function isStackOverflow(e: unknown): boolean {
  return e instanceof RangeError && /call stack/i.test(e.message);
}

/** The body nests deeper than the masker reads (its walks would exhaust the stack). */
export const nestedTooDeep = (limit: number = MAX_JSON_NESTING) =>
  new MaskingError(
    "MASK_TOO_DEEP",
    502,
    "BadGateway",
    `custos: the upstream's response nests deeper than custos reads (more than ${limit} levels of JSON objects and arrays), so it could not be masked; it was refused, not passed through. No Kubernetes object nests that deep: tell the operator (the upstream, or an object stored in it, is broken)`,
    { limit },
  );

/** A required session recording could not be written: the session is closed (fail closed). */
export const recordingFailed = (cause: string) =>
  new MaskingError(
    "MASK_RECORDING_FAILED",
    503,
    "ServiceUnavailable",
    `custos: the policy requires this exec/attach session to be recorded, but the recording failed (${cause}); the session was closed. Retry later and tell the operator`,
    { cause },
  );

/** The config refers to something the masker cannot build (e.g. a mask lists an unknown detector). */
export const maskConfigInvalid = (detail: string, data: Record<string, unknown>) =>
  new MaskingError(
    "MASK_CONFIG_INVALID",
    500,
    "InternalError",
    `custos: the masking config is invalid: ${detail}; fix the policy and run "custos compile" again`,
    data,
  );
