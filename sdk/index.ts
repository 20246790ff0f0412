/**
 * custos policy SDK: write policies as typed TypeScript, compile them with `custos compile`.
 *
 * @example
 * import { allow, deny, identities, policy, READ } from "custos";
 * const ids = identities({ ci: { groups: ["custos:ci-agents"] } });
 * export default policy({
 *   name: "example",
 *   identities: ids,
 *   rules: [
 *     deny("no-secrets", { who: [ids.ci], resources: ["secrets"], reason: "agents never read Secrets" }),
 *     allow("ci-reads", { who: [ids.ci], verbs: READ, resources: ["pods"], phi: false, reason: "CI reads pods" }),
 *   ],
 * });
 */
export type {
  CustomResource,
  KindName,
  KindTypes,
  KnownResource,
  KnownSubresource,
  ResourceName,
} from "./kube/resources.ts";
export { customResource, RESOURCES } from "./kube/resources.ts";
export {
  annotation,
  detector,
  drop,
  field,
  label,
  mask,
  partial,
  pseudonymize,
  redact,
} from "./builders/masks.ts";
export type { DetectorBuilderSpec, FieldOptions } from "./builders/masks.ts";
/** The default HIPAA Safe Harbor detector library: `detectors.hipaaSafeHarbor()`, `detectors.mrn({...})`, ... */
export * as detectors from "./detectors/index.ts";
export { extendPolicy, policy } from "./builders/policy.ts";
export type { PolicySpec } from "./builders/policy.ts";
export { and, body, not, or, when } from "./builders/predicate.ts";
export type { ArrayExpr, Expr, LeafExpr, ObjectExpr, UntypedExpr } from "./builders/predicate.ts";
export {
  ALL_VERBS,
  allow,
  approvalGroup,
  deny,
  hipaa,
  identities,
  purposes,
  READ,
  requireApproval,
  reviewer,
  rule,
  WRITE,
} from "./builders/rules.ts";
export type { IdentitySpec } from "./builders/rules.ts";
export type {
  AllowSpec,
  ApprovalGroupDef,
  ApprovalRuleSpec,
  ApprovalSpec,
  DenySpec,
  DetectorDef,
  Duration,
  FieldDef,
  IdentityDef,
  LibraryDetector,
  MaskDef,
  MaskSpec,
  MatchSpec,
  PolicyDef,
  Predicate,
  PurposeDef,
  PurposeSpec,
  RuleDef,
} from "./builders/types.ts";
export type { FrameworkRef, GatewayConfig, MaskStrategy, Reviewer, Verb } from "./schema/config.ts";
