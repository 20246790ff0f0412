/**
 * The operation a reviewer approves, its fingerprint, its request id and its request file.
 *
 * Fingerprint (exactly):
 *   "sha256:" + hex(sha256(canonicalJson({
 *     identity: { subject, groups: groups sorted by UTF-16 code unit, claims },
 *     request:  { verb, apiGroup, apiVersion, namespace, resource, subresource, name, path },
 *               (path: the request path and its query as the gateway's approvalQuery writes
 *               it — an exec's command, a deletecollection's selector are approved too; a
 *               name, namespace or path holding an identifier is masked and followed by "#"
 *               and a keyed digest of what it was)
 *     purpose:  the purpose id, or null when none was declared,
 *     bodySha256: sha256 hex of the exact request body bytes ("" when none),
 *   })))
 * canonicalJson (sdk/lib/canonical.ts) sorts object keys and drops whitespace, so the same
 * operation always has the same fingerprint, and any change to who, what, where, why or a
 * single body byte changes it. Rule id and policy hash are NOT in the fingerprint: a policy
 * reload does not invalidate a reviewer's decision about the same operation.
 *
 * Request id: the first 12 hex digits of the fingerprint, "-", the creation time in
 * milliseconds since the epoch in base 36 (e.g. "3f2a9c1b7d4e-miexk2ab"). The prefix lets a restarted gateway
 * find the open request of an operation by branch name; the suffix tells two requests for the
 * same operation apart (one expired, the next one opened).
 */
import type { ApprovalOperation } from "../../gateway/ports.ts";
import { canonicalJson, sha256Hex } from "../../sdk/lib/canonical.ts";
import type { ApprovalRequirement, Json } from "../../sdk/schema/config.ts";
import { RequestFileError } from "./errors.ts";

export type Fingerprint = string & { readonly __brand: "ApprovalFingerprint" };

export interface CanonicalOperation {
  identity: { subject: string; groups: string[]; claims: Record<string, string> };
  request: {
    verb: string;
    apiGroup: string;
    apiVersion: string;
    namespace: string;
    resource: string;
    subresource: string;
    name: string;
    path: string;
  };
  purpose: string | null;
  bodySha256: string;
}

export function canonicalOperation(
  op: Pick<ApprovalOperation, "identity" | "request" | "purpose" | "bodySha256">,
): CanonicalOperation {
  const r = op.request;
  return {
    identity: {
      subject: op.identity.subject,
      groups: [...op.identity.groups].sort(),
      claims: { ...op.identity.claims },
    },
    request: {
      verb: r.verb,
      apiGroup: r.apiGroup,
      apiVersion: r.apiVersion,
      namespace: r.namespace,
      resource: r.resource,
      subresource: r.subresource,
      name: r.name,
      path: r.path,
    },
    purpose: op.purpose ?? null,
    bodySha256: op.bodySha256,
  };
}

export function fingerprintOf(canonical: CanonicalOperation): Fingerprint {
  return `sha256:${sha256Hex(canonicalJson(canonical))}` as Fingerprint;
}

export function computeFingerprint(
  op: Pick<ApprovalOperation, "identity" | "request" | "purpose" | "bodySha256">,
): Fingerprint {
  return fingerprintOf(canonicalOperation(op));
}

const FP_RE = /^sha256:[0-9a-f]{64}$/;
const ID_RE = /^[0-9a-f]{12}-[0-9a-z]{1,12}$/;

export function isFingerprint(s: string): s is Fingerprint {
  return FP_RE.test(s);
}

export function isRequestId(s: string): boolean {
  return ID_RE.test(s);
}

export function requestIdFor(fingerprint: Fingerprint, createdAt: Date): string {
  return `${fingerprint.slice("sha256:".length, "sha256:".length + 12)}-${createdAt.getTime().toString(36)}`;
}

