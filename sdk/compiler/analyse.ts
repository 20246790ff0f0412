/**
 * Static analysis of a compiled config: shadowed and never-matching rules, allow/deny
 * overlaps, approvals that can never be satisfied, PHI namespaces readable without masks.
 * (Mask paths are checked against kubernetes-types in ./maskpaths.ts.)
 *
 * The set algebra is conservative in the direction of fewer false alarms: "covers" is only
 * claimed when certain; "may overlap" assumes overlap for two globs, and treats different
 * named identities as different callers.
 */
import { compileGlobs, compileResources } from "../lib/match.ts";
import { canonicalJson } from "../lib/canonical.ts";
import { type GatewayConfig, type Match, RESOURCE_VERBS, type Rule } from "../schema/config.ts";
import { resourceInfo } from "../kube/resources.ts";
import type { Problems } from "./problems.ts";

const GLOB = /[*?[\]{}()!+@]/;
const RESOURCE_FIELDS = ["apiGroups", "resources", "namespaces", "names", "phi"] as const;
const READ_VERBS = ["get", "list", "watch"] as const;
const CONNECT_SUBRESOURCES = new Set(["pods/exec", "pods/attach", "pods/portforward"]);
const WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"] as const;
const CHANGE = ["create", "update", "patch"] as const;
/**
 * What writing a subresource amounts to on its resource: `verbs`, the verbs it is called with
 * that change something; `actsAs`, the resource's write verbs a rule on the resource is taken
 * to be about when it should cover the subresource too (a delete-only rule is not about status
 * or finalizers, but an eviction deletes the pod).
 */
const SUBRESOURCE_WRITES: Record<
  string,
  { verbs: readonly string[]; actsAs: readonly string[]; what?: string }
> = {
  ephemeralcontainers: { verbs: ["update", "patch"], actsAs: CHANGE, what: "kubectl debug" },
  eviction: { verbs: ["create"], actsAs: WRITE_VERBS, what: "deletes the pod" },
  exec: { verbs: ["create"], actsAs: CHANGE },
  attach: { verbs: ["create"], actsAs: CHANGE },
  portforward: { verbs: ["create"], actsAs: CHANGE },
  proxy: { verbs: WRITE_VERBS, actsAs: CHANGE },
  status: { verbs: ["update", "patch"], actsAs: CHANGE },
  scale: { verbs: ["update", "patch"], actsAs: CHANGE },
  resize: { verbs: ["update", "patch"], actsAs: CHANGE },
  binding: { verbs: ["create"], actsAs: CHANGE },
  finalize: { verbs: ["update"], actsAs: CHANGE },
  token: { verbs: ["create"], actsAs: CHANGE },
};
/** resources whose reads carry patient data in the template's threat model */
const PHI_BEARING = ["configmaps", "secrets", "pods", "pods/log"] as const;

type Scope = "resource" | "nonresource" | "both";
function scope(m: Match): Scope {
  if (m.nonResourceURLs !== undefined) return "nonresource";
  return RESOURCE_FIELDS.some((f) => m[f] !== undefined) ? "resource" : "both";
}

function isLiteral(p: string): boolean {
  return !GLOB.test(p);
}

/** Does glob list `a` match every value that list `b` matches? (`undefined` = everything.) */
function globsCover(
  a: readonly string[] | undefined,
  b: readonly string[] | undefined,
  starIsAll: boolean,
): boolean {
  if (a === undefined) return true;
  if (starIsAll && a.includes("*")) return true;
  if (b === undefined) return false;
  const test = compileGlobs(a);
  return b.every((bp) => a.includes(bp) || (isLiteral(bp) && test(bp)));
}

function globsMayOverlap(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  const ta = compileGlobs(a);
  const tb = compileGlobs(b);
  return a.some((ap) =>
    b.some(
      (bp) =>
        ap === bp ||
        (!isLiteral(ap) && !isLiteral(bp)) ||
        (isLiteral(bp) && ta(bp)) ||
        (isLiteral(ap) && tb(ap)),
    ),
  );
}

function splitRes(r: string): [string, string] {
  const i = r.indexOf("/");
  return i < 0 ? [r, ""] : [r.slice(0, i), r.slice(i + 1)];
}

