/**
 * The gateway's stage contracts. A request flows: identity -> requestinfo -> decision ->
 * approval -> upstream -> masking -> evidence. The stages that live elsewhere (evidence
 * repo and approvals in `gitops/`) are reached only through the interfaces below, so a
 * deployment can swap GitHub for a local git backend without touching the gateway.
 * Everything here is plain data and interfaces: no Node sockets.
 */
import type { Decision, Enforcement, GatewayConfig, Json, SourceLocation } from "../sdk/schema/config.ts";

/** kube-apiserver's RequestInfo (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go). */
export interface RequestInfo {
  isResourceRequest: boolean;
  /** the request path, percent-decoded once and normalised (no dot-segments, no empty segments) */
  path: string;
  /** get, list, watch, create, update, patch, delete, deletecollection; lower-cased HTTP method for non-resource URLs */
  verb: string;
  apiPrefix: string; // "api" | "apis" | ""
  apiGroup: string; // "" for the core group
  apiVersion: string;
  namespace: string; // "" when cluster-scoped
  resource: string;
  subresource: string;
  name: string;
  /** the raw query string parameters that matter for evidence and masking (watch, follow, container, command, ...) */
  query: Record<string, string[]>;
}

export type IdentitySource = "token-file" | "oidc" | "serviceaccount" | "login";

/** Who is calling. Claims carry CI job-run facts: repository, workflow, ref, runId, sha, ... */
export interface Identity {
  subject: string;
  groups: string[];
  claims: Record<string, string>;
  source: IdentitySource;
}

/** Everything the decision stage needs about one call. */
export interface DecisionInput {
  identity: Identity;
  request: RequestInfo;
  /** the declared purpose id, if any */
  purpose?: string;
  /** the decoded JSON request body (create/update/patch), if any */
  body?: Json;
}

export interface DecisionResult {
  /** what the matched rule says (or "deny" by default) */
  decision: Decision;
  /** what the gateway does: a dry-run rule's deny/approval becomes "allow" here, but is recorded as decided */
  effective: Decision;
  enforcement: Enforcement;
  /** the id of the rule that decided, or "default-deny" */
  ruleId: string;
  reason: string;
  remediation?: string;
  source?: SourceLocation;
  policyHash: string;
  /** dry-run rules that matched before the deciding rule (recorded, never blocking) */
  dryRunMatches: string[];
}

/** Summary of what masking did to one response or body: never the values. */
export interface MaskSummary {
  /** ids of masks and detectors that fired */
  rules: string[];
  /** RFC 6901 JSON Pointers of masked or dropped fields (capped; `truncated` says so) */
  paths: string[];
  truncated: boolean;
  /** values masked per detector or field-mask label */
  counts: Record<string, number>;
}

/** what a server-side Table row embeds (the `includeObject` query parameter) */
export type IncludeObject = "None" | "Metadata" | "Object";

export interface MaskContext {
  request: RequestInfo;
  identity: Identity;
  /**
   * Set when the gateway asked the upstream for Table rows with their whole objects
   * (`includeObject=Object`) so that field masks can match cells by value: what the client asked
   * for, which each row gets once masked (None: no object; Metadata: a PartialObjectMetadata of
   * the masked object's metadata; Object: the masked object).
   */
  tableRows?: IncludeObject;
}

/** Streaming text masker (logs, exec/attach channels, watch lines): carries partial identifiers across chunk boundaries. */
export interface TextStreamMasker {
  /** returns the masked text that is safe to emit now (may hold back an unfinished tail) */
  push(chunk: string): string;
  /** returns the masked remainder at end of stream */
  end(): string;
  summary(): MaskSummary;
}

export interface Masker {
  /** Mask a decoded JSON response or request body (object, List, Table, Status, WatchEvent). Never mutates its input. */
  maskJson(value: Json, ctx: MaskContext): { value: Json; summary: MaskSummary };
  /**
   * (additive, optional) Mask a JSON document given as its bytes (a response body, one watch
   * event), without re-serialising what no mask touches. Same masking as maskJson: `JSON.parse`
   * of the result deep-equals `maskJson(JSON.parse(text), ctx).value` and the summaries are
   * equal; untouched values keep their bytes, and an unchanged body is returned as it is (a body
   * that is not valid UTF-8 goes out as the text the masker read). Throws `JSON.parse`'s own
   * SyntaxError when the body is not JSON.
   */
  maskJsonBytes?(bytes: Buffer, ctx: MaskContext): { body: Buffer; summary: MaskSummary };
  /**
   * (additive, optional) A keyed digest of a value custos must bind without storing it (HMAC
   * with the deployment's pseudonym key): an approval names a masked object name with the digest
   * of the real one, so its fingerprint still binds that exact object. Without it, approvals name
   * the request as it came.
   */
  digest?(value: string): string;
  /** A masker for a text stream (pod logs, exec stdout/stderr). */
  textStream(ctx: MaskContext): TextStreamMasker;
  /**
   * (additive, optional) Whether any mask or detector can touch a response to this request.
   * When it returns false the proxy may relay a readable (JSON/text) body without parsing it.
   */
  appliesTo?(ctx: MaskContext): boolean;
  /**
   * (additive, optional) Whether a field mask can apply to an object this request returns (by
   * its resource and namespace; labels unknown). When true, the proxy asks for Tables with
   * whole row objects (see MaskContext.tableRows).
   */
  fieldMasksMayApply?(ctx: MaskContext): boolean;
}

