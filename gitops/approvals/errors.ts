/**
 * Errors of the approvals layer: one class per failure, a stable `code`, a `data` object.
 * Messages say what was expected, what was found and what to do. Tests assert `code`.
 */
export class ApprovalError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.data = data;
  }
}

/** An OpenSSH key (public or private) could not be read. */
export class KeyFormatError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_KEY_FORMAT", message, data);
  }
}

/** A request file does not match the fingerprint it claims, or is malformed. */
export class RequestFileError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_REQUEST_FILE", message, data);
  }
}

/** The request named on the command line (id or PR URL) does not exist. */
export class RequestNotFoundError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_REQUEST_NOT_FOUND", message, data);
  }
}

/** The request can no longer be decided (expired, closed, already granted or denied). */
export class RequestClosedError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_REQUEST_CLOSED", message, data);
  }
}

/** A webhook delivery did not carry a valid X-Hub-Signature-256. */
export class WebhookSignatureError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_WEBHOOK_SIGNATURE", message, data);
  }
}

/** The rule names an approval group the config does not define. */
export class UnknownApprovalGroupError extends ApprovalError {
  constructor(group: string) {
    super(
      "E_APPROVAL_UNKNOWN_GROUP",
      `expected approval group "${group}" in the compiled config's approvalGroups, found none; add it to the policy and recompile`,
      { group },
    );
  }
}

/** The GitHub API (or the local repository) failed underneath. */
export class ApprovalBackendError extends ApprovalError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super("E_APPROVAL_BACKEND", message, data);
  }
}

/** A backend already holds a request with this id (two requests in the same millisecond); the caller retries with another. */
export class RequestIdTakenError extends ApprovalError {
  constructor(requestId: string) {
    super(
      "E_APPROVAL_REQUEST_ID_TAKEN",
      `expected request id ${requestId} to be new, found it taken; retry with a later creation time`,
      { requestId },
    );
  }
}