function resourcesCover(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || a.includes("*")) return true;
  if (b === undefined) return false;
  const test = compileResources(a);
  return b.every((r) => a.includes(r) || (isLiteral(r) && test(...splitRes(r))));
}

function resourcesMayOverlap(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined || a.includes("*") || b.includes("*")) return true;
  const ta = compileResources(a);
  const tb = compileResources(b);
  return a.some((ap) =>
    b.some(
      (bp) =>
        ap === bp ||
        (!isLiteral(ap) && !isLiteral(bp)) ||
        (isLiteral(bp) && ta(...splitRes(bp))) ||
        (isLiteral(ap) && tb(...splitRes(ap))),
    ),
  );
}

function setCovers<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  if (a === undefined) return true;
  if (b === undefined) return false;
  return b.every((x) => a.includes(x));
}
function setsMayOverlap<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  return a.some((x) => b.includes(x));
}

function nonResourceCover(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined) return true;
  if (b === undefined) return false;
  return b.every((bp) =>
    a.some((ap) => ap === bp || ap === "*" || (ap.endsWith("*") && bp.startsWith(ap.slice(0, -1)))),
  );
}

function purposeCovers(a: Match["purpose"], b: Match["purpose"]): boolean {
  if (a === undefined) return true;
  if (b === undefined) return false;
  if (a.kind === "absent") return b.kind === "absent";
  if (a.kind === "present") return b.kind !== "absent";
  return b.kind === "anyOf" && b.ids.every((i) => a.ids.includes(i));
}
function purposeMayOverlap(a: Match["purpose"], b: Match["purpose"]): boolean {
  if (a === undefined || b === undefined) return true;
  if (a.kind === "absent" || b.kind === "absent") return a.kind === b.kind;
  if (a.kind === "anyOf" && b.kind === "anyOf") return a.ids.some((i) => b.ids.includes(i));
  return true;
}

/** Every request `b` matches, `a` matches too. */
export function matchCovers(a: Match, b: Match): boolean {
  const sa = scope(a);
  const sb = scope(b);
  if (sa !== "both" && sa !== sb) return false;
  return (
    setCovers(a.verbs, b.verbs) &&
    globsCover(a.apiGroups, b.apiGroups, true) &&
    resourcesCover(a.resources, b.resources) &&
    globsCover(a.namespaces, b.namespaces, false) &&
    (a.phi === undefined || a.phi === b.phi) &&
    globsCover(a.names, b.names, false) &&
    nonResourceCover(a.nonResourceURLs, b.nonResourceURLs) &&
    setCovers(a.identities, b.identities) &&
    purposeCovers(a.purpose, b.purpose) &&
    (a.body === undefined || (b.body !== undefined && canonicalJson(a.body) === canonicalJson(b.body)))
  );
}

/**
 * Every request rule `b` matches, rule `a` matches too, as the decision engine judges them: a
 * body predicate meeting an object write with no judgeable body (none, or a JSON Patch) counts as
 * matching a deny/approval and as not matching an allow (gateway/decision bodyUndecidable), so an
 * allow with a body predicate does not cover a deny/approval with the same one on such writes.
 */
function ruleCovers(a: Rule, b: Rule): boolean {
  if (!matchCovers(a.match, b.match)) return false;
  if (a.match.body === undefined || a.decision !== "allow" || b.decision === "allow") return true;
  return !mayWriteObject(b.match);
}

/** May `m` match a create, update or patch of an object itself (not a subresource)? */
function mayWriteObject(m: Match): boolean {
  if (scope(m) === "nonresource") return false;
  if (m.verbs !== undefined && !m.verbs.some((v) => (CHANGE as readonly string[]).includes(v))) return false;
  return m.resources === undefined || m.resources.some((r) => !r.includes("/"));
}

