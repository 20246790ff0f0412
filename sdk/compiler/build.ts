/**
 * From builder data (PolicyDef) to the GatewayConfig. Each kind of definition has one
 * handler in HANDLERS; problems are collected, not thrown.
 */
import { canonicalJson, sha256Hex } from "../lib/canonical.ts";
import type {
  ApprovalGroup,
  ApprovalRequirement,
  Detector,
  FieldMask,
  GatewayConfig,
  Mask,
  Match,
  NamedIdentity,
  Purpose,
  PurposeMatch,
  Rule,
  SourceLocation,
} from "../schema/config.ts";
import { GatewayConfig as GatewayConfigSchema, SCHEMA_VERSION } from "../schema/config.ts";
import type {
  ApprovalGroupDef,
  ApprovalSpec,
  Definition,
  DetectorDef,
  Duration,
  FieldDef,
  IdentityDef,
  MaskDef,
  PolicyDef,
  PurposeDef,
  RuleDef,
} from "../builders/types.ts";
import { Problems } from "./problems.ts";

export interface BuildOptions {
  /** rewrite builder locations (absolute files) into the form stored in the config */
  relocate?: (loc: SourceLocation) => SourceLocation;
}

interface Ctx {
  problems: Problems;
  loc: (l: SourceLocation) => SourceLocation;
  identities: Map<string, { def: IdentityDef; out: NamedIdentity }>;
  purposes: Map<string, { def: PurposeDef; out: Purpose }>;
  groups: Map<string, { def: ApprovalGroupDef; out: ApprovalGroup }>;
  detectors: Map<string, { def: DetectorDef; out: Detector }>;
  rules: Rule[];
  masks: Mask[];
  ruleIds: Set<string>;
  maskIds: Set<string>;
}

const ID = /^[a-z0-9][a-z0-9._-]*$/;

function sameDef(a: object, b: object): boolean {
  const strip = (d: object) => {
    const { source: _s, ...rest } = d as { source?: unknown };
    return canonicalJson(rest);
  };
  return strip(a) === strip(b);
}

/** Seconds in a Duration, or undefined when it is not one. */
export function durationSeconds(d: Duration): number | undefined {
  if (typeof d === "number") return Number.isInteger(d) && d > 0 ? d : undefined;
  const m = /^([1-9][0-9]*)(s|m|h|d)$/.exec(d);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
}

function registerIdentity(ctx: Ctx, def: IdentityDef, path: string): void {
  const prior = ctx.identities.get(def.name);
  if (prior !== undefined) {
    if (!sameDef(prior.def, def)) {
      ctx.problems.add(
        "DEFINITION_CONFLICT",
        path,
        `identity "${def.name}" is defined twice, differently; give one of them another name`,
        ctx.loc(def.source),
      );
    }
    return;
  }
  const out: NamedIdentity = { source: ctx.loc(def.source) };
  if (def.subjects !== undefined) out.subjects = [...def.subjects];
  if (def.groups !== undefined) out.groups = [...def.groups];
  if (def.claims !== undefined)
    out.claims = Object.fromEntries(Object.entries(def.claims).map(([k, v]) => [k, [...v]]));
  if (def.description !== undefined) out.description = def.description;
  ctx.identities.set(def.name, { def, out });
}

function registerPurpose(ctx: Ctx, def: PurposeDef, path: string): void {
  const prior = ctx.purposes.get(def.name);
  if (prior !== undefined) {
    if (!sameDef(prior.def, def)) {
      ctx.problems.add(
        "DEFINITION_CONFLICT",
        path,
        `purpose "${def.name}" is defined twice, differently`,
        ctx.loc(def.source),
      );
    }
    return;
  }
  ctx.purposes.set(def.name, { def, out: { description: def.description, source: ctx.loc(def.source) } });
}

const SSH_ED25519 = /^ssh-ed25519 (AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}=?)(?: .*)?$/;

