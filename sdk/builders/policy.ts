import { callerLocation } from "./source.ts";
import { asDetectorDef } from "./masks.ts";
import type {
  ApprovalGroupDef,
  DetectorDef,
  IdentityDef,
  LibraryDetector,
  MaskDef,
  PolicyDef,
  PurposeDef,
  RuleDef,
} from "./types.ts";

type Many<T> = readonly T[] | Readonly<Record<string, T>>;

export interface PolicySpec {
  /** shown in evidence and in deny messages */
  name: string;
  /** namespace globs that hold PHI, declared once; default ["phi-*"] */
  phiNamespaces?: readonly string[];
  identities?: Many<IdentityDef>;
  purposes?: Many<PurposeDef>;
  approvalGroups?: Many<ApprovalGroupDef>;
  /** in order: the first matching rule decides; no match is a deny */
  rules: readonly RuleDef[];
  masks?: readonly MaskDef[];
  /** detectors to compile in (those listed by masks are included automatically); `detectors.hipaaSafeHarbor()` gives the default set */
  detectors?: readonly (DetectorDef | LibraryDetector)[];
}

function list<T>(many: Many<T> | undefined): T[] {
  if (many === undefined) return [];
  return Array.isArray(many) ? [...(many as readonly T[])] : Object.values(many as Record<string, T>);
}

/**
 * A policy: the default export of a policy file, compiled by `custos compile`.
 * @example
 * import { allow, identities, policy, READ } from "custos";
 * const ids = identities({ ci: { groups: ["custos:ci-agents"] } });
 * export default policy({
 *   name: "team-a",
 *   phiNamespaces: ["phi-*"],
 *   identities: ids,
 *   rules: [allow("ci-reads", { who: [ids.ci], verbs: READ, resources: ["pods"], phi: false, reason: "CI reads pods" })],
 * });
 */
export function policy(spec: PolicySpec): PolicyDef {
  const source = callerLocation();
  const def: PolicyDef = {
    kind: "policy",
    name: spec.name,
    phiNamespaces: [...(spec.phiNamespaces ?? ["phi-*"])],
    identities: list(spec.identities),
    purposes: list(spec.purposes),
    approvalGroups: list(spec.approvalGroups),
    rules: [...spec.rules],
    masks: [...(spec.masks ?? [])],
    detectors: (spec.detectors ?? []).map((d) => asDetectorDef(d, source)),
    source,
  };
  return Object.freeze(def);
}

/**
 * A copy of a policy with rules added before (take precedence) or after (fallbacks) its own,
 * and masks, detectors, identities, purposes and approval groups added.
 * @example
 * export default extendPolicy(hipaaBaseline({ reviewers }), {
 *   rulesBefore: [allow("team-debug", { ... })],
 *   masks: [mask("team-annotations", { ... })],
 * });
 */
export function extendPolicy(
  base: PolicyDef,
  add: {
    name?: string;
    rulesBefore?: readonly RuleDef[];
    rulesAfter?: readonly RuleDef[];
    masks?: readonly MaskDef[];
    detectors?: readonly (DetectorDef | LibraryDetector)[];
    identities?: Many<IdentityDef>;
    purposes?: Many<PurposeDef>;
    approvalGroups?: Many<ApprovalGroupDef>;
    phiNamespaces?: readonly string[];
  },
): PolicyDef {
  const source = callerLocation();
  return Object.freeze({
    ...base,
    name: add.name ?? base.name,
    phiNamespaces: [...(add.phiNamespaces ?? base.phiNamespaces)],
    identities: [...base.identities, ...list(add.identities)],
    purposes: [...base.purposes, ...list(add.purposes)],
    approvalGroups: [...base.approvalGroups, ...list(add.approvalGroups)],
    rules: [...(add.rulesBefore ?? []), ...base.rules, ...(add.rulesAfter ?? [])],
    masks: [...base.masks, ...(add.masks ?? [])],
    detectors: [...base.detectors, ...(add.detectors ?? []).map((d) => asDetectorDef(d, source))],
  });
}
