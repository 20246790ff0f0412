/**
 * Patch semantics: JSON merge patch (RFC 7386), an approximation of Kubernetes strategic
 * merge patch (lists of objects merge by their merge key, `$patch` directives honoured,
 * `$setElementOrder`/`$retainKeys`/`$deleteFromPrimitiveList` handled), JSON patch
 * (RFC 6902), and the FieldsV1 sets kept in `managedFields`.
 */
import { errors, type Json, type JsonObject } from "./errors.ts";

export function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** RFC 7386 */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Merge keys of the built-in types (k8s.io/api `patchMergeKey` tags); the rest: "name" if every element has one. */
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  volumeDevices: "devicePath",
  imagePullSecrets: "name",
  ports: "containerPort",
  conditions: "type",
  tolerations: "key",
  hostAliases: "ip",
  topologySpreadConstraints: "topologyKey",
  ownerReferences: "uid",
  finalizers: "",
};

function mergeKeyFor(field: string, parentPath: string[], items: Json[]): string | undefined {
  if (field === "ports" && parentPath.includes("spec") && !parentPath.includes("containers")) {
    // Service ports merge by "port"
    if (items.every((i) => isObject(i) && "port" in i)) return "port";
  }
  const known = MERGE_KEYS[field];
  if (known === "") return undefined;
  if (known && items.every((i) => isObject(i) && known in i)) return known;
  if (items.length > 0 && items.every((i) => isObject(i) && typeof i.name === "string")) return "name";
  return undefined;
}

export function strategicMergePatch(target: Json | undefined, patch: Json, path: string[] = []): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === "delete") return null;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  const retain = Array.isArray(patch.$retainKeys) ? (patch.$retainKeys as Json[]).map(String) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$setElementOrder/") || k === "$retainKeys" || k === "$patch") continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const field = k.slice("$deleteFromPrimitiveList/".length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => d === x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = out[k];
    if (Array.isArray(v) && Array.isArray(cur)) {
      const key = mergeKeyFor(k, path, [...v, ...cur]);
      out[k] = key
        ? mergeList(cur, v, key, [...path, k])
        : v.filter((x) => !(isObject(x) && x.$patch)).map(clone);
    } else if (isObject(v)) {
      out[k] = strategicMergePatch(cur, v, [...path, k]);
    } else {
      out[k] = clone(v);
    }
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  return out;
}

function mergeList(cur: Json[], patch: Json[], key: string, path: string[]): Json[] {
  if (patch.some((p) => isObject(p) && p.$patch === "replace")) {
    return patch.filter((p) => !(isObject(p) && p.$patch === "replace")).map(clone);
  }
  const out = cur.map(clone);
  for (const p of patch) {
    if (!isObject(p)) continue;
    const idx = out.findIndex((c) => isObject(c) && c[key] === p[key]);
    if (p.$patch === "delete") {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) {
      out[idx] = strategicMergePatch(out[idx], p, path);
    } else {
      out.push(strategicMergePatch({}, p, path));
    }
  }
  return out;
}

// ---- RFC 6902 ----

function unescapeToken(token: string): string {
  return token.replace(/~1/g, "/").replace(/~0/g, "~");
}

function pointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/"))
    throw errors.badRequest(`invalid JSON pointer ${JSON.stringify(path)}: it must start with "/"`);
  return path.slice(1).split("/").map(unescapeToken);
}

function getAt(doc: Json, tokens: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else return undefined;
  }
  return cur;
}

function parentOf(doc: Json, tokens: string[], op: string): { parent: Json; last: string } {
  const parent = getAt(doc, tokens.slice(0, -1));
  if (parent === undefined || parent === null || typeof parent !== "object") {
    throw errors.badRequest(
      `jsonpatch ${op} operation does not apply: doc is missing path: /${tokens.join("/")}`,
    );
  }
  return { parent, last: tokens[tokens.length - 1]! };
}

