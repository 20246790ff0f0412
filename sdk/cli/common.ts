/**
 * Shared by `custos explain`, `custos policy test` and `custos policy diff`: reading a
 * compiled config, turning "get pods -n phi-a" or "GET /api/v1/..." into a request,
 * standing in for a named identity, and listing the masks that apply to a request.
 *
 * The sdk's CLI commands are composition roots (like bin/): they may use the gateway's pure
 * request-info and decision stages, so that what they print is what the gateway does.
 */
import { readFileSync } from "node:fs";
import { type DecisionOutcome, evaluate } from "../../gateway/decision/index.ts";
import type { DecisionInput, Identity, RequestInfo } from "../../gateway/ports.ts";
import { compileMaskTarget } from "../../gateway/masking/compile.ts";
import { parseRequestInfo } from "../../gateway/requestinfo/index.ts";
import { RESOURCES, type ResourceInfo } from "../kube/resources.ts";
import { compileGlobs, compileIdentitySelector, compileNamespaceClassifier } from "../lib/match.ts";
import { GatewayConfig, type Json, type Mask } from "../schema/config.ts";

/** A CLI input problem: exit code 2, one line on stderr. */
export class UsageError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "UsageError";
    this.code = code;
    this.data = data;
  }
}

export function readConfig(file: string): GatewayConfig {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch {
    throw new UsageError(
      "CONFIG_NOT_FOUND",
      `expected a compiled config at ${file}, found nothing; run \`custos compile <policy.ts> --out ${file}\``,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new UsageError(
      "CONFIG_INVALID",
      `${file} is not JSON (${(e as Error).message}); recompile it with \`custos compile\``,
    );
  }
  const parsed = GatewayConfig.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      "CONFIG_INVALID",
      `${file} is not a custos config: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}; recompile it with \`custos compile\``,
    );
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------
// requests

const ALIASES: Record<string, string> = {
  po: "pods",
  cm: "configmaps",
  svc: "services",
  ep: "endpoints",
  ev: "events",
  ns: "namespaces",
  no: "nodes",
  pv: "persistentvolumes",
  pvc: "persistentvolumeclaims",
  sa: "serviceaccounts",
  rc: "replicationcontrollers",
  deploy: "deployments",
  sts: "statefulsets",
  ds: "daemonsets",
  rs: "replicasets",
  cj: "cronjobs",
  hpa: "horizontalpodautoscalers",
  ing: "ingresses",
  netpol: "networkpolicies",
  pdb: "poddisruptionbudgets",
  sc: "storageclasses",
  crd: "customresourcedefinitions",
  crds: "customresourcedefinitions",
};

const VERSIONS: Record<string, string> = { autoscaling: "v2" };

/** "pods", "pod", "po", "deployments.apps" -> the plural resource and its info (unknown: core-less custom). */
export function resolveResource(word: string): {
  resource: string;
  info: ResourceInfo | undefined;
  group?: string;
} {
  const lower = word.toLowerCase();
  const dot = lower.indexOf(".");
  const base = dot < 0 ? lower : lower.slice(0, dot);
  const group = dot < 0 ? undefined : lower.slice(dot + 1);
  const table = RESOURCES as Record<string, ResourceInfo>;
  let resource = ALIASES[base] ?? base;
  if (!Object.hasOwn(table, resource)) {
    const byKind = Object.entries(table).find(([, i]) => i.kind.toLowerCase() === resource);
    if (byKind) resource = byKind[0];
    else if (Object.hasOwn(table, `${resource}s`)) resource = `${resource}s`;
    else if (Object.hasOwn(table, `${resource}es`)) resource = `${resource}es`;
  }
  const info = Object.hasOwn(table, resource) ? table[resource] : undefined;
  return group === undefined ? { resource, info } : { resource, info, group };
}

function resourceUrl(
  word: string,
  namespace: string | undefined,
  name: string | undefined,
  sub?: string,
): string {
  const { resource, info, group: explicit } = resolveResource(word);
  const group = explicit ?? info?.group;
  if (group === undefined) {
    throw new UsageError(
      "UNKNOWN_RESOURCE",
      `unknown resource "${word}"; name it as <plural>.<group>, e.g. widgets.example.com`,
    );
  }
  const prefix = group === "" ? "/api/v1" : `/apis/${group}/${VERSIONS[group] ?? "v1"}`;
  const namespaced = info?.namespaced ?? true;
  let url = prefix;
  if (namespaced && namespace !== undefined && resource !== "namespaces") url += `/namespaces/${namespace}`;
  url += `/${resource}`;
  if (name !== undefined) url += `/${name}`;
  if (sub !== undefined) url += `/${sub}`;
  return url;
}

/**
 * A request from a path ("GET /api/v1/namespaces/a/pods") or kubectl-like words
 * ("get pods -n a", "get pod web-0 -n a", "logs web-0 -n a", "exec web-0 -n a",
 * "delete namespace phi-a", "create rolebinding -n a", "get pods -A", "get pods -w").
 */
export function parseRequestWords(words: readonly string[]): {
  method: string;
  url: string;
  info: RequestInfo;
} {
  const args = words.flatMap((w) => w.split(/\s+/)).filter((w) => w !== "");
  const first = args[0];
  if (first === undefined)
    throw new UsageError(
      "NO_REQUEST",
      `expected a request like "get pods -n default" or "GET /api/v1/pods", found nothing`,
    );
  if (/^[A-Z]+$/.test(first) && args[1]?.startsWith("/")) {
    return { method: first, url: args[1], info: parseRequestInfo(first, args[1]) };
  }
  let namespace: string | undefined = "default";
  let watch = false;
  let all = false;
  const pos: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-n" || a === "--namespace") namespace = args[++i];
    else if (a.startsWith("--namespace=")) namespace = a.slice(12);
    else if (a === "-A" || a === "--all-namespaces") namespace = undefined;
    else if (a === "-w" || a === "--watch") watch = true;
    else if (a === "--all") all = true;
    else if (a === "--") break;
    else if (a.startsWith("-")) {
      if (
        !a.includes("=") &&
        (a === "-c" || a === "--container" || a === "-o" || a === "-l" || a === "--selector")
      )
        i++;
    } else pos.push(a);
  }
  const [verb, ...rest] = pos.map((p) => p.toLowerCase());
  let target = rest;
  // "get pod/web-0"
  if (target[0]?.includes("/")) target = [...target[0].split("/"), ...target.slice(1)];
  const ns = namespace;
  const named = (res: string, name: string | undefined, sub?: string) => resourceUrl(res, ns, name, sub);
  let method: string;
  let url: string;
  switch (verb) {
    case "get":
    case "describe":
    case "list":
    case "watch":
      method = "GET";
      url = named(target[0] ?? "", target[1]) + (watch || verb === "watch" ? "?watch=true" : "");
      break;
    case "logs":
    case "log":
      method = "GET";
      url = named("pods", target[0] === "pod" || target[0] === "pods" ? target[1] : target[0], "log");
      break;
    case "exec":
    case "attach":
    case "port-forward":
    case "portforward": {
      method = "POST";
      const pod = target[0] === "pod" || target[0] === "pods" ? target[1] : target[0];
      url = named("pods", pod, verb === "port-forward" ? "portforward" : verb);
      break;
    }
    case "delete":
      method = "DELETE";
      url = named(target[0] ?? "", all ? undefined : target[1]);
      break;
    case "create":
      method = "POST";
      url = named(target[0] ?? "", undefined);
      break;
    case "apply":
    case "patch":
    case "label":
    case "annotate":
      method = "PATCH";
      url = named(target[0] ?? "", target[1]);
      break;
    case "replace":
    case "edit":
    case "update":
      method = "PUT";
      url = named(target[0] ?? "", target[1]);
      break;
    case "scale":
      method = "PATCH";
      url = named(target[0] ?? "", target[1], "scale");
      break;
    default:
      throw new UsageError(
        "UNKNOWN_VERB",
        `unknown request verb "${verb ?? ""}"; use get, list, watch, describe, logs, exec, attach, port-forward, create, apply, patch, replace, scale, delete, or METHOD /path`,
      );
  }
  if (target[0] === undefined && verb !== "logs" && verb !== "log") {
    throw new UsageError("NO_RESOURCE", `"${verb}" needs a resource, e.g. "${verb} pods -n default"`);
  }
  return { method, url, info: parseRequestInfo(method, url) };
}

