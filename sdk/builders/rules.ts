import type { FrameworkRef, Reviewer, Verb } from "../schema/config.ts";
import { callerLocation } from "./source.ts";
import type {
  AllowSpec,
  ApprovalGroupDef,
  ApprovalRuleSpec,
  DenySpec,
  IdentityDef,
  PurposeDef,
  RuleDef,
} from "./types.ts";

/** Read verbs: get, list, watch. @example allow("reads", { verbs: READ, resources: ["pods"], reason: "..." }) */
export const READ: readonly Verb[] = Object.freeze(["get", "list", "watch"]);
/** Write verbs: create, update, patch, delete, deletecollection. @example requireApproval("pv", { verbs: WRITE, resources: ["persistentvolumes"], approval, reason: "..." }) */
export const WRITE: readonly Verb[] = Object.freeze([
  "create",
  "update",
  "patch",
  "delete",
  "deletecollection",
]);
/** Every resource verb. @example allow("admins", { who: [ids.admins], verbs: ALL_VERBS, reason: "..." }) */
export const ALL_VERBS: readonly Verb[] = Object.freeze([...READ, ...WRITE]);

/**
 * A HIPAA Security/Privacy Rule reference for a rule or mask.
 * @example hipaa("164.312(b)") // audit controls
 */
export function hipaa(section: string): FrameworkRef {
  return { name: "HIPAA", section };
}

function copy<T>(value: T): T {
  return structuredClone(value);
}

function makeRule(id: string, decision: RuleDef["decision"], spec: RuleDef["spec"]): RuleDef {
  return Object.freeze({ kind: "rule", id, decision, spec: copy(spec), source: callerLocation() });
}

/**
 * Allow the matching calls.
 * @example
 * allow("ci-read-deployments", {
 *   who: [ids.ci], verbs: READ, apiGroups: ["apps"], resources: ["deployments"], phi: false,
 *   reason: "CI reads rollout status outside PHI namespaces",
 * })
 */
export function allow(id: string, spec: AllowSpec): RuleDef {
  return makeRule(id, "allow", spec);
}

/**
 * Deny the matching calls, with the reason and remediation the caller sees.
 * @example
 * deny("no-secret-reads-by-agents", {
 *   who: [ids.ci], verbs: READ, resources: ["secrets"],
 *   reason: "agents never read Secrets", remediation: "mount the secret into the workload instead",
 *   framework: hipaa("164.312(a)(1)"),
 * })
 */
export function deny(id: string, spec: DenySpec): RuleDef {
  return makeRule(id, "deny", spec);
}

/**
 * Let the matching calls through only with an approval (signed GitHub reviews).
 * @example
 * requireApproval("rbac-changes", {
 *   verbs: ["create", "update", "patch"], apiGroups: ["rbac.authorization.k8s.io"],
 *   resources: ["rolebindings", "clusterrolebindings"],
 *   approval: { group: security, count: 2, ttl: "1h", use: "once" },
 *   reason: "RBAC changes widen access to PHI",
 * })
 */
export function requireApproval(id: string, spec: ApprovalRuleSpec): RuleDef {
  return makeRule(id, "requireApproval", spec);
}

/**
 * A rule with the decision given as data (for generated policies).
 * @example rule("x", "deny", { resources: ["nodes/proxy"], reason: "no node proxy" })
 */
export function rule(id: string, decision: "allow" | "deny", spec: AllowSpec): RuleDef;
export function rule(id: string, decision: "requireApproval", spec: ApprovalRuleSpec): RuleDef;
export function rule(id: string, decision: RuleDef["decision"], spec: AllowSpec | ApprovalRuleSpec): RuleDef {
  return makeRule(id, decision, spec);
}

/** How a named identity is recognised. All given parts must hold; within a part, any entry. */
export interface IdentitySpec {
  /** subject globs, e.g. "repo:acme/*:ref:refs/heads/main" or "system:serviceaccount:ci:*" */
  subjects?: readonly string[];
  /** group names (exact) */
  groups?: readonly string[];
  /** token claim globs, e.g. { repository: ["acme/*"], workflow: ["deploy"] } */
  claims?: Readonly<Record<string, readonly string[]>>;
  description?: string;
}

/**
 * Name identities once; rules refer to them by the returned objects (a typo is a type error).
 * @example
 * const ids = identities({
 *   ci: { groups: ["custos:ci-agents"], description: "CI jobs" },
 *   operators: { groups: ["custos:operators"] },
 * });
 * allow("ci-reads", { who: [ids.ci], verbs: READ, resources: ["pods"], reason: "..." })
 */
export function identities<const T extends Record<string, IdentitySpec>>(
  specs: T,
): { readonly [K in keyof T]: IdentityDef } {
  const source = callerLocation();
  const out: Record<string, IdentityDef> = {};
  for (const [name, spec] of Object.entries(specs)) {
    out[name] = Object.freeze({ kind: "identity", name, ...copy(spec), source }) as IdentityDef;
  }
  return Object.freeze(out) as { readonly [K in keyof T]: IdentityDef };
}

/**
 * Name the purposes a caller may declare (the `Custos-Purpose` header or `custos login --purpose`).
 * @example
 * const why = purposes({ treatment: "Treatment of a patient", operations: "Health care operations" });
 * allow("phi-reads", { purpose: [why.treatment], phi: true, verbs: READ, reason: "..." })
 */
export function purposes<const T extends Record<string, string>>(
  descriptions: T,
): { readonly [K in keyof T]: PurposeDef } {
  const source = callerLocation();
  const out: Record<string, PurposeDef> = {};
  for (const [name, description] of Object.entries(descriptions)) {
    out[name] = Object.freeze({ kind: "purpose", name, description, source });
  }
  return Object.freeze(out) as { readonly [K in keyof T]: PurposeDef };
}

/**
 * A reviewer, by immutable numeric GitHub user id, with the ed25519 public keys (OpenSSH
 * form) their `custos approve` signatures must verify against.
 * @example reviewer({ githubId: 583231, login: "octocat", keys: ["ssh-ed25519 AAAAC3Nz... octocat@laptop"] })
 */
export function reviewer(r: Reviewer): Reviewer {
  return copy(r);
}

/**
 * A group of approvers that approval rules name.
 * @example
 * const security = approvalGroup("security", { reviewers: [reviewer({ githubId: 1, login: "a", keys: [key] })] });
 */
export function approvalGroup(
  name: string,
  spec: { description?: string; reviewers: readonly Reviewer[] },
): ApprovalGroupDef {
  return Object.freeze({
    kind: "approvalGroup",
    name,
    ...copy(spec),
    source: callerLocation(),
  }) as ApprovalGroupDef;
}