/** Some request may match both. */
export function matchesMayOverlap(a: Match, b: Match, phiNamespaces: readonly string[]): boolean {
  const sa = scope(a);
  const sb = scope(b);
  if (sa !== "both" && sb !== "both" && sa !== sb) return false;
  if (a.phi !== undefined && b.phi !== undefined && a.phi !== b.phi) return false;
  for (const [m, other] of [
    [a, b],
    [b, a],
  ] as const) {
    if (
      m.phi !== undefined &&
      other.namespaces !== undefined &&
      !namespacesMayBePhi(other.namespaces, phiNamespaces, m.phi)
    )
      return false;
  }
  return (
    setsMayOverlap(a.verbs, b.verbs) &&
    globsMayOverlap(a.apiGroups, b.apiGroups) &&
    resourcesMayOverlap(a.resources, b.resources) &&
    globsMayOverlap(a.namespaces, b.namespaces) &&
    globsMayOverlap(a.names, b.names) &&
    setsMayOverlap(a.identities, b.identities) &&
    purposeMayOverlap(a.purpose, b.purpose)
  );
}

/** Could any of these namespace globs be (phi=true) / not be (phi=false) a PHI namespace? */
function namespacesMayBePhi(
  namespaces: readonly string[],
  phiNamespaces: readonly string[],
  phi: boolean,
): boolean {
  const isPhi = compileGlobs(phiNamespaces);
  return namespaces.some((n) => !isLiteral(n) || isPhi(n) === phi);
}

function neverMatches(m: Match, phiNamespaces: readonly string[]): string | undefined {
  for (const f of [
    "verbs",
    "apiGroups",
    "resources",
    "namespaces",
    "names",
    "nonResourceURLs",
    "identities",
  ] as const) {
    if (m[f] !== undefined && m[f].length === 0) return `${f} is an empty list`;
  }
  if (m.nonResourceURLs !== undefined && RESOURCE_FIELDS.some((f) => m[f] !== undefined)) {
    return "it names both non-resource URLs and resource fields; a request is one or the other";
  }
  if (
    m.phi !== undefined &&
    m.namespaces !== undefined &&
    !namespacesMayBePhi(m.namespaces, phiNamespaces, m.phi)
  ) {
    return `phi is ${m.phi} but every namespace listed is ${m.phi ? "outside" : "inside"} the PHI namespaces`;
  }
  if (m.resources !== undefined && m.verbs !== undefined) {
    if (m.resources.every((r) => CONNECT_SUBRESOURCES.has(r)) && !m.verbs.includes("create")) {
      return "exec, attach and portforward are always the verb create";
    }
    const resourceVerbs = new Set<string>(RESOURCE_VERBS);
    if (m.verbs.every((v) => !resourceVerbs.has(v)))
      return `verbs ${m.verbs.join(", ")} exist only on non-resource URLs`;
  }
  if (m.names !== undefined && m.verbs?.every((v) => v === "create" || v === "deletecollection") === true) {
    return "create and deletecollection requests carry no object name";
  }
  const allClusterScoped =
    m.resources?.every((r) => {
      const [res, sub] = splitRes(r);
      const info = resourceInfo(res);
      return info !== undefined && !info.namespaced && res !== "namespaces" && sub !== "*";
    }) === true;
  if (m.namespaces !== undefined && allClusterScoped) {
    return "every resource listed is cluster-scoped, so no request has a namespace";
  }
  if (m.phi === true && allClusterScoped) {
    return "phi is true but every resource listed is cluster-scoped, never in a PHI namespace";
  }
  return undefined;
}