// ---------------------------------------------------------------------------------------
// identities

export interface IdentityArgs {
  as: string;
  groups?: readonly string[];
  claims?: Readonly<Record<string, string>>;
  /** `as` is the caller's subject as written, never a named identity's stand-in */
  literal?: boolean;
}

/**
 * One string a glob matches: the first alternative of `{a,b}` and `@(a|b)`, the first
 * character of a class, "sample" for a star, "x" for `?`. Undefined when the result does not
 * match (negations and the like): the caller then has no stand-in to offer.
 */
function sampleGlob(glob: string): string | undefined {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    const next = glob[i + 1];
    if (c === "\\" && next !== undefined) {
      out += next;
      i++;
    } else if ("@+?*".includes(c) && next === "(") {
      const end = glob.indexOf(")", i);
      if (end < 0) return undefined;
      out += sampleGlob(glob.slice(i + 2, end).split("|")[0] ?? "") ?? "";
      i = end;
    } else if (c === "*") {
      out += "sample";
      while (glob[i + 1] === "*") i++;
    } else if (c === "?") out += "x";
    else if (c === "{") {
      const end = glob.indexOf("}", i);
      if (end < 0) return undefined;
      out += sampleGlob(glob.slice(i + 1, end).split(",")[0] ?? "") ?? "";
      i = end;
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      const first = glob[i + 1];
      if (end < 0 || first === "!" || first === "^") return undefined;
      out += first;
      i = end;
    } else out += c;
  }
  return compileGlobs([glob])(out) ? out : undefined;
}