function registerGroup(ctx: Ctx, def: ApprovalGroupDef, path: string): void {
  const prior = ctx.groups.get(def.name);
  if (prior !== undefined) {
    if (!sameDef(prior.def, def)) {
      ctx.problems.add(
        "DEFINITION_CONFLICT",
        path,
        `approval group "${def.name}" is defined twice, differently`,
        ctx.loc(def.source),
      );
    }
    return;
  }
  def.reviewers.forEach((r, i) => {
    r.keys.forEach((k, j) => {
      const m = SSH_ED25519.exec(k.trim());
      if (!m || Buffer.from(m[1]!, "base64").length !== 51) {
        ctx.problems.add(
          "INVALID_KEY",
          `${path}.reviewers[${i}].keys[${j}]`,
          `reviewer ${r.login} (${r.githubId}): expected an OpenSSH ed25519 public key ("ssh-ed25519 AAAAC3Nz... comment"), found ${JSON.stringify(k.slice(0, 30))}; paste the .pub file that \`custos keygen\` printed`,
          ctx.loc(def.source),
        );
      }
    });
  });
  const out: ApprovalGroup = {
    reviewers: def.reviewers.map((r) => ({
      githubId: r.githubId,
      login: r.login,
      keys: r.keys.map((k) => k.trim()),
    })),
    source: ctx.loc(def.source),
  };
  if (def.description !== undefined) out.description = def.description;
  ctx.groups.set(def.name, { def, out });
}

function registerDetector(ctx: Ctx, def: DetectorDef, path: string): void {
  const prior = ctx.detectors.get(def.id);
  if (prior !== undefined) {
    if (!sameDef(prior.def, def)) {
      ctx.problems.add(
        "DUPLICATE_ID",
        path,
        `detector id "${def.id}" is used by two different detectors`,
        ctx.loc(def.source),
      );
    }
    return;
  }
  if (!ID.test(def.id))
    ctx.problems.add("SCHEMA_INVALID", path, `detector id "${def.id}" must match ${ID}`, ctx.loc(def.source));
  try {
    const re = new RegExp(def.pattern, `g${def.flags}`);
    if (re.test("")) {
      ctx.problems.add(
        "INVALID_PATTERN",
        path,
        `detector "${def.id}" matches the empty string; anchor it or require at least one character`,
        ctx.loc(def.source),
      );
    }
  } catch (e) {
    ctx.problems.add(
      "INVALID_PATTERN",
      path,
      `detector "${def.id}": ${(e as Error).message}`,
      ctx.loc(def.source),
    );
  }
  if (def.contextPattern !== undefined) {
    try {
      if (new RegExp(def.contextPattern, `g${def.flags}`).test(""))
        ctx.problems.add(
          "INVALID_PATTERN",
          path,
          `detector "${def.id}": its contextPattern matches the empty string; require at least one character`,
          ctx.loc(def.source),
        );
    } catch (e) {
      ctx.problems.add(
        "INVALID_PATTERN",
        path,
        `detector "${def.id}" contextPattern: ${(e as Error).message}`,
        ctx.loc(def.source),
      );
    }
  }
  const out: Detector = {
    id: def.id,
    category: def.category,
    pattern: def.pattern,
    flags: def.flags,
    strategy: def.strategy,
    label: def.label,
    scope: def.scope,
    source: ctx.loc(def.source),
  };
  if (def.validate !== undefined) out.validate = def.validate;
  if (def.contextPattern !== undefined) out.contextPattern = def.contextPattern;
  ctx.detectors.set(def.id, { def, out });
}

function identityName(ctx: Ctx, ref: IdentityDef | string, path: string, loc: SourceLocation): string {
  if (typeof ref === "string") {
    if (!ctx.identities.has(ref)) {
      ctx.problems.add(
        "UNKNOWN_IDENTITY",
        path,
        `no identity named "${ref}"; declare it with identities({ ${ref}: {...} }) and pass it to policy({ identities })`,
        loc,
      );
    }
    return ref;
  }
  registerIdentity(ctx, ref, path);
  return ref.name;
}

function purposeMatch(
  ctx: Ctx,
  spec: RuleDef["spec"]["purpose"],
  path: string,
  loc: SourceLocation,
): PurposeMatch | undefined {
  if (spec === undefined) return undefined;
  if (spec === "required") return { kind: "present" };
  if (spec === "absent") return { kind: "absent" };
  const refs = Array.isArray(spec)
    ? (spec as readonly (PurposeDef | string)[])
    : [spec as PurposeDef | string];
  const ids = refs.map((r, i) => {
    if (typeof r === "string") {
      if (!ctx.purposes.has(r)) {
        ctx.problems.add(
          "UNKNOWN_PURPOSE",
          `${path}[${i}]`,
          `no purpose named "${r}"; declare it with purposes({ ${r}: "..." })`,
          loc,
        );
      }
      return r;
    }
    registerPurpose(ctx, r, `${path}[${i}]`);
    return r.name;
  });
  if (ids.length === 0) {
    ctx.problems.add(
      "SCHEMA_INVALID",
      path,
      `purpose: expected "required", "absent" or at least one purpose, found []`,
      loc,
    );
    return undefined;
  }
  return { kind: "anyOf", ids: [...new Set(ids)] };
}