/** One evidence record per call: the fields of an audit.k8s.io/v1 Event plus custos' own. */
export interface EvidenceRecord {
  apiVersion: "audit.k8s.io/v1";
  kind: "Event";
  level: "Metadata" | "Request" | "RequestResponse";
  auditID: string;
  /**
   * "RequestReceived": a call that changes the cluster is about to be forwarded (written before
   * the API server sees it); "ResponseStarted": a long-running call (exec/attach/port-forward,
   * a watch, a log stream) has begun. Either is a `session` record; the call's "ResponseComplete"
   * record follows under the same auditID.
   */
  stage: "RequestReceived" | "ResponseStarted" | "ResponseComplete" | "Panic";
  requestURI: string;
  verb: string;
  user: { username: string; groups: string[]; extra?: Record<string, string[]> };
  sourceIPs: string[];
  userAgent?: string;
  objectRef?: {
    resource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
    apiVersion?: string;
    subresource?: string;
  };
  responseStatus: { code: number; status?: string; reason?: string; message?: string };
  /** masked request body, only when the policy asks for level Request */
  requestObject?: Json;
  requestReceivedTimestamp: string; // RFC 3339 with microseconds
  stageTimestamp: string;
  annotations?: Record<string, string>;
  custos: {
    decision: Decision;
    effective: Decision;
    enforcement: Enforcement;
    ruleId: string;
    reason: string;
    policyHash: string;
    purpose?: string;
    jobRun?: Record<string, string>;
    approval?: { requestId: string; fingerprint: string; grantId?: string; url?: string };
    masking?: MaskSummary;
    /** sha256 of the exact request body bytes, when there was one */
    bodySha256?: string;
    /** for port-forward and exec: bytes in each direction */
    bytes?: { in: number; out: number };
    /** kinds of records other than API calls: "call" | "policy-reload" | "session" | "approval" */
    type: "call" | "policy-reload" | "session" | "approval";
    /** set by the evidence sink: which gateway instance wrote it, and its per-gateway sequence number (1, 2, 3, ...) */
    gatewayId?: string;
    seq?: number;
    extra?: Record<string, Json>;
  };
}

/** Where records go. `append` resolves only once the record is durable; the call is answered after that. */
export interface EvidenceSink {
  append(record: EvidenceRecord): Promise<{ seq: number }>;
  /** a non-record artefact (e.g. an asciicast session recording) stored beside the records */
  appendArtifact(artifact: {
    kind: "session";
    name: string;
    content: string;
    auditID: string;
  }): Promise<void>;
  close(): Promise<void>;
  /** whether the sink takes records now (a sink that recovers from a failure by itself says so here) */
  health?(): { ok: boolean; reason: string };
}

/** The operation a human approves; its fingerprint binds identity, request, purpose and exact body bytes. */
export interface ApprovalOperation {
  identity: Identity;
  request: RequestInfo;
  purpose?: string;
  /** sha256 hex of the exact request body bytes ("" when none) */
  bodySha256: string;
  /** masked body, for the reviewer's eyes only */
  maskedBody?: Json;
  ruleId: string;
  policyHash: string;
}

export type ApprovalOutcome =
  | { status: "granted"; requestId: string; fingerprint: string; grantId: string; url?: string }
  | { status: "pending"; requestId: string; fingerprint: string; url?: string; reviewCommand: string }
  | { status: "denied"; requestId: string; fingerprint: string; url?: string; reason: string };

export interface ApprovalService {
  /** Look for a valid grant for this operation; if none, open (or find the open) request. */
  check(
    op: ApprovalOperation,
    requirement: NonNullable<GatewayConfig["rules"][number]["approval"]>,
  ): Promise<ApprovalOutcome>;
  /** Mark a single-use grant consumed; resolves false if it was already used (the call must then be refused). */
  consume(grantId: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The client went away (a subset of AbortSignal, so either an AbortSignal or the gateway's
 * lighter per-call CallCancel can be passed).
 */
export interface CallSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", fn: () => void, o?: { once?: boolean }): void;
  removeEventListener(type: "abort", fn: () => void): void;
}