/** The creation time embedded in a request id (bound into every signature over it). */
export function requestCreatedAt(requestId: string): Date | undefined {
  if (!ID_RE.test(requestId)) return undefined;
  const ms = Number.parseInt(requestId.slice(13), 36);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

/** The request id prefix that every request for this fingerprint shares. */
export function requestIdPrefix(fingerprint: Fingerprint): string {
  return `${fingerprint.slice("sha256:".length, "sha256:".length + 12)}-`;
}

export function branchFor(requestId: string): string {
  return `custos/request-${requestId}`;
}

/** The file `requests/<id>.json`: everything a reviewer and an auditor need about one request. */
export interface RequestFile {
  kind: "custos.dev/ApprovalRequest";
  version: 1;
  requestId: string;
  fingerprint: Fingerprint;
  operation: CanonicalOperation;
  requester: { subject: string; groups: string[]; githubId: number | null };
  purpose: string | null;
  rule: {
    id: string;
    policyHash: string;
    group: string;
    count: number;
    use: "once" | "ttl";
    ttlSeconds: number;
    allowUnsigned: boolean;
  };
  /** the request body after masking (never the raw body): for the reviewer's eyes */
  maskedBody: Json | null;
  createdAt: string;
  expiresAt: string;
}

/** Claims that may carry the requester's numeric GitHub user id (self-approval check). */
export const REQUESTER_ID_CLAIMS = ["github_user_id", "actor_id", "githubId"] as const;

export function requesterGithubId(claims: Record<string, string>): number | null {
  return requesterGithubIds(claims)[0] ?? null;
}

/** Every GitHub user id the requester's claims name: none of them may approve. */
export function requesterGithubIds(claims: Record<string, string>): number[] {
  const out: number[] = [];
  for (const c of REQUESTER_ID_CLAIMS) {
    const v = claims[c];
    if (v !== undefined && /^[1-9][0-9]{0,15}$/.test(v)) out.push(Number(v));
  }
  return out;
}

export function buildRequestFile(
  op: ApprovalOperation,
  requirement: ApprovalRequirement,
  opts: { createdAt: Date; expiresAt: Date },
): RequestFile {
  const operation = canonicalOperation(op);
  const fingerprint = fingerprintOf(operation);
  return {
    kind: "custos.dev/ApprovalRequest",
    version: 1,
    requestId: requestIdFor(fingerprint, opts.createdAt),
    fingerprint,
    operation,
    requester: {
      subject: op.identity.subject,
      groups: operation.identity.groups,
      githubId: requesterGithubId(op.identity.claims),
    },
    purpose: op.purpose ?? null,
    rule: {
      id: op.ruleId,
      policyHash: op.policyHash,
      group: requirement.group,
      count: requirement.count,
      use: requirement.use,
      ttlSeconds: requirement.ttlSeconds,
      allowUnsigned: requirement.allowUnsigned,
    },
    maskedBody: op.maskedBody ?? null,
    createdAt: opts.createdAt.toISOString(),
    expiresAt: opts.expiresAt.toISOString(),
  };
}

export function serializeRequestFile(file: RequestFile): string {
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * Parse a request file and check it is self-consistent: the fingerprint recomputes from the
 * canonical operation and the id belongs to that fingerprint. A reviewer's CLI runs this
 * before signing, so a tampered file (operation changed, fingerprint kept) is refused.
 */
export function parseRequestFile(text: string): RequestFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RequestFileError(
      "expected the request file to be JSON, found unparseable text; the request branch is corrupt, ask for a new request",
    );
  }
  const f = v as Partial<RequestFile>;
  if (
    f?.kind !== "custos.dev/ApprovalRequest" ||
    f.version !== 1 ||
    typeof f.requestId !== "string" ||
    typeof f.fingerprint !== "string" ||
    !f.operation
  ) {
    throw new RequestFileError("expected a custos.dev/ApprovalRequest version 1 file, found another shape");
  }
  const recomputed = fingerprintOf(
    canonicalOperation({ ...f.operation, purpose: f.operation.purpose ?? undefined } as never),
  );
  // The canonical operation is already canonical: recompute straight from it too, so that no field can hide.
  const direct = `sha256:${sha256Hex(canonicalJson(f.operation))}`;
  if (recomputed !== f.fingerprint || direct !== f.fingerprint) {
    throw new RequestFileError(
      `expected the fingerprint ${f.fingerprint} to recompute from the request's operation, found ${direct}; the request file was altered — do not approve it`,
      { claimed: f.fingerprint, recomputed: direct },
    );
  }
  if (!f.requestId.startsWith(requestIdPrefix(f.fingerprint as Fingerprint)) || !isRequestId(f.requestId)) {
    throw new RequestFileError(
      `expected the request id ${f.requestId} to start with the fingerprint's first 12 hex digits; the request file was altered`,
      {
        requestId: f.requestId,
      },
    );
  }
  return f as RequestFile;
}
