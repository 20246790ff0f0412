/**
 * The compiled gateway config: the only contract between `sdk/` (which produces it) and
 * `gateway/` (which loads it). Plain JSON, versioned, hashed. The gateway imports this
 * module (schema + types) but never the sdk's builders.
 *
 * Conventions used throughout:
 * - Globs (`*`, `?`, `{a,b}`) are matched with picomatch semantics on whole strings.
 * - Resources use RBAC's form: `pods`, `pods/exec`, `pods/*` (all subresources of pods),
 *   `*` (every resource and subresource), `* /scale` (a subresource of any resource).
 * - Field paths are arrays of segments; `"*"` is a wildcard over array elements or object
 *   members. Predicates over them are existential: "some reached value satisfies ...".
 * - Every rule and mask carries the source location it was compiled from.
 */
import { z } from "zod";

export const SCHEMA_VERSION = "custos.dev/v1alpha1" as const;

/** Where in a policy file a rule or mask was written. */
export const SourceLocation = z.object({
  file: z.string(),
  line: z.number().int().nonnegative(),
  column: z.number().int().nonnegative(),
});
export type SourceLocation = z.infer<typeof SourceLocation>;

/** The verbs of resource requests (exec/attach/portforward are `create`/`get` on subresources). */
export const RESOURCE_VERBS = [
  "get",
  "list",
  "watch",
  "create",
  "update",
  "patch",
  "delete",
  "deletecollection",
] as const;

/** Kubernetes request verbs as kube-apiserver's RequestInfo computes them. */
export const Verb = z.enum([
  ...RESOURCE_VERBS,
  // non-resource URLs use the HTTP method lower-cased
  "head",
  "options",
  "post",
  "put",
]);
export type Verb = z.infer<typeof Verb>;

export const Decision = z.enum(["allow", "deny", "requireApproval"]);
export type Decision = z.infer<typeof Decision>;

export const Enforcement = z.enum(["enforce", "dry-run"]);
export type Enforcement = z.infer<typeof Enforcement>;

export const FrameworkRef = z.object({ name: z.literal("HIPAA"), section: z.string() });
export type FrameworkRef = z.infer<typeof FrameworkRef>;

/** A JSON value (request bodies are JSON after decoding YAML/apply-patch). */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export const Json: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(Json), z.record(z.string(), Json)]),
);

export const FieldPath = z.array(z.string()).min(1);
export type FieldPath = z.infer<typeof FieldPath>;

/** Typed predicates over the request body, compiled to data (no function source). */
export type Predicate =
  | { op: "and"; args: Predicate[] }
  | { op: "or"; args: Predicate[] }
  | { op: "not"; arg: Predicate }
  | { op: "exists"; path: FieldPath }
  | { op: "eq"; path: FieldPath; value: Json }
  | { op: "in"; path: FieldPath; values: Json[] }
  | { op: "glob"; path: FieldPath; pattern: string }
  | { op: "gt" | "lt"; path: FieldPath; value: number }
  /** some element reached by `path` (an array or object) satisfies `where`, evaluated relative to it */
  | { op: "some"; path: FieldPath; where: Predicate };
export const Predicate: z.ZodType<Predicate> = z.lazy(() =>
  z.discriminatedUnion("op", [
    z.object({ op: z.literal("and"), args: z.array(Predicate) }),
    z.object({ op: z.literal("or"), args: z.array(Predicate) }),
    z.object({ op: z.literal("not"), arg: Predicate }),
    z.object({ op: z.literal("exists"), path: FieldPath }),
    z.object({ op: z.literal("eq"), path: FieldPath, value: Json }),
    z.object({ op: z.literal("in"), path: FieldPath, values: z.array(Json) }),
    z.object({ op: z.literal("glob"), path: FieldPath, pattern: z.string() }),
    z.object({ op: z.literal("gt"), path: FieldPath, value: z.number() }),
    z.object({ op: z.literal("lt"), path: FieldPath, value: z.number() }),
    z.object({ op: z.literal("some"), path: FieldPath, where: Predicate }),
  ]),
);

