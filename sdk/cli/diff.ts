/**
 * The semantic difference between two compiled configs: every combination of identity x
 * purpose x verb x resource x namespace class that the two configs' matchers mention is
 * decided by both, and the combinations whose decision changes are reported; so are masks
 * that disappear or lose fields, and approvals that get weaker. Reason, description and
 * source-line edits change nothing here: text-only changes give an empty diff.
 *
 * Limits: request bodies are not enumerated (body predicates are evaluated on no body), and
 * resource names only as one sample name per resource.
 */
import { type DecisionOutcome, deciderFor } from "../../gateway/decision/index.ts";
import type { DecisionInput } from "../../gateway/ports.ts";
import { parseRequestInfo } from "../../gateway/requestinfo/index.ts";
import { canonicalJson } from "../lib/canonical.ts";
import { RESOURCES, type ResourceInfo } from "../kube/resources.ts";
import { type ApprovalRequirement, type GatewayConfig, type Mask, RESOURCE_VERBS } from "../schema/config.ts";
import { identityFor } from "./common.ts";

const CONNECT = new Set(["exec", "attach", "portforward"]);
const BASE_RESOURCES = [
  "pods",
  "pods/log",
  "pods/exec",
  "configmaps",
  "secrets",
  "namespaces",
  "nodes",
  "persistentvolumes",
  "deployments",
  "rolebindings",
  "clusterrolebindings",
];
const TABLE = RESOURCES as Record<string, ResourceInfo>;

export interface AccessChange {
  identity: string;
  purposes: string[];
  verbs: string[];
  resource: string;
  /** the object name, when the change is for objects a rule's `names` selects */
  name?: string;
  apiGroup: string;
  namespace: string;
  namespaceClass: string;
  before: Outcome;
  after: Outcome;
}
/** What the gateway does with a call: the decision, and for approvals what it takes. */
export interface Outcome {
  decision: string;
  rule: string;
  /** requireApproval: what the deciding rule asks for */
  approval?: ApprovalRequirement;
  /** sessions of an allowed exec/attach are recorded */
  recordSession?: boolean;
}

function outcomeOf(o: DecisionOutcome): Outcome {
  const out: Outcome = { decision: o.decision, rule: o.ruleId };
  if (o.decision === "requireApproval" && o.approval !== undefined) out.approval = o.approval;
  if (o.recordSession === true) out.recordSession = true;
  return out;
}

/**
 * Same effect on the call: the deciding rule's id and texts do not matter, what it asks for
 * does. A change to the same rule's approval or session recording is listed once, under
 * approvals (diffApprovals); another rule now deciding with other terms is an access change.
 */
function sameEffect(a: Outcome, b: Outcome): boolean {
  return (
    a.decision === b.decision &&
    (a.rule === b.rule ||
      (canonicalJson(a.approval ?? null) === canonicalJson(b.approval ?? null) &&
        a.recordSession === b.recordSession))
  );
}

export interface MaskChange {
  id: string;
  change: "removed" | "weakened" | "changed" | "added";
  details: string[];
}
export interface ApprovalChange {
  rule: string;
  details: string[];
}
/** A change in who a named identity is, or in which namespaces hold PHI. */
export interface ScopeChange {
  what: string;
  details: string[];
}
export interface PolicyDiff {
  before: { name: string; policyHash: string };
  after: { name: string; policyHash: string };
  access: AccessChange[];
  masks: MaskChange[];
  approvals: ApprovalChange[];
  /** identities whose selectors changed (every rule naming them now reaches other callers), PHI namespaces changed */
  scope: ScopeChange[];
  /** true when effective access, masks, approvals and scope are unchanged */
  empty: boolean;
}

