/**
 * Decision: the compiled rules, in order, decide a call. First matching enforced rule wins;
 * no match is a deny ("default-deny"). Dry-run rules that match are recorded in
 * `dryRunMatches` and evaluation continues, so a dry-run rule never changes what happens.
 *
 * Pure and I/O-free. `compileDecider` precompiles every glob and predicate once per config;
 * `evaluate` caches deciders by policyHash.
 */
import type { ApprovalRequirement, GatewayConfig, Match, Rule } from "../../sdk/schema/config.ts";
import type { DecisionInput, DecisionResult, Identity } from "../ports.ts";
import {
  compileGlobs,
  compileIdentitySelector,
  compileNamespaceClassifier,
  compileNonResourceURLs,
  compilePredicate,
  compileResources,
  type NamespaceClass,
} from "../../sdk/lib/match.ts";

export type { NamespaceClass } from "../../sdk/lib/match.ts";
export {
  CLUSTER_SCOPED_RESOURCES,
  compileGlobs,
  compileNamespaceClassifier,
  compilePredicate,
  compileResources,
  reach,
} from "../../sdk/lib/match.ts";

/** A DecisionResult plus what the gateway needs to act on it (additive to the port's type). */
export interface DecisionOutcome extends DecisionResult {
  /** the deciding rule; absent for default-deny */
  rule?: Rule;
  /** the approval requirement, when decision is requireApproval */
  approval?: ApprovalRequirement;
  /** the deciding rule asks for exec/attach sessions to be recorded */
  recordSession?: boolean;
  /** where the request landed, for phi matching */
  namespaceClass: NamespaceClass;
}

export const DEFAULT_DENY_RULE_ID = "default-deny";

type Check = (input: DecisionInput, nsClass: NamespaceClass) => boolean;

interface CompiledRule {
  rule: Rule;
  /** matches identity and purpose only (for rulesFor) */
  who: (identity: Identity, purpose: string | undefined) => boolean;
  /** full match */
  matches: (input: DecisionInput, nsClass: NamespaceClass) => boolean;
}

export interface Decider {
  readonly config: GatewayConfig;
  evaluate(input: DecisionInput): DecisionOutcome;
  /** identity + purpose part of each rule's match, in order (for SelfSubjectRulesReview and explain) */
  readonly rules: readonly CompiledRule[];
  namespaceClass(input: Pick<DecisionInput, "request">): NamespaceClass;
}

/** Fields that make a rule apply to resource requests only. */
const RESOURCE_FIELDS = [
  "apiGroups",
  "resources",
  "namespaces",
  "names",
  "phi",
] as const satisfies readonly (keyof Match)[];

function compileRule(config: GatewayConfig, rule: Rule): CompiledRule {
  const m = rule.match;
  const whoChecks: ((id: Identity, purpose: string | undefined) => boolean)[] = [];
  const reqChecks: Check[] = [];

  if (m.identities !== undefined) {
    const sels = m.identities.map((name) => {
      const sel = Object.hasOwn(config.identities, name) ? config.identities[name] : undefined;
      // an unknown identity name matches nobody (the compiler refuses it; fail closed at runtime)
      return sel === undefined ? () => false : compileIdentitySelector(sel);
    });
    whoChecks.push((id) => sels.some((s) => s(id)));
  }
  if (m.purpose !== undefined) {
    const pm = m.purpose;
    if (pm.kind === "absent") whoChecks.push((_id, p) => p === undefined || p === "");
    else if (pm.kind === "present") whoChecks.push((_id, p) => p !== undefined && p !== "");
    else {
      const ids = new Set(pm.ids);
      whoChecks.push((_id, p) => p !== undefined && ids.has(p));
    }
  }

  const resourceOnly = RESOURCE_FIELDS.some((f) => m[f] !== undefined);
  if (resourceOnly) reqChecks.push((i) => i.request.isResourceRequest);
  if (m.nonResourceURLs !== undefined) {
    const t = compileNonResourceURLs(m.nonResourceURLs);
    reqChecks.push((i) => !i.request.isResourceRequest && t(i.request.path));
  }
  if (m.verbs !== undefined) {
    const verbs = new Set<string>(m.verbs);
    reqChecks.push((i) => verbs.has(i.request.verb));
  }
  if (m.apiGroups !== undefined) {
    const t = compileGlobs(m.apiGroups);
    reqChecks.push((i) => t(i.request.apiGroup));
  }
  if (m.resources !== undefined) {
    const t = compileResources(m.resources);
    reqChecks.push((i) => t(i.request.resource, i.request.subresource));
  }
  if (m.namespaces !== undefined) {
    const t = compileGlobs(m.namespaces);
    reqChecks.push((i) => i.request.namespace !== "" && t(i.request.namespace));
  }
  if (m.phi !== undefined) {
    const want = m.phi;
    reqChecks.push((_i, c) =>
      want ? c === "phi" || c === "all-namespaces" : c === "non-phi" || c === "cluster",
    );
  }
  if (m.names !== undefined) {
    const t = compileGlobs(m.names);
    reqChecks.push((i) => i.request.name !== "" && t(i.request.name));
  }
  if (m.body !== undefined) {
    const p = compilePredicate(m.body);
    // Fail closed when the object cannot be judged: a write of an object (create, update,
    // patch on the object itself, not a connect subresource) whose body is missing or is a
    // JSON Patch (an array of operations, RFC 6902) counts as matching a deny/approval rule
    // and as not matching an allow rule.
    const whenUnknown = rule.decision !== "allow";
    reqChecks.push((i) => (bodyUndecidable(i) ? whenUnknown : p(i.body)));
  }
  const who = (id: Identity, purpose: string | undefined) => whoChecks.every((c) => c(id, purpose));
  return {
    rule,
    who,
    matches: (input, c) => reqChecks.every((chk) => chk(input, c)) && who(input.identity, input.purpose),
  };
}