function sampleOf(globs: readonly string[] | undefined, fallback: string): string | undefined {
  if (globs === undefined) return fallback;
  const lit = globs.find((g) => !/[*?[\]{}()!+@\\]/.test(g));
  if (lit !== undefined) return lit;
  for (const g of globs) {
    const s = sampleGlob(g);
    if (s !== undefined) return s;
  }
  return undefined;
}

const norm = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "")
    .replace(/s$/, "");

/**
 * Which named identity `--as` means: its exact name, else the identity that selects a group of
 * that name (`--as ci-agents`), else a name equal up to case, dashes and a plural s
 * (`--as ci-agent` for `ciAgents`). Undefined: `--as` is a raw subject.
 */
export function resolveNamedIdentity(config: GatewayConfig, as: string): string | undefined {
  if (Object.hasOwn(config.identities, as)) return as;
  const names = Object.keys(config.identities).sort();
  return (
    names.find((n) => config.identities[n]?.groups?.includes(as)) ?? names.find((n) => norm(n) === norm(as))
  );
}

/** A caller: a named identity of the config (a stand-in that matches it), or a raw subject. */
export function identityFor(
  config: GatewayConfig,
  args: IdentityArgs,
): { identity: Identity; named?: string } {
  const name = args.literal === true ? undefined : resolveNamedIdentity(config, args.as);
  const named = name === undefined ? undefined : config.identities[name];
  if (named !== undefined && name !== undefined) {
    const impossible = () =>
      new UsageError(
        "NO_STAND_IN",
        `cannot make up a caller that identity "${name}" matches (its globs have no simple sample); pass the caller itself: --as <subject> with --group / --claim k=v`,
      );
    const subject = sampleOf(named.subjects, `sample:${name}`);
    if (subject === undefined) throw impossible();
    const claims: Record<string, string> = {};
    for (const [k, v] of Object.entries(named.claims ?? {})) {
      const c = sampleOf(v, "sample");
      if (c === undefined) throw impossible();
      claims[k] = c;
    }
    const groups = named.groups?.slice(0, 1) ?? [];
    // the stand-in itself must be taken for the identity; --group / --claim then add to it
    if (!compileIdentitySelector(named)({ subject, groups, claims })) throw impossible();
    const identity: Identity = {
      subject,
      groups: [...groups, ...(args.groups ?? [])],
      claims: { ...claims, ...args.claims },
      source: "token-file",
    };
    return { identity, named: name };
  }
  return {
    identity: {
      subject: args.as,
      groups: [...(args.groups ?? [])],
      claims: { ...args.claims },
      source: "token-file",
    },
  };
}