function diffScope(before: GatewayConfig, after: GatewayConfig): ScopeChange[] {
  const out: ScopeChange[] = [];
  const list = (v: readonly string[] | undefined) => (v === undefined ? "(any)" : `[${v.join(", ")}]`);
  for (const name of Object.keys(before.identities).sort()) {
    const b = before.identities[name]!;
    const a = Object.hasOwn(after.identities, name) ? after.identities[name] : undefined;
    if (a === undefined) continue;
    const details: string[] = [];
    if (canonicalJson(b.subjects ?? null) !== canonicalJson(a.subjects ?? null))
      details.push(`subjects ${list(b.subjects)} -> ${list(a.subjects)}`);
    if (canonicalJson(b.groups ?? null) !== canonicalJson(a.groups ?? null))
      details.push(`groups ${list(b.groups)} -> ${list(a.groups)}`);
    const keys = [...new Set([...Object.keys(b.claims ?? {}), ...Object.keys(a.claims ?? {})])].sort();
    for (const k of keys) {
      const x = b.claims?.[k];
      const y = a.claims?.[k];
      if (canonicalJson(x ?? null) !== canonicalJson(y ?? null))
        details.push(`claim ${k} ${list(x)} -> ${list(y)}`);
    }
    if (details.length > 0) out.push({ what: `identity ${name}`, details });
  }
  // phi: true masks and rules follow the PHI namespaces; sample namespaces cannot show every one
  if (canonicalJson(before.phiNamespaces) !== canonicalJson(after.phiNamespaces))
    out.push({
      what: "PHI namespaces",
      details: [
        `${list(before.phiNamespaces)} -> ${list(after.phiNamespaces)}: every rule and mask with phi now applies to other namespaces`,
      ],
    });
  return out;
}

interface Target {
  resource: string;
  sub: string;
  group: string;
  namespaced: boolean;
}

function sample(glob: string): string {
  return glob.replace(/\*\*?/g, "sample").replace(/[?[\]{}()!]/g, "x");
}