const OBJECT_WRITE_VERBS = new Set(["create", "update", "patch"]);

/** A body predicate cannot judge this call: an object write without an object-shaped body. */
export function bodyUndecidable(input: DecisionInput): boolean {
  const r = input.request;
  if (!r.isResourceRequest || r.subresource !== "" || !OBJECT_WRITE_VERBS.has(r.verb)) return false;
  return (
    input.body === undefined ||
    input.body === null ||
    typeof input.body !== "object" ||
    Array.isArray(input.body)
  );
}

function describeRequest(input: DecisionInput): string {
  const r = input.request;
  if (!r.isResourceRequest) return `${r.verb} ${r.path}`;
  const res = r.subresource === "" ? r.resource : `${r.resource}/${r.subresource}`;
  const group = r.apiGroup === "" ? "" : `.${r.apiGroup}`;
  const where = r.namespace === "" ? "" : ` in namespace ${r.namespace}`;
  return `${r.verb} ${res}${group}${r.name === "" ? "" : ` ${r.name}`}${where}`;
}

/**
 * A purpose the policy does not name counts as no purpose (fail closed: "purpose required"
 * rules are not satisfied by an arbitrary string). Policies that name no purposes accept any.
 */
function knownPurpose(config: GatewayConfig, input: DecisionInput): DecisionInput {
  if (input.purpose === undefined || recognisedPurpose(config, input.purpose) !== undefined) return input;
  const { purpose: _unknown, ...rest } = input;
  return rest;
}

function recognisedPurpose(config: GatewayConfig, p: string | undefined): string | undefined {
  if (p === undefined) return undefined;
  return Object.keys(config.purposes).length === 0 || Object.hasOwn(config.purposes, p) ? p : undefined;
}

/** Precompile a config into a fast decision function. */
export function compileDecider(config: GatewayConfig): Decider {
  const rules = config.rules.map((r) => compileRule(config, r));
  const classify = compileNamespaceClassifier(config);
  const decider: Decider = {
    config,
    rules,
    namespaceClass: (input) => classify(input.request),
    evaluate(raw) {
      const input = knownPurpose(config, raw);
      const nsClass = classify(input.request);
      const dryRunMatches: string[] = [];
      for (const c of rules) {
        if (!c.matches(input, nsClass)) continue;
        if (c.rule.enforcement === "dry-run") {
          dryRunMatches.push(c.rule.id);
          continue;
        }
        const r = c.rule;
        const out: DecisionOutcome = {
          decision: r.decision,
          effective: r.decision,
          enforcement: r.enforcement,
          ruleId: r.id,
          reason: r.reason,
          source: r.source,
          policyHash: config.policyHash,
          dryRunMatches,
          rule: r,
          namespaceClass: nsClass,
        };
        if (r.remediation !== undefined) out.remediation = r.remediation;
        if (r.approval !== undefined) out.approval = r.approval;
        if (r.recordSession !== undefined) out.recordSession = r.recordSession;
        return out;
      }
      return {
        decision: "deny",
        effective: "deny",
        enforcement: "enforce",
        ruleId: DEFAULT_DENY_RULE_ID,
        reason: `no rule of policy "${config.name}" allows ${describeRequest(input)} for ${input.identity.subject}`,
        remediation:
          "custos denies by default: add a rule that allows this request (check with `custos explain`), or send a purpose if the policy requires one",
        policyHash: config.policyHash,
        dryRunMatches,
        namespaceClass: nsClass,
      };
    },
  };
  return decider;
}