function approvalRequirement(
  ctx: Ctx,
  a: ApprovalSpec,
  path: string,
  loc: SourceLocation,
): ApprovalRequirement {
  let group: string;
  if (typeof a.group === "string") {
    group = a.group;
    if (!ctx.groups.has(group)) {
      ctx.problems.add(
        "UNKNOWN_APPROVAL_GROUP",
        `${path}.group`,
        `no approval group named "${group}"; declare it with approvalGroup("${group}", {...})`,
        loc,
      );
    }
  } else {
    registerGroup(ctx, a.group, `${path}.group`);
    group = a.group.name;
  }
  const duration = (d: Duration, field: string): number => {
    const s = durationSeconds(d);
    if (s === undefined) {
      ctx.problems.add(
        "INVALID_DURATION",
        `${path}.${field}`,
        `expected a duration like 30s, 15m, 8h, 7d or whole seconds > 0, found ${JSON.stringify(d)}`,
        loc,
      );
      return 1;
    }
    return s;
  };
  return {
    group,
    count: a.count ?? 1,
    ttlSeconds: duration(a.ttl ?? "1h", "ttl"),
    use: a.use ?? "once",
    wait: a.wait === undefined || a.wait === false ? null : { timeoutSeconds: duration(a.wait, "wait") },
    allowUnsigned: a.allowUnsigned ?? false,
  };
}

/**
 * `apiGroups` name groups alone: the core group (pods, services, configmaps, ...) is "", so
 * "core" or "v1" never matches it, and a version-qualified group ("apps/v1") matches nothing.
 */
function checkApiGroups(ctx: Ctx, groups: readonly string[], path: string, loc: SourceLocation): void {
  const core = 'write apiGroups: [""] or omit apiGroups for core resources';
  groups.forEach((g, i) => {
    const group = g.includes("/") ? g.slice(0, g.indexOf("/")) : undefined;
    let fix: string | undefined;
    if (g === "core" || /^v\d+(?:(?:alpha|beta)\d+)?$/.test(g))
      fix = `"${g}" is not an API group and never matches the core group, which is ""; ${core}`;
    else if (group !== undefined)
      fix = `"${g}" is a group with its version and matches no request; ${group === "" || group === "core" ? core : `write the group alone: "${group}"`}`;
    if (fix !== undefined) ctx.problems.add("INVALID_API_GROUP", `${path}.apiGroups[${i}]`, fix, loc);
  });
}

function buildRule(def: RuleDef, ctx: Ctx, path: string): void {
  const loc = ctx.loc(def.source);
  const s = def.spec;
  if (ctx.ruleIds.has(def.id))
    ctx.problems.add("DUPLICATE_ID", path, `rule id "${def.id}" is used twice; rule ids must be unique`, loc);
  ctx.ruleIds.add(def.id);
  const match: Match = {};
  if (s.verbs !== undefined) match.verbs = [...s.verbs];
  if (s.apiGroups !== undefined) {
    checkApiGroups(ctx, s.apiGroups, path, loc);
    match.apiGroups = [...s.apiGroups];
  }
  if (s.resources !== undefined) match.resources = [...s.resources];
  if (s.namespaces !== undefined) match.namespaces = [...s.namespaces];
  if (s.phi !== undefined) match.phi = s.phi;
  if (s.names !== undefined) match.names = [...s.names];
  if (s.nonResourceURLs !== undefined) match.nonResourceURLs = [...s.nonResourceURLs];
  if (s.who !== undefined)
    match.identities = [...new Set(s.who.map((w, i) => identityName(ctx, w, `${path}.who[${i}]`, loc)))];
  const pm = purposeMatch(ctx, s.purpose, `${path}.purpose`, loc);
  if (pm !== undefined) match.purpose = pm;
  if (s.body !== undefined) match.body = s.body;
  const rule: Rule = {
    id: def.id,
    decision: def.decision,
    reason: s.reason,
    enforcement: s.enforcement ?? "enforce",
    match,
    source: loc,
  };
  if (s.description !== undefined) rule.description = s.description;
  if (s.remediation !== undefined) rule.remediation = s.remediation;
  if (s.framework !== undefined) rule.framework = { name: s.framework.name, section: s.framework.section };
  if (s.recordSession !== undefined) rule.recordSession = s.recordSession;
  if (def.decision === "requireApproval") {
    if (s.approval === undefined) {
      ctx.problems.add(
        "MISSING_APPROVAL",
        path,
        `rule "${def.id}" requires approval but names no approval: add approval: { group, count, ttl }`,
        loc,
      );
    } else rule.approval = approvalRequirement(ctx, s.approval, `${path}.approval`, loc);
  } else if (s.approval !== undefined) {
    ctx.problems.add(
      "UNEXPECTED_APPROVAL",
      `${path}.approval`,
      `rule "${def.id}" is "${def.decision}" but carries an approval; use requireApproval()`,
      loc,
    );
  }
  ctx.rules.push(rule);
}