/** Who an identity selector matches: subject globs, group names, token claim globs. All given parts must hold. */
export const IdentitySelector = z.object({
  subjects: z.array(z.string()).optional(),
  groups: z.array(z.string()).optional(),
  /** e.g. { repository: ["acme/*"], workflow: ["deploy"], ref: ["refs/heads/main"] } */
  claims: z.record(z.string(), z.array(z.string())).optional(),
});
export type IdentitySelector = z.infer<typeof IdentitySelector>;

export const PurposeMatch = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("absent") }),
  z.object({ kind: z.literal("present") }),
  /** the request's purpose is one of these named purposes */
  z.object({ kind: z.literal("anyOf"), ids: z.array(z.string()).min(1) }),
]);
export type PurposeMatch = z.infer<typeof PurposeMatch>;

/** A rule's match. Every given field must hold; an omitted field matches everything. */
export const Match = z.object({
  verbs: z.array(Verb).optional(),
  apiGroups: z.array(z.string()).optional(),
  /** RBAC form: "pods", "pods/exec", "pods/*", "*" */
  resources: z.array(z.string()).optional(),
  namespaces: z.array(z.string()).optional(),
  /** true: the namespace is one of config.phiNamespaces; false: it is not (cluster-scoped counts as not) */
  phi: z.boolean().optional(),
  names: z.array(z.string()).optional(),
  /** globs over non-resource URL paths, e.g. "/healthz", "/version", "/openapi/*" */
  nonResourceURLs: z.array(z.string()).optional(),
  /** names of entries in config.identities; the caller must match at least one */
  identities: z.array(z.string()).optional(),
  purpose: PurposeMatch.optional(),
  body: Predicate.optional(),
});
export type Match = z.infer<typeof Match>;

export const ApprovalRequirement = z.object({
  /** name of an entry in config.approvalGroups */
  group: z.string(),
  /** M of N */
  count: z.number().int().positive(),
  /** how long a grant stays usable once approved */
  ttlSeconds: z.number().int().positive(),
  /** "once": the grant is consumed by the first call that uses it; "ttl": reusable until it expires */
  use: z.enum(["once", "ttl"]),
  /** hold the call open while waiting (answering 429 + Retry-After), up to timeoutSeconds; null: answer 403 at once */
  wait: z.object({ timeoutSeconds: z.number().int().positive() }).nullable(),
  /** whether an APPROVED review without a custos signature counts (default false) */
  allowUnsigned: z.boolean(),
});
export type ApprovalRequirement = z.infer<typeof ApprovalRequirement>;

export const Rule = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
  description: z.string().optional(),
  decision: Decision,
  reason: z.string().min(1),
  remediation: z.string().optional(),
  framework: FrameworkRef.optional(),
  enforcement: Enforcement,
  match: Match,
  approval: ApprovalRequirement.optional(),
  /** exec/attach sessions allowed by this rule must be recorded; recording failure closes the session */
  recordSession: z.boolean().optional(),
  source: SourceLocation,
});
export type Rule = z.infer<typeof Rule>;

export const MaskStrategy = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("redact") }),
  z.object({ kind: z.literal("partial"), keepFirst: z.number().int().nonnegative(), keepLast: z.number().int().nonnegative() }),
  /** keyed HMAC-SHA256 with the deployment's pseudonym key: stable token, correlations survive */
  z.object({ kind: z.literal("pseudonymize") }),
  z.object({ kind: z.literal("drop") }),
]);
export type MaskStrategy = z.infer<typeof MaskStrategy>;