const CACHE_LIMIT = 8;
const cache = new Map<string, Decider>();

/** The decider for a config, compiled once per policyHash (small LRU). */
export function deciderFor(config: GatewayConfig): Decider {
  const hit = cache.get(config.policyHash);
  if (hit !== undefined && hit.config === config) return hit;
  const d = compileDecider(config);
  cache.delete(config.policyHash);
  cache.set(config.policyHash, d);
  while (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  return d;
}

/** Decide one call. First matching enforced rule decides; default deny. */
export function evaluate(config: GatewayConfig, input: DecisionInput): DecisionOutcome {
  return deciderFor(config).evaluate(input);
}

/** Whether the call would go through without approval. */
export function can(config: GatewayConfig, input: DecisionInput): boolean {
  return evaluate(config, input).effective === "allow";
}

export interface ResourceRule {
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
}
export interface NonResourceRule {
  verbs: string[];
  nonResourceURLs: string[];
}
export interface RulesReview {
  resourceRules: ResourceRule[];
  nonResourceRules: NonResourceRule[];
  /** true when the list cannot say everything (deny rules before allows, body predicates, glob names) */
  incomplete: boolean;
  evaluationError?: string;
}

/**
 * What an identity may do in a namespace, as a SelfSubjectRulesReview's status: the
 * enforced `allow` rules that match this identity and purpose and can apply in the
 * namespace. RBAC lists cannot express denials, so any earlier deny/approval rule that
 * applies to the caller makes the answer `incomplete`.
 */
export function rulesFor(
  config: GatewayConfig,
  who: { identity: Identity; purpose?: string; namespace: string },
): RulesReview {
  const decider = deciderFor(config);
  const classify = compileNamespaceClassifier(config);
  const nsClass =
    who.namespace === ""
      ? "cluster"
      : classify({ isResourceRequest: true, namespace: who.namespace, resource: "" });
  const review: RulesReview = { resourceRules: [], nonResourceRules: [], incomplete: false };
  let blockedBefore = false;
  for (const c of decider.rules) {
    const r = c.rule;
    const purpose = recognisedPurpose(config, who.purpose);
    if (r.enforcement === "dry-run" || !c.who(who.identity, purpose)) continue;
    const m = r.match;
    if (m.namespaces !== undefined && !(who.namespace !== "" && compileGlobs(m.namespaces)(who.namespace)))
      continue;
    if (m.phi !== undefined && m.phi !== (nsClass === "phi")) continue;
    if (r.decision !== "allow") {
      blockedBefore = true;
      continue;
    }
    if (blockedBefore || m.body !== undefined) review.incomplete = true;
    const verbs = m.verbs ?? ["*"];
    if (m.nonResourceURLs !== undefined) {
      review.nonResourceRules.push({ verbs: [...verbs], nonResourceURLs: [...m.nonResourceURLs] });
      continue;
    }
    const rr: ResourceRule = {
      verbs: [...verbs],
      apiGroups: m.apiGroups ?? ["*"],
      resources: m.resources ?? ["*"],
    };
    if (m.names !== undefined) {
      if (m.names.some((n) => /[*?[\]{}]/.test(n))) review.incomplete = true;
      rr.resourceNames = [...m.names];
    }
    review.resourceRules.push(rr);
    const resourceOnly = RESOURCE_FIELDS.some((f) => m[f] !== undefined);
    if (!resourceOnly) review.nonResourceRules.push({ verbs: [...verbs], nonResourceURLs: ["*"] });
  }
  return review;
}
