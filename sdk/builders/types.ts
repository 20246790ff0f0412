/**
 * What the builders produce: plain data, tagged by `kind`. The compiler turns these into
 * the GatewayConfig through a table of handlers, one per kind.
 */
import type {
  Detector,
  FrameworkRef,
  Json,
  MaskStrategy,
  Predicate,
  Reviewer,
  SourceLocation,
  Verb,
} from "../schema/config.ts";
import type { ResourceName } from "../kube/resources.ts";

export type { FrameworkRef, Json, MaskStrategy, Predicate, Reviewer, SourceLocation, Verb };

/** A duration: seconds as a number, or "30s", "15m", "8h", "7d". */
export type Duration = number | `${number}${"s" | "m" | "h" | "d"}`;

export interface IdentityDef {
  readonly kind: "identity";
  readonly name: string;
  readonly subjects?: readonly string[];
  readonly groups?: readonly string[];
  readonly claims?: Readonly<Record<string, readonly string[]>>;
  readonly description?: string;
  readonly source: SourceLocation;
}

export interface PurposeDef {
  readonly kind: "purpose";
  readonly name: string;
  readonly description: string;
  readonly source: SourceLocation;
}

export interface ApprovalGroupDef {
  readonly kind: "approvalGroup";
  readonly name: string;
  readonly description?: string;
  readonly reviewers: readonly Reviewer[];
  readonly source: SourceLocation;
}

/** Purpose matching: the caller must (not) declare one, or declare one of these. */
export type PurposeSpec = "required" | "absent" | PurposeDef | string | readonly (PurposeDef | string)[];

export interface MatchSpec {
  /** Kubernetes verbs; exec/attach/portforward are `create` on `pods/exec`, `pods/attach`, `pods/portforward` */
  readonly verbs?: readonly Verb[];
  /** "" is the core group; globs allowed */
  readonly apiGroups?: readonly string[];
  /** RBAC form: "pods", "pods/exec", "pods/*", "*", "* /scale" (no space) */
  readonly resources?: readonly ResourceName[];
  /** namespace globs */
  readonly namespaces?: readonly string[];
  /** true: only in the policy's PHI namespaces; false: only outside them */
  readonly phi?: boolean;
  /** object name globs */
  readonly names?: readonly string[];
  /** non-resource URL patterns ("/version", "/openapi/*") */
  readonly nonResourceURLs?: readonly string[];
  /** named identities (from `identities()`); the caller must match one */
  readonly who?: readonly (IdentityDef | string)[];
  readonly purpose?: PurposeSpec;
  /** a typed predicate over the request body: see `when()` */
  readonly body?: Predicate;
}

export interface ApprovalSpec {
  /** the approver group (from `approvalGroup()`) */
  readonly group: ApprovalGroupDef | string;
  /** how many distinct reviewers must approve (M of N); default 1 */
  readonly count?: number;
  /** how long a grant stays usable after approval; default "1h" */
  readonly ttl?: Duration;
  /** "once" (default): the first call consumes the grant; "ttl": reusable until it expires */
  readonly use?: "once" | "ttl";
  /** hold the call open while waiting for approval, up to this long; default false (answer 403 at once) */
  readonly wait?: Duration | false;
  /** accept APPROVED reviews without a custos signature; default false */
  readonly allowUnsigned?: boolean;
}

interface RuleCommon extends MatchSpec {
  /** why the rule exists: shown to the caller on deny and in evidence */
  readonly reason: string;
  /** what to do instead */
  readonly remediation?: string;
  readonly description?: string;
  readonly framework?: FrameworkRef;
  /** "dry-run": record the match, never decide; default "enforce" */
  readonly enforcement?: "enforce" | "dry-run";
  /** exec/attach sessions allowed by this rule must be recorded */
  readonly recordSession?: boolean;
}
export type AllowSpec = RuleCommon;
export type DenySpec = RuleCommon;
export interface ApprovalRuleSpec extends RuleCommon {
  readonly approval: ApprovalSpec;
}

export interface RuleDef {
  readonly kind: "rule";
  readonly id: string;
  readonly decision: "allow" | "deny" | "requireApproval";
  readonly spec: RuleCommon & { readonly approval?: ApprovalSpec };
  readonly source: SourceLocation;
}

export interface FieldDef {
  readonly kind: "field";
  /** as written, e.g. "spec.containers[*].env[*].value" */
  readonly path: string;
  readonly segments: readonly string[];
  readonly strategy: MaskStrategy;
  readonly label?: string;
  readonly base64?: boolean;
  readonly source: SourceLocation;
}

export interface DetectorDef {
  readonly kind: "detector";
  readonly id: string;
  readonly category: string;
  readonly pattern: string;
  readonly flags: string;
  readonly strategy: MaskStrategy;
  readonly label: string;
  readonly scope: "everywhere" | "masks";
  readonly validate?: "none" | "luhn" | "ssn" | "date" | "ipv4";
  readonly contextPattern?: string;
  readonly source: SourceLocation;
}

/** A detector from the `detectors` library (plain data without `kind`/`source`). */
export type LibraryDetector = Omit<Detector, "source">;

export interface MaskSpec {
  readonly description?: string;
  readonly framework?: FrameworkRef;
  readonly apiGroups?: readonly string[];
  /** RBAC form: "configmaps", "secrets", "pods", "pods/log", "pods/exec", "*" */
  readonly resources?: readonly ResourceName[];
  readonly namespaces?: readonly string[];
  readonly phi?: boolean;
  /** the object's labels must include these (matchLabels) */
  readonly labels?: Readonly<Record<string, string>>;
  readonly fields?: readonly FieldDef[];
  /** content detectors to run over every string of matched objects and streams: built with detector(), from the `detectors` library, or an id */
  readonly detectors?: readonly (DetectorDef | LibraryDetector | string)[];
}

export interface MaskDef {
  readonly kind: "mask";
  readonly id: string;
  readonly spec: Omit<MaskSpec, "detectors"> & { readonly detectors?: readonly (DetectorDef | string)[] };
  readonly source: SourceLocation;
}

export interface PolicyDef {
  readonly kind: "policy";
  readonly name: string;
  readonly phiNamespaces: readonly string[];
  readonly identities: readonly IdentityDef[];
  readonly purposes: readonly PurposeDef[];
  readonly approvalGroups: readonly ApprovalGroupDef[];
  readonly rules: readonly RuleDef[];
  readonly masks: readonly MaskDef[];
  readonly detectors: readonly DetectorDef[];
  readonly source: SourceLocation;
}

/** Every kind of definition the compiler handles. */
export type Definition =
  | IdentityDef
  | PurposeDef
  | ApprovalGroupDef
  | RuleDef
  | MaskDef
  | FieldDef
  | DetectorDef
  | PolicyDef;