export const FieldMask = z.object({
  /** as written by the author, e.g. "spec.containers[*].env[*].value" */
  path: z.string(),
  segments: FieldPath,
  strategy: MaskStrategy,
  /** label shown in the masked value: [MASKED:<label>] */
  label: z.string(),
  /** for Secret data and similar: decode base64 before masking and re-encode after */
  base64: z.boolean().optional(),
});
export type FieldMask = z.infer<typeof FieldMask>;

export const MaskMatch = z.object({
  apiGroups: z.array(z.string()).optional(),
  /** RBAC form, e.g. "configmaps", "secrets", "pods", "pods/log", "pods/exec", "*" */
  resources: z.array(z.string()).optional(),
  namespaces: z.array(z.string()).optional(),
  phi: z.boolean().optional(),
  /** equality on the object's labels (matchLabels) */
  labels: z.record(z.string(), z.string()).optional(),
});
export type MaskMatch = z.infer<typeof MaskMatch>;

export const Mask = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
  description: z.string().optional(),
  framework: FrameworkRef.optional(),
  match: MaskMatch,
  fields: z.array(FieldMask),
  /** ids of config.detectors to run over every string in matched objects and streams */
  detectors: z.array(z.string()),
  source: SourceLocation,
});
export type Mask = z.infer<typeof Mask>;

/** A content detector for a HIPAA Safe Harbor identifier (45 CFR 164.514(b)(2)). */
export const Detector = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
  /** Safe Harbor category, e.g. "ssn", "mrn", "phone", "email", "date", "zip", "address", "ip", "url", ... */
  category: z.string(),
  /** JavaScript RegExp source; compiled with flags "g" + flags */
  pattern: z.string(),
  flags: z.string(),
  strategy: MaskStrategy,
  /** label shown in the masked value: [MASKED:<label>] */
  label: z.string(),
  /** "everywhere": applies to every response; "masks": only where a mask lists it */
  scope: z.enum(["everywhere", "masks"]),
  /** extra validation of a candidate match, to cut false positives */
  validate: z.enum(["none", "luhn", "ssn", "date", "ipv4"]).optional(),
  /**
   * A second pattern (same flags) that counts only on a line where another detector found an
   * identifier (not an IP or a URL): e.g. a name next to an SSN or a date of birth, which no
   * pattern could tell from other capitalised words on its own.
   */
  contextPattern: z.string().optional(),
  source: SourceLocation,
});
export type Detector = z.infer<typeof Detector>;

export const Reviewer = z.object({
  /** immutable numeric GitHub user id: logins can be renamed, ids cannot */
  githubId: z.number().int().positive(),
  /** for display only, never for matching */
  login: z.string(),
  /** registered ed25519 public keys in OpenSSH form: "ssh-ed25519 AAAA... comment" */
  keys: z.array(z.string()),
});
export type Reviewer = z.infer<typeof Reviewer>;

export const ApprovalGroup = z.object({
  description: z.string().optional(),
  reviewers: z.array(Reviewer),
  source: SourceLocation,
});
export type ApprovalGroup = z.infer<typeof ApprovalGroup>;

export const Purpose = z.object({ description: z.string(), source: SourceLocation });
export type Purpose = z.infer<typeof Purpose>;

export const NamedIdentity = IdentitySelector.extend({ description: z.string().optional(), source: SourceLocation });
export type NamedIdentity = z.infer<typeof NamedIdentity>;

export const GatewayConfig = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  /** sha256 (hex) of the canonical JSON of this object without `policyHash` */
  policyHash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  name: z.string(),
  /** what happens when no rule matches: always deny (kept explicit for readers of the config) */
  defaultDecision: z.literal("deny"),
  /** namespace globs that hold PHI (template default: ["phi-*"]) */
  phiNamespaces: z.array(z.string()),
  identities: z.record(z.string(), NamedIdentity),
  purposes: z.record(z.string(), Purpose),
  approvalGroups: z.record(z.string(), ApprovalGroup),
  /** first matching rule decides */
  rules: z.array(Rule),
  masks: z.array(Mask),
  detectors: z.array(Detector),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;
