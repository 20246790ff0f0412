/**
 * Matching primitives shared by the gateway's decision stage and the compiler's analyser:
 * globs, RBAC resource forms, identity selectors, namespace classes and body predicates.
 * Pure functions over the compiled config (sdk/lib: the gateway may import it).
 */
import picomatch from "picomatch";
import type { FieldPath, GatewayConfig, IdentitySelector, Json, Predicate } from "../schema/config.ts";

/** The parts of a caller that selectors look at (gateway/ports.ts Identity is assignable). */
export interface IdentityLike {
  subject: string;
  groups: readonly string[];
  claims: Readonly<Record<string, string>>;
}
/** The parts of a request that namespace classification looks at (gateway/ports.ts RequestInfo is assignable). */
export interface RequestLike {
  isResourceRequest: boolean;
  namespace: string;
  resource: string;
}

export type StringTest = (value: string) => boolean;

const GLOB_CHARS = /[*?[\]{}()!+@]/;

/**
 * Compile globs (picomatch semantics, `dot: true`) into one test. `"*"` alone matches every
 * value, including the empty string (the core API group is `""`).
 */
export function compileGlobs(patterns: readonly string[]): StringTest {
  if (patterns.includes("*")) return () => true;
  const exact = new Set<string>();
  const globs: StringTest[] = [];
  for (const p of patterns) {
    if (GLOB_CHARS.test(p)) globs.push(picomatch(p, { dot: true }));
    else exact.add(p);
  }
  if (globs.length === 0) return (v) => exact.has(v);
  return (v) => exact.has(v) || globs.some((g) => g(v));
}

/**
 * Non-resource URL patterns follow RBAC: a pattern ending in `*` matches every path with
 * that prefix (`/openapi/*` matches `/openapi/v3/api/v1`); otherwise exact or glob.
 */
export function compileNonResourceURLs(patterns: readonly string[]): StringTest {
  const tests: StringTest[] = patterns.map((p) => {
    if (p === "*") return () => true;
    if (p.endsWith("*") && !GLOB_CHARS.test(p.slice(0, -1))) {
      const prefix = p.slice(0, -1);
      return (v) => v.startsWith(prefix);
    }
    return compileGlobs([p]);
  });
  return (v) => tests.some((t) => t(v));
}

/**
 * RBAC resource forms: `pods` (the resource only), `pods/exec`, `pods/*` (every
 * subresource of pods), `*` (everything), `* /scale` (written without the space: that
 * subresource of any resource). Each part may also be a glob.
 */
export function compileResources(
  patterns: readonly string[],
): (resource: string, subresource: string) => boolean {
  if (patterns.includes("*")) return () => true;
  const tests = patterns.map((p) => {
    const slash = p.indexOf("/");
    const res = compileGlobs([slash < 0 ? p : p.slice(0, slash)]);
    if (slash < 0) return (r: string, s: string) => s === "" && res(r);
    const sub = compileGlobs([p.slice(slash + 1)]);
    return (r: string, s: string) => s !== "" && res(r) && sub(s);
  });
  return (r, s) => tests.some((t) => t(r, s));
}

/** Does a caller match a named identity selector? Every given part must hold; within a part, any entry. */
export function compileIdentitySelector(sel: IdentitySelector): (id: IdentityLike) => boolean {
  const checks: ((id: IdentityLike) => boolean)[] = [];
  if (sel.subjects !== undefined) {
    const t = compileGlobs(sel.subjects);
    checks.push((id) => t(id.subject));
  }
  if (sel.groups !== undefined) {
    const groups = new Set(sel.groups);
    checks.push((id) => id.groups.some((g) => groups.has(g)));
  }
  if (sel.claims !== undefined) {
    for (const [key, patterns] of Object.entries(sel.claims)) {
      const t = compileGlobs(patterns);
      checks.push((id) => {
        const v = Object.hasOwn(id.claims, key) ? id.claims[key] : undefined;
        return v !== undefined && t(v);
      });
    }
  }
  return (id) => checks.every((c) => c(id));
}

/**
 * Cluster-scoped resources of the built-in API groups. A list or watch with no namespace of
 * any OTHER resource spans every namespace, PHI ones included, so it counts as PHI.
 */