export function analyse(config: GatewayConfig, problems: Problems): void {
  const rules = config.rules;
  // identities that match everyone
  for (const [name, id] of Object.entries(config.identities)) {
    if (id.subjects === undefined && id.groups === undefined && id.claims === undefined) {
      problems.add(
        "IDENTITY_MATCHES_EVERYONE",
        `identities.${name}`,
        `identity "${name}" has no subjects, groups or claims, so every caller matches it; say who it is`,
        id.source,
      );
    }
  }

  rules.forEach((r, i) => {
    const path = `rules[${i}]`;
    const never = neverMatches(r.match, config.phiNamespaces);
    if (never !== undefined) {
      problems.add("RULE_NEVER_MATCHES", path, `rule "${r.id}" can never match: ${never}`, r.source);
      return;
    }
    const shadow = rules.slice(0, i).find((e) => e.enforcement === "enforce" && ruleCovers(e, r));
    if (shadow !== undefined) {
      problems.add(
        "RULE_SHADOWED",
        path,
        `rule "${r.id}" is never reached: earlier rule "${shadow.id}" (${shadow.source.file}:${shadow.source.line}) matches every request it matches; move it above or narrow the earlier rule`,
        r.source,
      );
      return;
    }
    if (r.decision !== "allow" && r.enforcement === "enforce") {
      const bypass = rules
        .slice(0, i)
        .find(
          (e) =>
            e.enforcement === "enforce" &&
            e.decision === "allow" &&
            matchesMayOverlap(e.match, r.match, config.phiNamespaces),
        );
      if (bypass !== undefined) {
        problems.add(
          "ALLOW_DENY_OVERLAP",
          path,
          `rule "${r.id}" (${r.decision}) overlaps the earlier allow rule "${bypass.id}" (${bypass.source.file}:${bypass.source.line}): requests matching both are allowed; put "${r.id}" first or make the rules disjoint`,
          r.source,
        );
      }
    }
  });

  // approvals
  const usedGroups = new Map<string, Rule[]>();
  for (const r of rules) {
    if (r.approval === undefined) continue;
    const list = usedGroups.get(r.approval.group) ?? [];
    list.push(r);
    usedGroups.set(r.approval.group, list);
  }
  rules.forEach((r, i) => {
    const a = r.approval;
    if (a === undefined) return;
    const group = Object.hasOwn(config.approvalGroups, a.group) ? config.approvalGroups[a.group] : undefined;
    if (group === undefined) return; // reported by the builder
    const eligible = a.allowUnsigned
      ? group.reviewers.length
      : group.reviewers.filter((rv) => rv.keys.length > 0).length;
    if (a.count > eligible) {
      problems.add(
        "APPROVAL_UNSATISFIABLE",
        `rules[${i}].approval`,
        `rule "${r.id}" needs ${a.count} approvals from group "${a.group}", which has only ${eligible} reviewer(s) able to sign; lower count or add reviewers with keys`,
        r.source,
      );
    }
  });
  for (const [name, users] of usedGroups) {
    const group = Object.hasOwn(config.approvalGroups, name) ? config.approvalGroups[name] : undefined;
    if (group === undefined || users.every((u) => u.approval?.allowUnsigned)) continue;
    group.reviewers.forEach((rv, j) => {
      if (rv.keys.length === 0) {
        problems.add(
          "REVIEWER_WITHOUT_KEYS",
          `approvalGroups.${name}.reviewers[${j}]`,
          `reviewer ${rv.login} (${rv.githubId}) has no registered key, so their approvals never count; add their ssh-ed25519 public key`,
          group.source,
        );
      }
    });
  }

  checkPhiReads(config, problems);
  checkSubresources(config, problems);
}

/**
 * A deny or approval rule on a resource's writes does not cover its subresources (`pods` is
 * not `pods/ephemeralcontainers`, `pods/eviction`, `pods/exec`, `deployments/scale`, ...): warn
 * when an allow rule lets the same callers write one of them and no earlier rule closes it.
 */
