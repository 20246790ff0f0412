/**
 * The gateway's failures. Each has a stable `code`, a `data` object and the HTTP status and
 * Kubernetes `reason` an API client receives as a `Status` object
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/#status). Messages say what was
 * expected, what was found and what to do; they never carry credentials or PHI.
 */
export type StatusReason =
  | "BadRequest"
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "MethodNotAllowed"
  | "RequestEntityTooLarge"
  | "UnsupportedMediaType"
  | "TooManyRequests"
  | "InternalError"
  | "ServiceUnavailable"
  | "Timeout"
  | "BadGateway";

export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: StatusReason | string;
  code: number;
  details?: Record<string, unknown>;
}

export class GatewayError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  readonly reason: StatusReason;
  readonly data: Record<string, unknown>;
  /** extra response headers (e.g. Retry-After, WWW-Authenticate) */
  readonly headers: Record<string, string>;
  constructor(
    code: string,
    httpStatus: number,
    reason: StatusReason,
    message: string,
    data: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.httpStatus = httpStatus;
    this.reason = reason;
    this.data = data;
    this.headers = headers;
  }
}

export const unauthenticated = (detail: string, data: Record<string, unknown> = {}) =>
  new GatewayError(
    "UNAUTHENTICATED",
    401,
    "Unauthorized",
    `custos: Unauthorized: ${detail}; send "Authorization: Bearer <token>" with a token from the gateway's token file, an OIDC token from a configured issuer, or one minted by "custos login"`,
    data,
    { "www-authenticate": 'Bearer realm="custos"' },
  );

export const badRequest = (code: string, message: string, data: Record<string, unknown> = {}) =>
  new GatewayError(code, 400, "BadRequest", message, data);

export const forbidden = (code: string, message: string, data: Record<string, unknown> = {}) =>
  new GatewayError(code, 403, "Forbidden", message, data);

export const bodyTooLarge = (limit: number, found: number | "unknown") =>
  new GatewayError(
    "BODY_TOO_LARGE",
    413,
    "RequestEntityTooLarge",
    `custos: request body too large: the limit is ${limit} bytes, found ${found}; split the object or ask the operator to raise limits.maxBodyBytes`,
    { limit, found },
  );

export const unsupportedMediaType = (contentType: string) =>
  new GatewayError(
    "UNSUPPORTED_MEDIA_TYPE",
    415,
    "UnsupportedMediaType",
    `custos: the request body's content type "${contentType}" cannot be read by the policy; send application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json or application/apply-patch+yaml`,
    { contentType },
  );

export const badGateway = (code: string, message: string, data: Record<string, unknown> = {}) =>
  new GatewayError(code, 502, "BadGateway", message, data);

export const gatewayTimeout = (ms: number) =>
  new GatewayError(
    "UPSTREAM_TIMEOUT",
    504,
    "Timeout",
    `custos: the Kubernetes API server did not answer within ${ms} ms; retry later or ask the operator to check the upstream (upstream.timeoutSeconds)`,
    { timeoutMs: ms },
  );

export const evidenceUnavailable = (cause: string) =>
  new GatewayError(
    "EVIDENCE_UNAVAILABLE",
    503,
    "ServiceUnavailable",
    `custos: the call was refused because its evidence record could not be made durable (${cause}); the gateway fails closed — retry later and tell the operator`,
    {},
  );

export function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): KubeStatus {
  const s: KubeStatus = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details) s.details = details;
  return s;
}

/**
 * What in a failure's data a program may read from its Status (never a name, a path or a
 * value from the request: only custos' own identifiers), as a cause each.
 */
const CAUSE_DATA: readonly [key: string, cause: string][] = [
  ["ruleId", "custos.dev/rule"],
  ["requestId", "custos.dev/approval-request"],
  ["grantId", "custos.dev/grant"],
];

/**
 * The Status a client receives for a failure. Besides the message a person reads, programs
 * (agents) get stable facts in `details`, as Kubernetes Status conventions put them: the
 * failure's code as the first cause (`{"reason":"custos.dev/APPROVAL_PENDING","message":…}`),
 * the rule and approval request it names as further causes, and `retryAfterSeconds` when the
 * answer carries a Retry-After.
 */
export function toStatus(err: GatewayError): KubeStatus {
  const causes: { reason: string; message: string }[] = [
    { reason: `custos.dev/${err.code}`, message: err.message },
  ];
  for (const [key, cause] of CAUSE_DATA) {
    const v = err.data[key];
    if (typeof v === "string" && v !== "") causes.push({ reason: cause, message: v });
  }
  const details: Record<string, unknown> = { causes };
  const retry = Number(err.headers["retry-after"]);
  if (Number.isInteger(retry) && retry > 0) details.retryAfterSeconds = retry;
  return statusBody(err.httpStatus, err.reason, err.message, details);
}

/** Any thrown value as a GatewayError (unknown errors become a 500 that reveals nothing internal). */
export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const httpStatus = (err as { httpStatus?: unknown } | null)?.httpStatus;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  // Typed errors from other stages (requestinfo) carry a status; keep their code and message.
  if (typeof httpStatus === "number" && typeof code === "string") {
    const reason: StatusReason =
      httpStatus === 400 ? "BadRequest" : httpStatus === 403 ? "Forbidden" : "InternalError";
    return new GatewayError(code, httpStatus, reason, message);
  }
  return new GatewayError(
    "INTERNAL",
    500,
    "InternalError",
    "custos: internal error in the gateway; the call was refused (fail closed)",
    {
      cause: typeof code === "string" ? code : "unknown",
    },
  );
}
