/**
 * Typed predicates over request bodies. A proxy records the property path you walk and the
 * comparison you end with; the result is plain `Predicate` data (no function source is
 * shipped to the gateway). Types come from `kubernetes-types`, so a misspelt field fails
 * type-checking.
 */
import type { Json, Predicate } from "../schema/config.ts";
import type { KindName, KindTypes } from "../kube/resources.ts";
import { parseFieldPath } from "./fieldpath.ts";

export type { Predicate } from "../schema/config.ts";

interface Common<T> {
  /** the field is present (and not null) */
  exists(): Predicate;
  /** some reached value deep-equals `value` */
  eq(value: T): Predicate;
  /** some reached value deep-equals one of `values` */
  in(values: readonly T[]): Predicate;
}
interface StringOps {
  /** picomatch glob over the whole string, e.g. `"cluster-admin"`, `"registry.acme.io/*"` */
  glob(pattern: string): Predicate;
}
interface NumberOps {
  gt(n: number): Predicate;
  lt(n: number): Predicate;
}
export interface ArrayExpr<E> extends Common<E[]> {
  /** some element satisfies `where` (the element is the new root of the paths inside) */
  some(where: (element: Expr<E>) => Predicate): Predicate;
  /** every element satisfies `where` (vacuously true for an empty or missing array) */
  every(where: (element: Expr<E>) => Predicate): Predicate;
  /** the element at an index */
  at(index: number): Expr<E>;
  /** all elements, for existential comparisons: `c.args.each().eq("--privileged")` */
  each(): Expr<E>;
}
export type ObjectExpr<T> = Common<T> & { readonly [K in keyof T]-?: Expr<NonNullable<T[K]>> } & {
  /** all members (for maps such as labels or data) */
  each(): Expr<T[keyof T]>;
};
export type LeafExpr<T> = Common<T> &
  (T extends string ? StringOps : unknown) &
  (T extends number ? NumberOps : unknown);

/** A typed path into a body. */
export type Expr<T> = [T] extends [readonly (infer E)[]]
  ? ArrayExpr<E>
  : [T] extends [string | number | boolean]
    ? LeafExpr<T>
    : [T] extends [object]
      ? ObjectExpr<T>
      : LeafExpr<T>;

const METHODS = new Set(["exists", "eq", "in", "glob", "gt", "lt", "some", "every", "at", "each", "get"]);

function expr(path: readonly string[]): unknown {
  const p = [...path];
  const methods: Record<string, unknown> = {
    exists: (): Predicate => ({ op: "exists", path: need(p) }),
    eq: (value: unknown): Predicate => ({ op: "eq", path: need(p), value: json(value) }),
    in: (values: readonly unknown[]): Predicate => ({ op: "in", path: need(p), values: values.map(json) }),
    glob: (pattern: string): Predicate => ({ op: "glob", path: need(p), pattern }),
    gt: (value: number): Predicate => ({ op: "gt", path: need(p), value }),
    lt: (value: number): Predicate => ({ op: "lt", path: need(p), value }),
    some: (where: (e: unknown) => Predicate): Predicate => ({
      op: "some",
      path: need(p),
      where: where(expr([])),
    }),
    every: (where: (e: unknown) => Predicate): Predicate => ({
      op: "not",
      arg: { op: "some", path: need(p), where: not(where(expr([]))) },
    }),
    at: (index: number) => expr([...p, String(index)]),
    each: () => expr([...p, "*"]),
    get: (fieldPath: string) => expr([...p, ...parseFieldPath(fieldPath)]),
  };
  return new Proxy(Object.freeze({}), {
    get(_t, prop) {
      if (typeof prop !== "string") return undefined;
      if (METHODS.has(prop)) return methods[prop];
      return expr([...p, prop]);
    },
  });
}

function need(path: string[]): string[] {
  if (path.length === 0)
    throw new TypeError("a body predicate needs a field path: compare a field, not the whole element");
  return [...path];
}

function json(value: unknown): Json {
  // a structured clone through JSON: rejects functions and undefined members at build time
  return JSON.parse(JSON.stringify(value)) as Json;
}

/**
 * A typed predicate over a request body of a built-in kind.
 * @example
 * when("Pod", (pod) => pod.spec.containers.some((c) => c.securityContext.privileged.eq(true)))
 * @example
 * when("RoleBinding", (rb) => rb.roleRef.name.eq("cluster-admin"))
 */
export function when<K extends KindName>(
  _kind: K,
  build: (object: Expr<KindTypes[K]>) => Predicate,
): Predicate {
  return build(expr([]) as Expr<KindTypes[K]>);
}

/**
 * An untyped predicate over any JSON body (custom resources); walk it with `get(path)`.
 * @example
 * body((o) => o.get("spec.replicas").gt(10))
 */
export function body(build: (object: UntypedExpr) => Predicate): Predicate {
  return build(expr([]) as UntypedExpr);
}
export interface UntypedExpr extends Common<Json>, StringOps, NumberOps {
  /** a field path below this one, e.g. get("spec.template.spec.containers[*].image") */
  get(fieldPath: string): UntypedExpr;
  some(where: (e: UntypedExpr) => Predicate): Predicate;
  every(where: (e: UntypedExpr) => Predicate): Predicate;
  at(index: number): UntypedExpr;
  each(): UntypedExpr;
}

/** All of them hold. @example and(a, b) */
export function and(...args: Predicate[]): Predicate {
  return { op: "and", args: [...args] };
}
/** At least one holds. @example or(a, b) */
export function or(...args: Predicate[]): Predicate {
  return { op: "or", args: [...args] };
}
/** It does not hold. @example not(a) */
export function not(arg: Predicate): Predicate {
  return { op: "not", arg };
}