function checkSubresources(config: GatewayConfig, problems: Problems): void {
  const rules = config.rules;
  rules.forEach((r, i) => {
    const m = r.match;
    if (r.decision === "allow" || r.enforcement !== "enforce") return;
    if (m.resources === undefined || m.resources.includes("*") || m.nonResourceURLs !== undefined) return;
    const ruleWrites = (m.verbs ?? WRITE_VERBS).filter((v) => (WRITE_VERBS as readonly string[]).includes(v));
    if (ruleWrites.length === 0) return;
    const covered = compileResources(m.resources);
    const apiGroupsOk = m.apiGroups === undefined ? () => true : compileGlobs(m.apiGroups);
    for (const res of m.resources) {
      if (res.includes("/") || !isLiteral(res)) continue;
      const info = resourceInfo(res);
      if (info === undefined || !apiGroupsOk(info.group)) continue;
      const gaps: { sub: string; allow: Rule; what?: string }[] = [];
      for (const sub of info.subresources) {
        const w = SUBRESOURCE_WRITES[sub];
        if (
          w === undefined ||
          covered(res, sub) ||
          !w.actsAs.some((v) => (ruleWrites as readonly string[]).includes(v))
        )
          continue;
        const probeDeny: Match = { ...m, apiGroups: [info.group], resources: [`${res}/${sub}`] };
        delete probeDeny.verbs;
        const allow = rules.find((a, j) => {
          if (a.decision !== "allow" || a.enforcement !== "enforce" || a.match.nonResourceURLs !== undefined)
            return false;
          const am = a.match;
          const verbs = (am.verbs ?? w.verbs).filter((v) => w.verbs.includes(v));
          if (verbs.length === 0) return false;
          if (am.resources !== undefined && !compileResources(am.resources)(res, sub)) return false;
          if (am.apiGroups !== undefined && !compileGlobs(am.apiGroups)(info.group)) return false;
          const probeAllow: Match = {
            ...am,
            verbs: verbs as Match["verbs"],
            apiGroups: [info.group],
            resources: [`${res}/${sub}`],
          };
          if (!matchesMayOverlap(probeDeny, probeAllow, config.phiNamespaces)) return false;
          // an earlier deny/approval that already takes every such request
          return !rules
            .slice(0, j)
            .some(
              (e) =>
                e.enforcement === "enforce" && e.decision !== "allow" && matchCovers(e.match, probeAllow),
            );
        });
        if (allow !== undefined) gaps.push({ sub, allow, ...(w.what ? { what: w.what } : {}) });
      }
      if (gaps.length === 0) continue;
      const listed = gaps
        .map(
          (g) =>
            `${res}/${g.sub}${g.what ? ` (${g.what})` : ""} by "${g.allow.id}" (${g.allow.source.file}:${g.allow.source.line})`,
        )
        .join(", ");
      const names = gaps.map((g) => `"${res}/${g.sub}"`).join(", ");
      problems.add(
        "SUBRESOURCE_NOT_COVERED",
        `rules[${i}]`,
        `rule "${r.id}" (${r.decision}) names ${res} with write verbs, but not its subresources, which allow rules let the same callers write: ${listed}; add ${names} (or "${res}/*") to "${r.id}"'s resources, or narrow those allow rules`,
        r.source,
      );
    }
  });
}

function checkPhiReads(config: GatewayConfig, problems: Problems): void {
  const isPhi = compileGlobs(config.phiNamespaces);
  if (config.phiNamespaces.length === 0) return;
  config.rules.forEach((r, i) => {
    if (r.decision !== "allow" || r.enforcement !== "enforce") return;
    const m = r.match;
    const verbs = (m.verbs ?? READ_VERBS).filter((v) => (READ_VERBS as readonly string[]).includes(v));
    if (verbs.length === 0 || m.phi === false || m.nonResourceURLs !== undefined) return;
    if (m.namespaces !== undefined && !m.namespaces.some((n) => !isLiteral(n) || isPhi(n))) return;
    if (m.apiGroups !== undefined && !compileGlobs(m.apiGroups)("")) return;
    const resTest = m.resources === undefined ? () => true : compileResources(m.resources);
    for (const res of PHI_BEARING) {
      if (!resTest(...splitRes(res))) continue;
      const probe: Match = { ...m, verbs: [...verbs], resources: [res], phi: true };
      delete probe.namespaces;
      const blocked = config.rules
        .slice(0, i)
        .some((e) => e.enforcement === "enforce" && e.decision !== "allow" && matchCovers(e.match, probe));
      if (blocked) continue;
      const masked = config.masks.some((mk) => {
        const mm = mk.match;
        if (mk.fields.length === 0 && mk.detectors.length === 0) return false;
        if (mm.labels !== undefined || mm.phi === false) return false;
        if (mm.apiGroups !== undefined && !compileGlobs(mm.apiGroups)("")) return false;
        if (mm.resources !== undefined && !compileResources(mm.resources)(...splitRes(res))) return false;
        if (mm.namespaces !== undefined && !globsCover(mm.namespaces, config.phiNamespaces, false))
          return false;
        return true;
      });
      if (!masked) {
        problems.add(
          "PHI_READ_UNMASKED",
          `rules[${i}]`,
          `rule "${r.id}" allows reading ${res} in PHI namespaces, but no mask covers ${res} there; add mask({ resources: ["${res}"], phi: true, ... })`,
          r.source,
        );
      }
    }
  });
}