function targets(configs: GatewayConfig[]): Target[] {
  const out = new Map<string, Target>();
  const add = (res: string, sub: string, group: string | undefined) => {
    const info = Object.hasOwn(TABLE, res) ? TABLE[res] : undefined;
    const g = info?.group ?? group;
    if (g === undefined || /[*?{]/.test(res) || /[*?{]/.test(sub)) return;
    out.set(`${g}|${res}|${sub}`, { resource: res, sub, group: g, namespaced: info?.namespaced ?? true });
  };
  const expand = (r: string, groups: readonly string[] | undefined) => {
    const slash = r.indexOf("/");
    const res = slash < 0 ? r : r.slice(0, slash);
    const sub = slash < 0 ? "" : r.slice(slash + 1);
    const literalGroups = (groups ?? []).filter((g) => !/[*?{]/.test(g));
    if (res === "*" && sub !== "" && sub !== "*") {
      for (const [name, info] of Object.entries(TABLE))
        if (info.subresources.includes(sub)) add(name, sub, undefined);
      return;
    }
    if (res === "*") return;
    if (sub === "*") {
      add(res, "", undefined);
      for (const s of TABLE[res]?.subresources ?? []) add(res, s, undefined);
      return;
    }
    if (literalGroups.length === 0) add(res, sub, undefined);
    for (const g of literalGroups) add(res, sub, g);
  };
  for (const r of BASE_RESOURCES) expand(r, undefined);
  for (const c of configs) {
    for (const rule of c.rules) for (const r of rule.match.resources ?? []) expand(r, rule.match.apiGroups);
    for (const m of c.masks) for (const r of m.match.resources ?? []) expand(r, m.match.apiGroups);
  }
  // code-unit order: the rows must not depend on the machine's locale
  const key = (t: Target) => `${t.group}|${t.resource}|${t.sub}`;
  return [...out.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function verbsFor(t: Target): readonly string[] {
  if (t.group === "" && t.resource === "pods" && CONNECT.has(t.sub)) return ["create"];
  if (t.sub === "log") return ["get"];
  if (t.sub !== "") return ["get", "create", "update", "patch", "delete"];
  return RESOURCE_VERBS;
}

function isNamed(t: Target, verb: string): boolean {
  return !["list", "watch", "deletecollection"].includes(verb) && !(verb === "create" && t.sub === "");
}

function urlFor(
  t: Target,
  verb: string,
  namespace: string | undefined,
  name = "sample",
): { method: string; url: string } {
  const prefix = t.group === "" ? "/api/v1" : `/apis/${t.group}/${t.group === "autoscaling" ? "v2" : "v1"}`;
  const named = isNamed(t, verb);
  let url = prefix;
  if (t.resource === "namespaces") {
    url += named ? `/namespaces/${namespace ?? "sample"}` : "/namespaces";
  } else {
    if (t.namespaced && namespace !== undefined) url += `/namespaces/${namespace}`;
    url += `/${t.resource}`;
    if (named) url += `/${name}`;
  }
  if (t.sub !== "") url += `/${t.sub}`;
  const method = {
    get: "GET",
    list: "GET",
    watch: "GET",
    create: "POST",
    update: "PUT",
    patch: "PATCH",
    delete: "DELETE",
    deletecollection: "DELETE",
  }[verb]!;
  return { method, url: verb === "watch" ? `${url}?watch=true` : url };
}

function namespacesFor(configs: GatewayConfig[]): string[] {
  const set = new Set<string>();
  for (const c of configs) {
    for (const g of c.phiNamespaces) set.add(sample(g));
    for (const r of c.rules) for (const n of r.match.namespaces ?? []) set.add(sample(n));
  }
  set.add("default");
  return [...set].sort();
}

/** "sample" and one name each rule's `names` globs match (a rule on "db-*" is decided too). */
function namesFor(configs: GatewayConfig[]): string[] {
  const set = new Set<string>(["sample"]);
  for (const c of configs) for (const r of c.rules) for (const n of r.match.names ?? []) set.add(sample(n));
  return [...set].sort();
}

function maskKey(m: Mask): string {
  const { source: _s, description: _d, ...rest } = m;
  return canonicalJson({ ...rest, fields: m.fields.map(({ label: _l, ...f }) => f) });
}

function diffMasks(before: GatewayConfig, after: GatewayConfig): MaskChange[] {
  const out: MaskChange[] = [];
  const afterById = new Map(after.masks.map((m) => [m.id, m]));
  const beforeIds = new Set(before.masks.map((m) => m.id));
  for (const m of before.masks) {
    const n = afterById.get(m.id);
    if (n === undefined) {
      out.push({ id: m.id, change: "removed", details: [`was ${m.source.file}:${m.source.line}`] });
      continue;
    }
    if (maskKey(m) === maskKey(n)) continue;
    const details: string[] = [];
    const nf = new Set(
      n.fields.map((f) => canonicalJson({ p: f.segments, s: f.strategy, b: f.base64 ?? false })),
    );
    for (const f of m.fields)
      if (!nf.has(canonicalJson({ p: f.segments, s: f.strategy, b: f.base64 ?? false })))
        details.push(`field ${f.path} no longer masked as before`);
    for (const d of m.detectors) if (!n.detectors.includes(d)) details.push(`detector ${d} no longer runs`);
    if (canonicalJson(m.match) !== canonicalJson(n.match))
      details.push(`applies to ${canonicalJson(n.match)} (was ${canonicalJson(m.match)})`);
    if (details.length > 0) out.push({ id: m.id, change: "weakened", details });
  }
  for (const n of after.masks)
    if (!beforeIds.has(n.id))
      out.push({ id: n.id, change: "added", details: [`${n.source.file}:${n.source.line}`] });
  const afterDetectors = new Map(after.detectors.map((d) => [d.id, d]));
  for (const d of before.detectors) {
    const n = afterDetectors.get(d.id);
    if (d.scope === "everywhere" && (n === undefined || n.scope !== "everywhere")) {
      out.push({
        id: `detector:${d.id}`,
        change: "removed",
        details: [n === undefined ? "detector removed" : "no longer runs everywhere"],
      });
    } else if (
      n !== undefined &&
      (n.pattern !== d.pattern ||
        n.flags !== d.flags ||
        canonicalJson(n.strategy) !== canonicalJson(d.strategy) ||
        (n.validate ?? "none") !== (d.validate ?? "none") ||
        n.contextPattern !== d.contextPattern)
    ) {
      out.push({
        id: `detector:${d.id}`,
        change: "changed",
        details: [
          "pattern, flags, strategy, validation or context pattern changed: review what it still finds",
        ],
      });
    }
  }
  return out;
}

function diffApprovals(before: GatewayConfig, after: GatewayConfig): ApprovalChange[] {
  const out: ApprovalChange[] = [];
  const afterRules = new Map(after.rules.map((r) => [r.id, r]));
  for (const r of before.rules) {
    const a = r.approval;
    const n = afterRules.get(r.id)?.approval;
    if (r.recordSession === true && afterRules.get(r.id)?.recordSession !== true)
      out.push({ rule: r.id, details: ["exec/attach sessions are no longer recorded"] });
    if (a === undefined || n === undefined) continue;
    const d: string[] = [];
    if (n.count < a.count) d.push(`count ${a.count} -> ${n.count}`);
    if (n.ttlSeconds > a.ttlSeconds) d.push(`grant ttl ${a.ttlSeconds}s -> ${n.ttlSeconds}s`);
    if (a.use === "once" && n.use === "ttl") d.push("single-use grants became reusable");
    if (!a.allowUnsigned && n.allowUnsigned) d.push("unsigned reviews now count");
    if (a.group !== n.group) d.push(`group ${a.group} -> ${n.group}`);
    if (d.length > 0) out.push({ rule: r.id, details: d });
  }
  for (const [name, g] of Object.entries(after.approvalGroups)) {
    const old = Object.hasOwn(before.approvalGroups, name) ? before.approvalGroups[name] : undefined;
    const oldIds = new Set(old?.reviewers.map((r) => r.githubId) ?? []);
    const added = g.reviewers.filter((r) => !oldIds.has(r.githubId));
    const keysChanged = g.reviewers.filter((r) => {
      const o = old?.reviewers.find((x) => x.githubId === r.githubId);
      return o !== undefined && r.keys.some((k) => !o.keys.includes(k));
    });
    if (old !== undefined && added.length > 0)
      out.push({
        rule: `group ${name}`,
        details: added.map((r) => `reviewer added: ${r.login} (${r.githubId})`),
      });
    if (keysChanged.length > 0)
      out.push({
        rule: `group ${name}`,
        details: keysChanged.map((r) => `new key registered for ${r.login} (${r.githubId})`),
      });
  }
  return out;
}

export function diffConfigs(before: GatewayConfig, after: GatewayConfig): PolicyDiff {
  const configs = [before, after];
  const db = deciderFor(before);
  const da = deciderFor(after);
  const identityNames = [
    ...new Set([...Object.keys(after.identities), ...Object.keys(before.identities)]),
  ].sort();
  const purposes: (string | undefined)[] = [
    undefined,
    ...[...new Set([...Object.keys(before.purposes), ...Object.keys(after.purposes)])].sort(),
  ];
  const namespaces = namespacesFor(configs);
  const names = namesFor(configs);
  const raw: AccessChange[] = [];
  const callers = [
    ...identityNames.map((n) => ({
      label: n,
      id: identityFor(Object.hasOwn(after.identities, n) ? after : before, { as: n }).identity,
    })),
    {
      label: "(anyone else)",
      id: { subject: "someone-else", groups: [], claims: {}, source: "token-file" as const },
    },
  ];
  const decide = (input: DecisionInput) => {
    const b = outcomeOf(db.evaluate(input));
    const ar = da.evaluate(input);
    return { b, a: outcomeOf(ar), namespaceClass: ar.namespaceClass };
  };
  for (const caller of callers) {
    for (const purpose of purposes) {
      for (const t of targets(configs)) {
        for (const verb of verbsFor(t)) {
          const nsList: (string | undefined)[] =
            t.resource === "namespaces" && t.group === ""
              ? [...namespaces, undefined]
              : !t.namespaced
                ? [undefined]
                : [...namespaces, ...(["list", "watch"].includes(verb) ? [undefined] : [])];
          for (const [ns, name] of nsList.flatMap((n) =>
            (isNamed(t, verb) ? names : ["sample"]).map((x) => [n, x] as const),
          )) {
            const { method, url } = urlFor(t, verb, ns, name);
            const input: DecisionInput = { identity: caller.id, request: parseRequestInfo(method, url) };
            if (purpose !== undefined) input.purpose = purpose;
            const { b, a, namespaceClass } = decide(input);
            if (sameEffect(b, a)) continue;
            raw.push({
              ...(name === "sample" ? {} : { name }),
              identity: caller.label,
              purposes: [purpose ?? "(none)"],
              verbs: [input.request.verb],
              resource: t.sub === "" ? t.resource : `${t.resource}/${t.sub}`,
              apiGroup: t.group,
              namespace: ns ?? (t.namespaced ? "(all namespaces)" : "(cluster)"),
              namespaceClass,
              before: b,
              after: a,
            });
          }
        }
      }
    }
    // non-resource URLs named by either config
    const urls = new Set<string>();
    for (const c of configs)
      for (const r of c.rules)
        for (const u of r.match.nonResourceURLs ?? [])
          urls.add(u.endsWith("*") ? `${u.slice(0, -1)}sample` : sample(u));
    for (const purpose of purposes) {
      for (const u of [...urls].sort()) {
        for (const method of ["GET", "POST"]) {
          const input: DecisionInput = {
            identity: caller.id,
            request: parseRequestInfo(method, u.startsWith("/") ? u : `/${u}`),
          };
          if (purpose !== undefined) input.purpose = purpose;
          const { b, a } = decide(input);
          if (sameEffect(b, a)) continue;
          raw.push({
            identity: caller.label,
            purposes: [purpose ?? "(none)"],
            verbs: [input.request.verb],
            resource: input.request.path,
            apiGroup: "",
            namespace: "(non-resource)",
            namespaceClass: "cluster",
            before: b,
            after: a,
          });
        }
      }
    }
  }
  const access = merge(merge(raw, "verbs"), "purposes");
  const masks = diffMasks(before, after);
  const approvals = diffApprovals(before, after);
  const scope = diffScope(before, after);
  return {
    before: { name: before.name, policyHash: before.policyHash },
    after: { name: after.name, policyHash: after.policyHash },
    access,
    masks,
    approvals,
    scope,
    empty:
      access.length === 0 &&
      masks.every((m) => m.change === "added") &&
      approvals.length === 0 &&
      scope.length === 0,
  };
}

/** Collapse rows that differ only in `field` into one row listing its values. */
function merge(rows: AccessChange[], field: "verbs" | "purposes"): AccessChange[] {
  const out = new Map<string, AccessChange>();
  for (const r of rows) {
    const { [field]: _omit, ...rest } = r;
    const key = canonicalJson(rest);
    const prior = out.get(key);
    if (prior === undefined) out.set(key, { ...r, [field]: [...r[field]] });
    else for (const v of r[field]) if (!prior[field].includes(v)) prior[field].push(v);
  }
  return [...out.values()];
}

function cell(s: string): string {
  return s.replaceAll("|", "\\|");
}

export function formatDiffMarkdown(d: PolicyDiff, opts: { maxRows?: number } = {}): string {
  const max = opts.maxRows ?? 200;
  const lines: string[] = [];
  const short = (h: string) => h.replace(/^sha256:/, "").slice(0, 12);
  lines.push(
    `## custos policy diff: \`${d.before.name}\` ${short(d.before.policyHash)} → \`${d.after.name}\` ${short(d.after.policyHash)}`,
    "",
  );
  if (d.empty) {
    lines.push(
      "No change in effective access: every identity, verb, resource and namespace class is decided as before, and no mask or approval got weaker.",
    );
    const added = d.masks.filter((m) => m.change === "added");
    if (added.length > 0) lines.push("", `Masks added: ${added.map((m) => `\`${m.id}\``).join(", ")}.`);
    return `${lines.join("\n")}\n`;
  }
  if (d.access.length > 0) {
    const widened = d.access.filter(widens).length;
    lines.push(`### Effective access: ${d.access.length} change(s), ${widened} widening`, "");
    lines.push(
      "| identity | purpose | verbs | resource | namespace | before | after |",
      "| --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const c of d.access.slice(0, max)) {
      const res = `${c.apiGroup === "" ? c.resource : `${c.resource}.${c.apiGroup}`}${c.name === undefined ? "" : ` ${c.name}`}`;
      const after = widens(c) ? `**${effect(c.after)}**` : effect(c.after);
      lines.push(
        `| ${cell(c.identity)} | ${cell(c.purposes.join(", "))} | ${c.verbs.join(", ")} | ${cell(res)} | ${cell(c.namespace)} (${c.namespaceClass}) | ${cell(effect(c.before))} (\`${c.before.rule}\`) | ${cell(after)} (\`${c.after.rule}\`) |`,
      );
    }
    if (d.access.length > max) lines.push("", `… and ${d.access.length - max} more (use --json for all).`);
    lines.push("");
  }
  const masks = d.masks.filter((m) => m.change !== "added");
  if (masks.length > 0) {
    lines.push("### Masks and detectors removed, weakened or changed", "");
    for (const m of masks) lines.push(`- \`${m.id}\` ${m.change}: ${m.details.join("; ")}`);
    lines.push("");
  }
  if (d.scope.length > 0) {
    lines.push("### Who the rules reach", "");
    for (const c of d.scope) lines.push(`- ${cell(c.what)}: ${c.details.map(cell).join("; ")}`);
    lines.push("");
  }
  if (d.approvals.length > 0) {
    lines.push("### Approvals", "");
    for (const a of d.approvals) lines.push(`- \`${a.rule}\`: ${a.details.join("; ")}`);
    lines.push("");
  }
  return `${lines.join("\n")}\n`;
}

function effect(o: Outcome): string {
  const ap = o.approval;
  const extra = [
    ap === undefined
      ? undefined
      : `${ap.count} of ${ap.group}, grant ttl ${ap.ttlSeconds}s, ${ap.use}${ap.allowUnsigned ? ", unsigned reviews count" : ""}`,
    o.recordSession === true ? "session recorded" : undefined,
  ].filter((x) => x !== undefined);
  return extra.length === 0 ? o.decision : `${o.decision}: ${extra.join("; ")}`;
}

/**
 * More access after: a higher-ranked decision; or the same approval decision asking for less
 * (fewer reviewers, another group, a longer or reusable grant, unsigned reviews); or sessions
 * no longer recorded.
 */
function widens(c: AccessChange): boolean {
  const b = c.before;
  const a = c.after;
  if (rank(a.decision) !== rank(b.decision)) return rank(a.decision) > rank(b.decision);
  if (b.recordSession === true && a.recordSession !== true) return true;
  const x = b.approval;
  const y = a.approval;
  if (x === undefined || y === undefined) return false;
  return (
    y.count < x.count ||
    y.group !== x.group ||
    y.ttlSeconds > x.ttlSeconds ||
    (x.use === "once" && y.use === "ttl") ||
    (!x.allowUnsigned && y.allowUnsigned)
  );
}

/** deny < requireApproval < allow: a higher rank after means more access. */
function rank(decision: string): number {
  return decision === "allow" ? 2 : decision === "requireApproval" ? 1 : 0;
}