// ---------------------------------------------------------------------------------------
// masks

export interface AppliedMask {
  id: string;
  /** the mask only applies to objects carrying these labels */
  whenLabels?: Record<string, string>;
  fields: string[];
  detectors: string[];
  source: Mask["source"];
}

/** The masks whose match selects this request's responses (labels: conditional). */
export function masksFor(config: GatewayConfig, request: RequestInfo): AppliedMask[] {
  if (!request.isResourceRequest) return [];
  const classify = compileNamespaceClassifier(config);
  const cls = classify(request);
  const out: AppliedMask[] = [];
  for (const m of config.masks) {
    const mm = m.match;
    // the masking stage's own test: a mask on "pods" also covers pods/status, pods/scale, ...
    if (!compileMaskTarget(mm)(request.apiGroup, request.resource, request.subresource)) continue;
    // an all-namespaces list carries items from every namespace: namespace and phi masks apply per item
    if (
      mm.namespaces !== undefined &&
      cls !== "all-namespaces" &&
      !(request.namespace !== "" && compileGlobs(mm.namespaces)(request.namespace))
    )
      continue;
    if (mm.phi === true && cls !== "phi" && cls !== "all-namespaces") continue;
    if (mm.phi === false && cls === "phi") continue;
    const a: AppliedMask = {
      id: m.id,
      fields: m.fields.map((f) => f.path),
      detectors: [...m.detectors],
      source: m.source,
    };
    if (mm.labels !== undefined) a.whenLabels = { ...mm.labels };
    out.push(a);
  }
  return out;
}

/** Detectors that run on every response regardless of masks. */
export function everywhereDetectors(config: GatewayConfig): string[] {
  return config.detectors.filter((d) => d.scope === "everywhere").map((d) => d.id);
}

export interface Explanation {
  request: { method: string; url: string; info: RequestInfo; namespaceClass: string };
  identity: Identity;
  namedIdentity?: string;
  purpose?: string;
  decision: DecisionOutcome;
  masks: AppliedMask[];
  everywhereDetectors: string[];
}

export function explainRequest(
  config: GatewayConfig,
  req: { method: string; url: string; info: RequestInfo },
  who: IdentityArgs,
  purpose: string | undefined,
  body?: Json,
): Explanation {
  if (purpose !== undefined && !Object.hasOwn(config.purposes, purpose)) {
    // the gateway answers such a call 400 PURPOSE_UNKNOWN before any rule is consulted
    const known = Object.keys(config.purposes).sort();
    throw new UsageError(
      "UNKNOWN_PURPOSE",
      `unknown purpose "${purpose}": the gateway refuses the call (400 PURPOSE_UNKNOWN) before deciding it; use one of the policy's purposes: ${known.length > 0 ? known.join(", ") : "(none defined)"}`,
    );
  }
  const { identity, named } = identityFor(config, who);
  const input: DecisionInput = { identity, request: req.info };
  if (purpose !== undefined) input.purpose = purpose;
  if (body !== undefined) input.body = body;
  const decision = evaluate(config, input);
  const ex: Explanation = {
    request: { ...req, namespaceClass: decision.namespaceClass },
    identity,
    decision,
    masks: masksFor(config, req.info),
    everywhereDetectors: everywhereDetectors(config),
  };
  if (named !== undefined) ex.namedIdentity = named;
  if (purpose !== undefined) ex.purpose = purpose;
  return ex;
}

/** Write one line to stderr for a failed command and give its exit code. */
export function fail(command: string, e: unknown): number {
  if (e instanceof UsageError || (e as { code?: unknown })?.code === "REQUEST_PATH_INVALID") {
    process.stderr.write(`custos ${command}: ${(e as Error).message}\n`);
    return 2;
  }
  process.stderr.write(`custos ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
  return 3;
}
