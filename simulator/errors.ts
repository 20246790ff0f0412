/**
 * Errors the simulator answers with. Every failure is one `SimulatorError` carrying a stable
 * `code`, a `data` object and the Kubernetes `Status` (meta/v1) that goes on the wire, shaped
 * like kube-apiserver's (k8s.io/apimachinery/pkg/api/errors).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: Array<{ reason?: string; message?: string; field?: string }>;
  retryAfterSeconds?: number;
}

export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
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

export class SimulatorError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  readonly status: KubeStatus;
  constructor(code: string, status: KubeStatus, data: Record<string, unknown> = {}) {
    super(status.message);
    this.name = "SimulatorError";
    this.code = code;
    this.status = status;
    this.data = data;
  }
  get httpStatus(): number {
    return this.status.code;
  }
}

function qualified(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

function details(name: string, resource: string, group: string): StatusDetails {
  const d: StatusDetails = { name, kind: resource };
  if (group) d.group = group;
  return d;
}

export const errors = {
  notFound: (resource: string, group: string, name: string) =>
    new SimulatorError(
      "SIM_NOT_FOUND",
      statusBody(
        404,
        "NotFound",
        `${qualified(resource, group)} "${name}" not found`,
        details(name, resource, group),
      ),
      { resource, group, name },
    ),
  alreadyExists: (resource: string, group: string, name: string) =>
    new SimulatorError(
      "SIM_ALREADY_EXISTS",
      statusBody(
        409,
        "AlreadyExists",
        `${qualified(resource, group)} "${name}" already exists`,
        details(name, resource, group),
      ),
      { resource, group, name },
    ),
  conflict: (resource: string, group: string, name: string, why: string) =>
    new SimulatorError(
      "SIM_CONFLICT",
      statusBody(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${qualified(resource, group)} "${name}": ${why}`,
        details(name, resource, group),
      ),
      { resource, group, name },
    ),
  invalid: (kind: string, group: string, name: string, causes: Array<{ field: string; message: string }>) => {
    const d: StatusDetails = {
      name,
      kind,
      causes: causes.map((c) => ({ reason: "FieldValueInvalid", message: c.message, field: c.field })),
    };
    if (group) d.group = group;
    const what = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
    return new SimulatorError(
      "SIM_INVALID",
      statusBody(422, "Invalid", `${kind}${group ? `.${group}` : ""} "${name}" is invalid: ${what}`, d),
      { kind, name, causes },
    );
  },
  badRequest: (message: string, data: Record<string, unknown> = {}) =>
    new SimulatorError("SIM_BAD_REQUEST", statusBody(400, "BadRequest", message), data),
  unauthorized: () => new SimulatorError("SIM_UNAUTHORIZED", statusBody(401, "Unauthorized", "Unauthorized")),
  forbidden: (message: string) => new SimulatorError("SIM_FORBIDDEN", statusBody(403, "Forbidden", message)),
  methodNotAllowed: (method: string, what: string) =>
    new SimulatorError(
      "SIM_METHOD_NOT_ALLOWED",
      statusBody(405, "MethodNotAllowed", `the server does not allow this method on the requested resource`),
      { method, what },
    ),
  pathNotFound: (path: string) =>
    new SimulatorError(
      "SIM_PATH_NOT_FOUND",
      statusBody(404, "NotFound", "the server could not find the requested resource"),
      {
        path,
      },
    ),
  notAcceptable: (accept: string) =>
    new SimulatorError(
      "SIM_NOT_ACCEPTABLE",
      statusBody(
        406,
        "NotAcceptable",
        `only the following media types are accepted: application/json, application/yaml (asked for ${JSON.stringify(accept)})`,
      ),
      { accept },
    ),
  unsupportedMediaType: (contentType: string) =>
    new SimulatorError(
      "SIM_UNSUPPORTED_MEDIA_TYPE",
      statusBody(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got ${JSON.stringify(contentType)})`,
      ),
      { contentType },
    ),
  gone: (message: string) => new SimulatorError("SIM_GONE", statusBody(410, "Expired", message)),
  tooLarge: (limit: number) =>
    new SimulatorError(
      "SIM_REQUEST_TOO_LARGE",
      statusBody(413, "RequestEntityTooLarge", `the request body is larger than ${limit} bytes`),
      { limit },
    ),
  internal: (message: string) =>
    new SimulatorError("SIM_INTERNAL", statusBody(500, "InternalError", message)),
};