function buildField(def: FieldDef, ctx: Ctx, _path: string): FieldMask {
  const out: FieldMask = {
    path: def.path,
    segments: [...def.segments],
    strategy: def.strategy,
    label: def.label ?? def.path,
  };
  if (def.base64 !== undefined) out.base64 = def.base64;
  void ctx;
  return out;
}

function buildMask(def: MaskDef, ctx: Ctx, path: string): void {
  const loc = ctx.loc(def.source);
  const s = def.spec;
  if (ctx.maskIds.has(def.id))
    ctx.problems.add("DUPLICATE_ID", path, `mask id "${def.id}" is used twice; mask ids must be unique`, loc);
  ctx.maskIds.add(def.id);
  const detectorIds = (s.detectors ?? []).map((d, i) => {
    if (typeof d === "string") {
      if (!ctx.detectors.has(d)) {
        ctx.problems.add(
          "UNKNOWN_DETECTOR",
          `${path}.detectors[${i}]`,
          `no detector with id "${d}"; add it to policy({ detectors }) or pass the detector itself`,
          loc,
        );
      }
      return d;
    }
    registerDetector(ctx, d, `${path}.detectors[${i}]`);
    return d.id;
  });
  const mask: Mask = {
    id: def.id,
    match: {},
    fields: (s.fields ?? []).map((f, i) => buildField(f, ctx, `${path}.fields[${i}]`)),
    detectors: [...new Set(detectorIds)],
    source: loc,
  };
  if (s.description !== undefined) mask.description = s.description;
  if (s.framework !== undefined) mask.framework = { name: s.framework.name, section: s.framework.section };
  if (s.apiGroups !== undefined) {
    checkApiGroups(ctx, s.apiGroups, path, loc);
    mask.match.apiGroups = [...s.apiGroups];
  }
  if (s.resources !== undefined) mask.match.resources = [...s.resources];
  if (s.namespaces !== undefined) mask.match.namespaces = [...s.namespaces];
  if (s.phi !== undefined) mask.match.phi = s.phi;
  if (s.labels !== undefined) mask.match.labels = { ...s.labels };
  ctx.masks.push(mask);
}

/** One handler per kind of definition. */
const HANDLERS: {
  [K in Definition["kind"]]: (def: Extract<Definition, { kind: K }>, ctx: Ctx, path: string) => void;
} = {
  identity: (def, ctx, path) => registerIdentity(ctx, def, path),
  purpose: (def, ctx, path) => registerPurpose(ctx, def, path),
  approvalGroup: (def, ctx, path) => registerGroup(ctx, def, path),
  detector: (def, ctx, path) => registerDetector(ctx, def, path),
  rule: buildRule,
  mask: buildMask,
  field: (def, ctx, path) => {
    ctx.problems.add(
      "NOT_A_POLICY",
      path,
      `a field() belongs inside mask({ fields: [...] })`,
      ctx.loc(def.source),
    );
  },
  policy: (def, ctx, path) => {
    ctx.problems.add(
      "NOT_A_POLICY",
      path,
      `a policy() cannot be nested; use extendPolicy()`,
      ctx.loc(def.source),
    );
  },
};