export const CLUSTER_SCOPED_RESOURCES: ReadonlySet<string> = new Set([
  "namespaces",
  "nodes",
  "persistentvolumes",
  "componentstatuses",
  "clusterroles",
  "clusterrolebindings",
  "storageclasses",
  "csidrivers",
  "csinodes",
  "volumeattachments",
  "customresourcedefinitions",
  "apiservices",
  "mutatingwebhookconfigurations",
  "validatingwebhookconfigurations",
  "validatingadmissionpolicies",
  "validatingadmissionpolicybindings",
  "priorityclasses",
  "runtimeclasses",
  "certificatesigningrequests",
  "ingressclasses",
  "flowschemas",
  "prioritylevelconfigurations",
  "ipaddresses",
  "servicecidrs",
  "clustertrustbundles",
  "deviceclasses",
  "resourceslices",
  "selfsubjectaccessreviews",
  "selfsubjectrulesreviews",
  "selfsubjectreviews",
  "subjectaccessreviews",
  "tokenreviews",
]);

/**
 * Where a request lands, for `phi` matching:
 * - `phi` / `non-phi`: a namespace (or the namespace object itself) that is / is not in config.phiNamespaces
 * - `cluster`: a cluster-scoped resource, or a non-resource URL
 * - `all-namespaces`: a namespaced resource across every namespace (treated as PHI: fail closed)
 */
export type NamespaceClass = "phi" | "non-phi" | "cluster" | "all-namespaces";

export function compileNamespaceClassifier(
  config: Pick<GatewayConfig, "phiNamespaces">,
): (req: RequestLike) => NamespaceClass {
  const phi = compileGlobs(config.phiNamespaces);
  return (req) => {
    if (!req.isResourceRequest) return "cluster";
    if (req.namespace !== "") return phi(req.namespace) ? "phi" : "non-phi";
    return CLUSTER_SCOPED_RESOURCES.has(req.resource) ? "cluster" : "all-namespaces";
  };
}

// ---------------------------------------------------------------------------------------
// body predicates

/** Values reached by a field path; `"*"` fans out over array elements / object members; digits index arrays. */
export function reach(value: Json | undefined, path: FieldPath): Json[] {
  let current: Json[] = value === undefined ? [] : [value];
  for (const seg of path) {
    const next: Json[] = [];
    for (const v of current) {
      if (v === null || typeof v !== "object") continue;
      if (Array.isArray(v)) {
        if (seg === "*") next.push(...v);
        else if (/^(0|[1-9][0-9]*)$/.test(seg)) {
          const el = v[Number(seg)];
          if (el !== undefined) next.push(el);
        }
      } else if (seg === "*") {
        next.push(...Object.values(v));
      } else if (Object.hasOwn(v, seg)) {
        next.push(v[seg] as Json);
      }
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]!));
  const ao = a as Record<string, Json>;
  const bo = b as Record<string, Json>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k]!, bo[k]!));
}

export type CompiledPredicate = (body: Json | undefined) => boolean;

type PredicateCompiler = (p: Predicate) => CompiledPredicate;

/** The predicate variant whose `op` can be K (gt and lt share one variant). */
type PredicateOf<K extends Predicate["op"], P = Predicate> = P extends { op: infer O }
  ? K extends O
    ? P
    : never
  : never;

/** One handler per predicate op: existential over the values each path reaches. */
const PREDICATE_HANDLERS: { [K in Predicate["op"]]: (p: PredicateOf<K>) => CompiledPredicate } = {
  and: (p) => {
    const args = p.args.map(compilePredicate);
    return (b) => args.every((a) => a(b));
  },
  or: (p) => {
    const args = p.args.map(compilePredicate);
    return (b) => args.some((a) => a(b));
  },
  not: (p) => {
    const arg = compilePredicate(p.arg);
    return (b) => !arg(b);
  },
  exists: (p) => (b) => reach(b, p.path).some((v) => v !== null),
  eq: (p) => (b) => reach(b, p.path).some((v) => jsonEqual(v, p.value)),
  in: (p) => (b) => reach(b, p.path).some((v) => p.values.some((x) => jsonEqual(v, x))),
  glob: (p) => {
    const t = compileGlobs([p.pattern]);
    return (b) => reach(b, p.path).some((v) => typeof v === "string" && t(v));
  },
  gt: (p) => (b) => reach(b, p.path).some((v) => typeof v === "number" && v > p.value),
  lt: (p) => (b) => reach(b, p.path).some((v) => typeof v === "number" && v < p.value),
  some: (p) => {
    const where = compilePredicate(p.where);
    return (b) =>
      reach(b, p.path).some((coll) => {
        if (coll === null || typeof coll !== "object") return false;
        const items = Array.isArray(coll) ? coll : Object.values(coll);
        return items.some((item) => where(item));
      });
  },
};

export const compilePredicate: PredicateCompiler = (p) =>
  (PREDICATE_HANDLERS[p.op] as (p: Predicate) => CompiledPredicate)(p);