export function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw errors.badRequest("a JSON patch must be an array of operations");
  let root = clone(doc);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw errors.badRequest(`invalid JSON patch operation ${JSON.stringify(raw)}: needs "op" and "path"`);
    }
    const op = raw.op;
    const tokens = pointer(raw.path);
    const opValue = (): Json => {
      if (op === "copy" || op === "move") {
        const from = getAt(root, pointer(String(raw.from ?? "")));
        if (from === undefined)
          throw errors.badRequest(`jsonpatch ${op} operation does not apply: "from" path missing`);
        return clone(from);
      }
      if (!("value" in raw)) throw errors.badRequest(`jsonpatch ${op} operation needs a "value"`);
      return clone(raw.value as Json);
    };
    if (op === "test") {
      const cur = getAt(root, tokens);
      if (JSON.stringify(cur) !== JSON.stringify(raw.value)) {
        throw errors.badRequest(`jsonpatch test operation does not apply: is not equal: ${raw.path}`);
      }
      continue;
    }
    if (op === "remove" || op === "move") {
      const removeTokens = op === "move" ? pointer(String(raw.from ?? "")) : tokens;
      const value = op === "move" ? opValue() : undefined;
      const { parent, last } = parentOf(root, removeTokens, op);
      if (Array.isArray(parent)) {
        const i = Number(last);
        if (!(i >= 0 && i < parent.length))
          throw errors.badRequest(`jsonpatch remove: index ${last} out of range`);
        parent.splice(i, 1);
      } else if (isObject(parent)) {
        if (!(last in parent)) {
          throw errors.badRequest(
            `jsonpatch remove operation does not apply: doc is missing key: ${raw.path}`,
          );
        }
        delete parent[last];
      }
      if (op === "remove") continue;
      root = addAt(root, tokens, value as Json, "add");
      continue;
    }
    if (op === "add" || op === "replace" || op === "copy") {
      root = addAt(root, tokens, opValue(), op === "replace" ? "replace" : "add");
      continue;
    }
    throw errors.badRequest(`unexpected JSON patch operation ${JSON.stringify(op)}`);
  }
  return root;
}

function addAt(root: Json, tokens: string[], value: Json, mode: "add" | "replace"): Json {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(root, tokens, mode);
  if (Array.isArray(parent)) {
    if (last === "-" && mode === "add") parent.push(value);
    else {
      const i = Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length || (mode === "replace" && i >= parent.length)) {
        throw errors.badRequest(`jsonpatch ${mode}: index ${last} out of range`);
      }
      if (mode === "add") parent.splice(i, 0, value);
      else parent[i] = value;
    }
  } else if (isObject(parent)) {
    if (mode === "replace" && !(last in parent)) {
      throw errors.badRequest(
        `jsonpatch replace operation does not apply: doc is missing key: /${tokens.join("/")}`,
      );
    }
    parent[last] = value;
  }
  return root;
}

// ---- managedFields (FieldsV1) ----

const SKIP_META = new Set([
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "managedFields",
  "selfLink",
]);

/** The FieldsV1 set of an object's fields: `f:<name>` for map keys, `k:{"name":...}` for keyed list items. */
export function fieldsOf(value: Json, top = true): JsonObject {
  const out: JsonObject = {};
  if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (top && (k === "apiVersion" || k === "kind" || k === "status")) continue;
      if (k.startsWith("$")) continue;
      if (top && k === "metadata" && isObject(v)) {
        const meta: JsonObject = {};
        for (const [mk, mv] of Object.entries(v)) {
          if (SKIP_META.has(mk) || mk === "name" || mk === "namespace") continue;
          meta[`f:${mk}`] = fieldsOf(mv, false);
        }
        if (Object.keys(meta).length > 0) out["f:metadata"] = meta;
        continue;
      }
      out[`f:${k}`] = fieldsOf(v, false);
    }
  } else if (Array.isArray(value)) {
    const keyed = value.length > 0 && value.every((i) => isObject(i) && typeof i.name === "string");
    if (keyed) {
      for (const item of value) {
        const inner = fieldsOf(item, false);
        out[`k:${JSON.stringify({ name: (item as JsonObject).name })}`] = { ".": {}, ...inner };
      }
    } else if (value.every((i) => typeof i !== "object" || i === null)) {
      for (const item of value) out[`v:${JSON.stringify(item)}`] = {};
    }
  }
  return out;
}

export function unionFields(a: JsonObject, b: JsonObject): JsonObject {
  const out: JsonObject = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = isObject(out[k]) && isObject(v) ? unionFields(out[k], v) : v;
  return out;
}

/** Remove from `obj` the leaves listed in `fields` (used when an applier stops applying a field it owned). */
export function removeFields(obj: Json, fields: JsonObject, keep: JsonObject[]): void {
  if (!isObject(obj)) return;
  for (const [k, sub] of Object.entries(fields)) {
    if (!k.startsWith("f:") || !isObject(sub)) continue;
    const name = k.slice(2);
    const keepSubs = keep.map((kp) => kp[k]).filter(isObject);
    const leaf = Object.keys(sub).filter((x) => x !== ".").length === 0;
    if (leaf) {
      if (keepSubs.length === 0) delete obj[name];
    } else if (isObject(obj[name])) {
      removeFields(obj[name], sub, keepSubs);
      if (Object.keys(obj[name] as JsonObject).length === 0 && keepSubs.length === 0) delete obj[name];
    }
  }
}

/** The leaves of `a` that are not in `b`. */
export function fieldsMinus(a: JsonObject, b: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(a)) {
    const bv = b[k];
    if (bv === undefined) out[k] = v;
    else if (isObject(v) && isObject(bv) && Object.keys(v).length > 0) {
      const sub = fieldsMinus(v, bv);
      if (Object.keys(sub).length > 0) out[k] = sub;
    }
  }
  return out;
}