function handle(
  def: unknown,
  ctx: Ctx,
  path: string,
  expected: Definition["kind"],
  policyLoc: SourceLocation,
): void {
  const kind = (def as { kind?: unknown } | null)?.kind;
  if (kind !== expected || typeof kind !== "string" || !Object.hasOwn(HANDLERS, kind)) {
    ctx.problems.add(
      "NOT_A_POLICY",
      path,
      `expected a ${expected} (made with the custos builders), found ${def === null ? "null" : typeof kind === "string" ? `a ${kind}` : typeof def}`,
      policyLoc,
    );
    return;
  }
  (HANDLERS[kind as Definition["kind"]] as (d: unknown, c: Ctx, p: string) => void)(def, ctx, path);
}

export interface BuildResult {
  config?: GatewayConfig;
  problems: Problems;
}

/** Build and validate the config from a policy definition. `config` is absent when there are errors. */
export function buildConfig(
  def: PolicyDef,
  options: BuildOptions = {},
  problems = new Problems(),
): BuildResult {
  const loc = options.relocate ?? ((l: SourceLocation) => l);
  const ctx: Ctx = {
    problems,
    loc,
    identities: new Map(),
    purposes: new Map(),
    groups: new Map(),
    detectors: new Map(),
    rules: [],
    masks: [],
    ruleIds: new Set(),
    maskIds: new Set(),
  };
  const policyLoc = loc(def.source);
  def.identities.forEach((d, i) => {
    handle(d, ctx, `identities[${i}]`, "identity", policyLoc);
  });
  def.purposes.forEach((d, i) => {
    handle(d, ctx, `purposes[${i}]`, "purpose", policyLoc);
  });
  def.approvalGroups.forEach((d, i) => {
    handle(d, ctx, `approvalGroups[${i}]`, "approvalGroup", policyLoc);
  });
  def.detectors.forEach((d, i) => {
    handle(d, ctx, `detectors[${i}]`, "detector", policyLoc);
  });
  def.rules.forEach((d, i) => {
    handle(d, ctx, `rules[${i}]`, "rule", policyLoc);
  });
  def.masks.forEach((d, i) => {
    handle(d, ctx, `masks[${i}]`, "mask", policyLoc);
  });

  const sorted = <T>(m: Map<string, { out: T }>) =>
    Object.fromEntries(
      [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, v.out]),
    );
  const body = {
    schemaVersion: SCHEMA_VERSION,
    name: def.name,
    defaultDecision: "deny" as const,
    phiNamespaces: [...def.phiNamespaces],
    identities: sorted(ctx.identities),
    purposes: sorted(ctx.purposes),
    approvalGroups: sorted(ctx.groups),
    rules: ctx.rules,
    masks: ctx.masks,
    detectors: [...ctx.detectors.values()].map((d) => d.out),
  };
  const candidate = { ...body, policyHash: policyHashOf(body) };
  const parsed = GatewayConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const p = issue.path
        .map((s) => (typeof s === "number" ? `[${s}]` : `.${String(s)}`))
        .join("")
        .replace(/^\./, "");
      problems.add("SCHEMA_INVALID", p, `${issue.message}`, locationFor(candidate, issue.path) ?? policyLoc);
    }
  }
  if (problems.hasErrors) return { problems };
  return { config: candidate as GatewayConfig, problems };
}

function locationFor(config: unknown, path: readonly PropertyKey[]): SourceLocation | undefined {
  let cur: unknown = config;
  let found: SourceLocation | undefined;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") break;
    cur = (cur as Record<PropertyKey, unknown>)[seg as string];
    const src = (cur as { source?: SourceLocation } | undefined)?.source;
    if (src !== undefined && typeof src === "object") found = src;
  }
  return found;
}

/** "sha256:" + sha256 of the canonical JSON of the config without policyHash. */
export function policyHashOf(config: object): string {
  const { policyHash: _omit, ...rest } = config as { policyHash?: string };
  return `sha256:${sha256Hex(canonicalJson(rest))}`;
}

/** The config file's bytes: keys sorted at every depth, two-space indent, final newline. */
export function serializeConfig(config: GatewayConfig): string {
  return `${JSON.stringify(JSON.parse(canonicalJson(config)), null, 2)}\n`;
}
