/**
 * Generic in-memory object storage with Kubernetes semantics: one global resourceVersion
 * counter, uids, creationTimestamp, generation, finalizers and deletionTimestamp, owner
 * garbage collection, namespace deletion, managedFields, and an event history that watches
 * replay from a resourceVersion (410 Gone once it is older than the history kept).
 */
import { randomUUID } from "node:crypto";
import { applyDefaults } from "./defaults.ts";
import { errors, type Json, type JsonObject } from "./errors.ts";
import {
  clone,
  fieldsMinus,
  fieldsOf,
  isObject,
  jsonPatch,
  mergePatch,
  removeFields,
  strategicMergePatch,
  unionFields,
} from "./patch.ts";
import { type ResourceDef, type ResourceRegistry, apiVersionOf } from "./resources.ts";
import { matchFields, matchLabels, type Requirement } from "./selectors.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

/** One change, as stored (the object in its storage shape, a deep copy). */
export interface StoreEvent {
  type: EventType;
  rv: number;
  storage: string;
  namespace: string;
  object: JsonObject;
}

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  subresource?: string;
}

export interface ListOptions {
  labelSelector?: Requirement[];
  fieldSelector?: Requirement[];
  limit?: number;
  continueToken?: string;
}

export interface ListResult {
  items: JsonObject[];
  resourceVersion: string;
  continueToken?: string;
  remainingItemCount?: number;
}

export type PatchType = "json" | "merge" | "strategic" | "apply";

export interface StoreOptions {
  registry: ResourceRegistry;
  clock: () => Date;
  /** how many change events watches can replay (older resourceVersions get 410 Gone) */
  historyLimit?: number;
  /** when > 0, deleting a Pod or Namespace first marks it (deletionTimestamp) and removes it after this delay */
  deletionDelayMs?: number;
  /** first resourceVersion handed out minus one */
  initialResourceVersion?: number;
}

export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function meta(o: JsonObject): JsonObject {
  if (!isObject(o.metadata)) o.metadata = {};
  return o.metadata as JsonObject;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export class Store {
  private rv: number;
  private readonly data = new Map<string, Map<string, JsonObject>>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private ipCounter = 10;
  private clusterIpCounter = 10;
  readonly registry: ResourceRegistry;
  private readonly clock: () => Date;
  private readonly historyLimit: number;
  private readonly deletionDelayMs: number;

  constructor(opts: StoreOptions) {
    this.registry = opts.registry;
    this.clock = opts.clock;
    this.historyLimit = opts.historyLimit ?? 10_000;
    this.deletionDelayMs = opts.deletionDelayMs ?? 0;
    this.rv = opts.initialResourceVersion ?? 1000;
  }

  currentResourceVersion(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch may start from without 410 Gone. */
  oldestWatchableResourceVersion(): number {
    // a watch from rv needs every event after rv: fine while the oldest kept event is rv+1
    return this.history.length >= this.historyLimit ? (this.history[0]?.rv ?? this.rv + 1) - 1 : 0;
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Events after `rv` in `storage` (all storages if undefined), or "expired" if they are no longer kept. */
  eventsSince(rv: number, storage?: string): StoreEvent[] | "expired" {
    if (rv < this.oldestWatchableResourceVersion()) return "expired";
    return this.history
      .filter((e) => e.rv > rv && (storage === undefined || e.storage === storage))
      .map(clone);
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.listeners.clear();
  }

  private bucket(storage: string): Map<string, JsonObject> {
    let b = this.data.get(storage);
    if (!b) {
      b = new Map();
      this.data.set(storage, b);
    }
    return b;
  }

  private key(def: ResourceDef, ns: string, name: string): string {
    return def.namespaced ? `${ns}/${name}` : name;
  }

  private emit(type: EventType, def: ResourceDef, object: JsonObject): void {
    const e: StoreEvent = {
      type,
      rv: this.rv,
      storage: def.storage,
      namespace: String(meta(object).namespace ?? ""),
      object: clone(object),
    };
    this.history.push(e);
    if (this.history.length > this.historyLimit) this.history.shift();
    for (const l of [...this.listeners]) l(e);
  }

  private bump(o: JsonObject): void {
    this.rv += 1;
    meta(o).resourceVersion = String(this.rv);
  }

  private now(): string {
    return rfc3339(this.clock());
  }

  /** The stored object (a copy), in the storage shape. */
  tryGet(def: ResourceDef, ns: string, name: string): JsonObject | undefined {
    const o = this.data.get(def.storage)?.get(this.key(def, ns, name));
    return o ? clone(o) : undefined;
  }

  get(def: ResourceDef, ns: string, name: string): JsonObject {
    const o = this.tryGet(def, ns, name);
    if (!o) throw errors.notFound(def.resource, def.group, name);
    return o;
  }

  /** Every stored object of a storage (any namespace when `ns` is undefined), sorted like etcd keys; copies. */
  all(def: ResourceDef, ns?: string): JsonObject[] {
    return this.shared(def, ns).map((o) => clone(o));
  }

  /** Like `all` but the stored objects themselves (never mutated in place: every write stores a fresh copy). */
  private shared(def: ResourceDef, ns?: string): JsonObject[] {
    const b = this.data.get(def.storage);
    if (!b) return [];
    return [...b.entries()]
      .filter(([, o]) => ns === undefined || !def.namespaced || meta(o).namespace === ns)
      .sort(([a], [b2]) => (a < b2 ? -1 : a > b2 ? 1 : 0))
      .map(([, o]) => o);
  }

  matches(o: JsonObject, opts: Pick<ListOptions, "labelSelector" | "fieldSelector">): boolean {
    const m = meta(o);
    if (opts.labelSelector && !matchLabels(opts.labelSelector, isObject(m.labels) ? m.labels : undefined))
      return false;
    if (opts.fieldSelector && !matchFields(opts.fieldSelector, o)) return false;
    return true;
  }

  /** A page of objects. The items are the stored objects themselves, shared and read-only: copy before changing one. */
  list(def: ResourceDef, ns: string | undefined, opts: ListOptions = {}): ListResult {
    const keyOf = (o: JsonObject) =>
      def.namespaced ? `${meta(o).namespace}/${meta(o).name}` : String(meta(o).name);
    let items = this.shared(def, ns).filter((o) => this.matches(o, opts));
    let listRv = this.rv;
    if (opts.continueToken) {
      const tok = decodeContinue(opts.continueToken);
      listRv = tok.rv;
      items = items.filter((o) => keyOf(o) > tok.start);
    }
    const out: ListResult = { items, resourceVersion: String(listRv) };
    if (opts.limit !== undefined && opts.limit > 0 && items.length > opts.limit) {
      out.items = items.slice(0, opts.limit);
      out.continueToken = encodeContinue(listRv, keyOf(out.items[out.items.length - 1]!));
      out.remainingItemCount = items.length - opts.limit;
    }
    return out;
  }

  private validateNew(def: ResourceDef, ns: string, body: JsonObject): void {
    const m = meta(body);
    const name = typeof m.name === "string" ? m.name : "";
    const causes: Array<{ field: string; message: string }> = [];
    if (!name)
      causes.push({ field: "metadata.name", message: "Required value: name or generateName is required" });
    else if (name.length > 253 || !NAME_RE.test(name)) {
      causes.push({
        field: "metadata.name",
        message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      });
    }
    if (causes.length > 0) throw errors.invalid(def.kind, def.group, name, causes);
    if (def.namespaced) {
      if (!ns) throw errors.badRequest(`the namespace of the object is required for ${def.resource}`);
      const nsDef = this.registry.byResource("", "v1", "namespaces")!;
      const namespace = this.tryGet(nsDef, "", ns);
      if (!namespace) throw errors.notFound("namespaces", "", ns);
      if (meta(namespace).deletionTimestamp) {
        throw errors.forbidden(
          `${def.resource} "${name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
        );
      }
    }
  }

  private checkTypeAndNamespace(def: ResourceDef, ns: string, body: JsonObject): void {
    const want = apiVersionOf(def);
    if (body.apiVersion !== undefined && body.apiVersion !== want) {
      throw errors.badRequest(
        `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${want})`,
      );
    }
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw errors.badRequest(
        `the kind in the data (${String(body.kind)}) does not match the expected kind (${def.kind})`,
      );
    }
    body.apiVersion = want;
    body.kind = def.kind;
    const m = meta(body);
    if (def.namespaced) {
      if (m.namespace !== undefined && m.namespace !== "" && m.namespace !== ns) {
        throw errors.badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      m.namespace = ns;
    } else delete m.namespace;
  }

  private managed(
    o: JsonObject,
    manager: string,
    operation: "Update" | "Apply",
    fields: JsonObject,
    opts: WriteOptions,
    replace = false,
  ): void {
    const m = meta(o);
    const entries = (Array.isArray(m.managedFields) ? m.managedFields : []).filter(isObject);
    const sub = opts.subresource ?? "";
    const idx = entries.findIndex(
      (e) => e.manager === manager && e.operation === operation && (e.subresource ?? "") === sub,
    );
    const prev = idx >= 0 && isObject(entries[idx]!.fieldsV1) ? (entries[idx]!.fieldsV1 as JsonObject) : {};
    const entry: JsonObject = {
      manager,
      operation,
      apiVersion: String(o.apiVersion),
      time: this.now(),
      fieldsType: "FieldsV1",
      fieldsV1: replace ? fields : unionFields(prev, fields),
    };
    if (sub) entry.subresource = sub;
    if (idx >= 0) entries[idx] = entry;
    else entries.push(entry);
    m.managedFields = entries;
  }

  /** Objects arriving from the outside (seeds, POST): fill in server-set metadata and defaults. */
  create(def: ResourceDef, ns: string, input: JsonObject, opts: WriteOptions = {}): JsonObject {
    const body = clone(input);
    this.checkTypeAndNamespace(def, ns, body);
    const m = meta(body);
    if (!m.name && typeof m.generateName === "string") {
      m.name = `${m.generateName}${randomUUID().replace(/-/g, "").slice(0, 5)}`;
    }
    this.validateNew(def, ns, body);
    const name = String(m.name);
    const bucket = this.bucket(def.storage);
    const key = this.key(def, ns, name);
    if (bucket.has(key)) throw errors.alreadyExists(def.resource, def.group, name);
    for (const k of ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"])
      delete m[k];
    m.uid = randomUUID();
    m.creationTimestamp = this.now();
    if (isObject(body.spec)) m.generation = 1;
    else delete m.generation;
    const managedIn = m.managedFields;
    delete m.managedFields;
    applyDefaults(String(body.apiVersion), def.kind, body, {
      now: this.now(),
      nextIp: () => `10.244.0.${this.ipCounter++ % 250}`,
      nextClusterIp: () =>
        `10.96.${Math.floor(this.clusterIpCounter / 250)}.${this.clusterIpCounter++ % 250}`,
    });
    if (Array.isArray(managedIn) && opts.fieldManager === undefined) m.managedFields = managedIn;
    else this.managed(body, opts.fieldManager ?? "unknown", "Update", fieldsOf(input), opts);
    if (opts.dryRun) return body;
    this.bump(body);
    bucket.set(key, clone(body));
    this.emit("ADDED", def, body);
    return body;
  }

  /** Create, or replace when it exists (seeding). */
  put(def: ResourceDef, ns: string, input: JsonObject): JsonObject {
    const name = String(meta(input).name ?? "");
    if (!this.tryGet(def, ns, name)) return this.create(def, ns, input);
    const body = clone(input);
    delete meta(body).resourceVersion;
    return this.update(def, ns, name, body);
  }

  private hasStatusSubresource(def: ResourceDef): boolean {
    return def.subresources.some((s) => s.name === "status");
  }

  /** Write `next` over the stored `prev` (same key): preserves server-owned metadata, bumps generation/RV. */
  private commit(def: ResourceDef, prev: JsonObject, next: JsonObject, opts: WriteOptions): JsonObject {
    const pm = meta(prev);
    const nm = meta(next);
    next.apiVersion = prev.apiVersion ?? apiVersionOf(def);
    next.kind = prev.kind ?? def.kind;
    for (const k of [
      "uid",
      "creationTimestamp",
      "deletionTimestamp",
      "deletionGracePeriodSeconds",
      "name",
      "namespace",
    ]) {
      if (pm[k] === undefined) delete nm[k];
      else nm[k] = pm[k] as Json;
    }
    if (this.hasStatusSubresource(def)) {
      if (opts.subresource === "status") {
        // only status changes through /status
        const status = next.status;
        const kept = clone(prev);
        if (status === undefined) delete kept.status;
        else kept.status = status;
        const km = meta(kept);
        km.managedFields = nm.managedFields ?? km.managedFields ?? [];
        return this.finishCommit(def, prev, kept, opts);
      }
      if (prev.status === undefined) delete next.status;
      else next.status = prev.status;
    }
    const specChanged =
      JSON.stringify({ ...prev, metadata: undefined, status: undefined }) !==
      JSON.stringify({ ...next, metadata: undefined, status: undefined });
    if (pm.generation !== undefined) nm.generation = (pm.generation as number) + (specChanged ? 1 : 0);
    else if (isObject(next.spec)) nm.generation = 1;
    if (specChanged) settleWorkload(def, next);
    return this.finishCommit(def, prev, next, opts);
  }

  private finishCommit(def: ResourceDef, prev: JsonObject, next: JsonObject, opts: WriteOptions): JsonObject {
    const pm = meta(prev);
    const nm = meta(next);
    nm.resourceVersion = pm.resourceVersion ?? null;
    if (JSON.stringify(prev) === JSON.stringify(next)) return next; // no-op writes keep the resourceVersion
    if (opts.dryRun) return next;
    const ns = String(nm.namespace ?? "");
    const name = String(nm.name);
    // removing the last finalizer of an object being deleted completes the deletion
    if (nm.deletionTimestamp && !(Array.isArray(nm.finalizers) && nm.finalizers.length > 0)) {
      this.bucket(def.storage).set(this.key(def, ns, name), clone(next));
      return this.remove(def, ns, name, "Background");
    }
    this.bump(next);
    this.bucket(def.storage).set(this.key(def, ns, name), clone(next));
    this.emit("MODIFIED", def, next);
    return next;
  }

  /** PUT */
  update(def: ResourceDef, ns: string, name: string, input: JsonObject, opts: WriteOptions = {}): JsonObject {
    const prev = this.get(def, ns, name);
    const body = clone(input);
    this.checkTypeAndNamespace(def, ns, body);
    const bm = meta(body);
    if (bm.name !== undefined && bm.name !== name) {
      throw errors.badRequest(
        `the name of the object (${String(bm.name)}) does not match the name on the URL (${name})`,
      );
    }
    const wantRv = bm.resourceVersion;
    if (wantRv !== undefined && wantRv !== null && wantRv !== "" && wantRv !== meta(prev).resourceVersion) {
      throw errors.conflict(
        def.resource,
        def.group,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    if (!Array.isArray(bm.managedFields)) bm.managedFields = meta(prev).managedFields ?? [];
    if (opts.fieldManager !== undefined || !Array.isArray(meta(input).managedFields)) {
      this.managed(body, opts.fieldManager ?? "unknown", "Update", fieldsOf(input), opts);
    }
    return this.commit(def, prev, body, opts);
  }

  patch(
    def: ResourceDef,
    ns: string,
    name: string,
    type: PatchType,
    patch: Json,
    opts: WriteOptions & { force?: boolean } = {},
  ): JsonObject {
    if (type === "apply") return this.apply(def, ns, name, patch, opts);
    const prev = this.get(def, ns, name);
    let next: Json;
    if (type === "json") next = jsonPatch(prev, patch);
    else if (type === "merge") next = mergePatch(prev, patch);
    else next = strategicMergePatch(prev, patch);
    if (!isObject(next)) throw errors.badRequest("the patch did not produce an object");
    const nm = meta(next);
    if (nm.resourceVersion !== undefined && nm.resourceVersion !== meta(prev).resourceVersion) {
      throw errors.conflict(
        def.resource,
        def.group,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    // a client that writes managedFields itself (kubectl's client-side-apply migration) gets them as sent
    const ownManaged = JSON.stringify(nm.managedFields) !== JSON.stringify(meta(prev).managedFields);
    if (!ownManaged) {
      const changed = type === "json" ? fieldsOf(next) : isObject(patch) ? fieldsOf(patch) : {};
      this.managed(
        next,
        opts.fieldManager ?? "unknown",
        "Update",
        type === "json" ? fieldsMinus(changed, fieldsOf(prev)) : changed,
        opts,
      );
    }
    return this.commit(def, prev, next, opts);
  }

  /** Apply a patch to a document that is not stored (the Scale subresource's view). */
  previewPatch(doc: JsonObject, type: PatchType, patch: Json): Json {
    if (type === "json") return jsonPatch(doc, patch);
    if (type === "merge") return mergePatch(doc, patch);
    return strategicMergePatch(doc, patch);
  }

  /** Server-side apply (approximate): merge the applied configuration, track the manager's field set, drop fields it stopped applying, report conflicts with other managers unless forced. */
  apply(
    def: ResourceDef,
    ns: string,
    name: string,
    applied: Json,
    opts: WriteOptions & { force?: boolean },
  ): JsonObject {
    if (!isObject(applied)) throw errors.badRequest("an apply patch must be a YAML or JSON object");
    const manager = opts.fieldManager;
    if (!manager)
      throw errors.badRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set");
    const am = meta(applied);
    if (am.name !== undefined && am.name !== name) {
      throw errors.badRequest(
        `the name of the object (${String(am.name)}) does not match the name on the URL (${name})`,
      );
    }
    const fields = fieldsOf(applied);
    const prev = this.tryGet(def, ns, name);
    if (!prev) {
      const created = this.create(
        def,
        ns,
        { ...applied, metadata: { ...am, name } },
        { ...opts, fieldManager: manager },
      );
      // creating through apply: the manager's entry is an Apply entry
      const cm = meta(created);
      cm.managedFields = [
        {
          manager,
          operation: "Apply",
          apiVersion: String(created.apiVersion),
          time: this.now(),
          fieldsType: "FieldsV1",
          fieldsV1: fields,
        },
      ];
      if (!opts.dryRun) this.bucket(def.storage).set(this.key(def, ns, name), clone(created));
      return created;
    }
    const entries = (
      Array.isArray(meta(prev).managedFields) ? (meta(prev).managedFields as Json[]) : []
    ).filter(isObject);
    const mine = entries.find((e) => e.manager === manager && e.operation === "Apply");
    const others = entries.filter((e) => e !== mine && (e.subresource ?? "") === "");
    if (!opts.force) {
      const conflicts: string[] = [];
      for (const o of others) {
        const owned = isObject(o.fieldsV1) ? o.fieldsV1 : {};
        for (const p of conflictingLeaves(fields, owned, applied, prev, []))
          conflicts.push(`conflict with "${String(o.manager)}": ${p}`);
      }
      if (conflicts.length > 0) {
        const err = errors.conflict(
          def.resource,
          def.group,
          name,
          `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? "s" : ""}: ${conflicts.join("\n")}`,
        );
        err.status.message = `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? "s" : ""}: ${conflicts.join("\n")}`;
        throw err;
      }
    }
    const merged = strategicMergePatch(prev, applied);
    if (!isObject(merged)) throw errors.badRequest("the apply patch did not produce an object");
    if (mine && isObject(mine.fieldsV1)) {
      const dropped = fieldsMinus(mine.fieldsV1, fields);
      removeFields(
        merged,
        dropped,
        others.map((o) => (isObject(o.fieldsV1) ? o.fieldsV1 : {})),
      );
    }
    const mm = meta(merged);
    let list = (Array.isArray(mm.managedFields) ? mm.managedFields : []).filter(isObject);
    if (opts.force) {
      // forced apply takes ownership away from the other managers
      list = list.map((e) =>
        e === mine || !isObject(e.fieldsV1) ? e : { ...e, fieldsV1: fieldsMinus(e.fieldsV1, fields) },
      );
    }
    mm.managedFields = list;
    this.managed(merged, manager, "Apply", fields, opts, true);
    return this.commit(def, prev, merged, opts);
  }

  /** DELETE: honours preconditions, finalizers, the deletion delay, and garbage-collects dependents. */
  delete(
    def: ResourceDef,
    ns: string,
    name: string,
    opts: {
      dryRun?: boolean;
      preconditions?: { uid?: string; resourceVersion?: string };
      propagationPolicy?: string;
    } = {},
  ): JsonObject {
    const prev = this.get(def, ns, name);
    const pm = meta(prev);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== pm.uid) {
      throw errors.conflict(
        def.resource,
        def.group,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(pm.uid)}`,
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== pm.resourceVersion) {
      throw errors.conflict(
        def.resource,
        def.group,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(pm.resourceVersion)}`,
      );
    }
    if (opts.dryRun) return prev;
    const hasFinalizers = Array.isArray(pm.finalizers) && pm.finalizers.length > 0;
    const delayed =
      this.deletionDelayMs > 0 && (def.kind === "Pod" || def.kind === "Namespace") && def.group === "";
    if (hasFinalizers || delayed || def.kind === "Namespace") {
      if (pm.deletionTimestamp) return prev;
      pm.deletionTimestamp = this.now();
      pm.deletionGracePeriodSeconds = 0;
      if (def.kind === "Namespace" && def.group === "") (prev.status as JsonObject).phase = "Terminating";
      this.bump(prev);
      this.bucket(def.storage).set(this.key(def, ns, name), clone(prev));
      this.emit("MODIFIED", def, prev);
      if (hasFinalizers) return prev;
      const finish = () => {
        if (def.kind === "Namespace") this.emptyNamespace(name);
        if (this.tryGet(def, ns, name)) this.remove(def, ns, name, opts.propagationPolicy ?? "Background");
      };
      if (delayed) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          finish();
        }, this.deletionDelayMs);
        this.timers.add(t);
        return prev;
      }
      finish();
      return prev;
    }
    return this.remove(def, ns, name, opts.propagationPolicy ?? "Background");
  }

  private emptyNamespace(ns: string): void {
    const seen = new Set<string>();
    for (const d of this.registry.list()) {
      if (!d.namespaced || seen.has(d.storage)) continue;
      seen.add(d.storage);
      for (const o of this.all(d, ns)) {
        const n = String(meta(o).name);
        if (this.tryGet(d, ns, n)) this.remove(d, ns, n, "Background");
      }
    }
  }

  private remove(def: ResourceDef, ns: string, name: string, propagation: string): JsonObject {
    const bucket = this.bucket(def.storage);
    const key = this.key(def, ns, name);
    const o = bucket.get(key);
    if (!o) throw errors.notFound(def.resource, def.group, name);
    bucket.delete(key);
    this.bump(o);
    this.emit("DELETED", def, o);
    this.collectDependents(String(meta(o).uid), propagation);
    return clone(o);
  }

  private collectDependents(uid: string, propagation: string): void {
    const seen = new Set<string>();
    for (const d of this.registry.list()) {
      if (seen.has(d.storage)) continue;
      seen.add(d.storage);
      for (const o of this.all(d)) {
        const m = meta(o);
        const refs = (Array.isArray(m.ownerReferences) ? m.ownerReferences : []).filter(isObject);
        if (!refs.some((r) => r.uid === uid)) continue;
        const ns = String(m.namespace ?? "");
        const name = String(m.name);
        if (propagation === "Orphan") {
          this.patch(
            d,
            ns,
            name,
            "merge",
            { metadata: { ownerReferences: refs.filter((r) => r.uid !== uid) } },
            { fieldManager: "garbage-collector" },
          );
        } else if (refs.every((r) => r.uid === uid || !this.uidExists(String(r.uid)))) {
          if (this.tryGet(d, ns, name)) this.delete(d, ns, name, { propagationPolicy: propagation });
        }
      }
    }
  }

  private uidExists(uid: string): boolean {
    for (const b of this.data.values()) for (const o of b.values()) if (meta(o).uid === uid) return true;
    return false;
  }
}

/**
 * The stand-in for the workload controllers: after a spec change a Deployment, ReplicaSet or
 * StatefulSet reports every replica updated and ready at the new generation, so `kubectl
 * rollout status` and `kubectl wait` finish.
 */
function settleWorkload(def: ResourceDef, o: JsonObject): void {
  if (def.group !== "apps" || !["Deployment", "ReplicaSet", "StatefulSet"].includes(def.kind)) return;
  const spec = isObject(o.spec) ? o.spec : {};
  const n = typeof spec.replicas === "number" ? spec.replicas : 1;
  const status = isObject(o.status) ? o.status : {};
  status.observedGeneration = (meta(o).generation as number | undefined) ?? 1;
  status.replicas = n;
  status.readyReplicas = n;
  status.availableReplicas = n;
  status.updatedReplicas = n;
  if (def.kind !== "Deployment") status.currentReplicas = n;
  o.status = status;
}

// Continue tokens look like kube-apiserver's: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}.
export function encodeContinue(rv: number, lastKey: string): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv, start: `${lastKey}\u0000` })).toString(
    "base64",
  );
}

export function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const o = JSON.parse(Buffer.from(token, "base64").toString("utf8")) as {
      v?: string;
      rv?: number;
      start?: string;
    };
    if (o.v !== "meta.k8s.io/v1" || typeof o.rv !== "number" || typeof o.start !== "string")
      throw new Error("shape");
    return { rv: o.rv, start: o.start.replace(/\u0000$/, "") };
  } catch {
    throw errors.badRequest(`continue key is not valid: ${JSON.stringify(token)}`);
  }
}

function valueAt(o: Json | undefined, path: string[]): Json | undefined {
  let cur = o;
  for (const p of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** Leaf paths (through `f:` map keys) that `applied` sets to a value different from `current` and `owned` claims. */
function conflictingLeaves(
  fields: JsonObject,
  owned: JsonObject,
  applied: Json,
  current: Json,
  path: string[],
): string[] {
  const out: string[] = [];
  for (const [k, sub] of Object.entries(fields)) {
    if (!k.startsWith("f:")) continue;
    const theirs = owned[k];
    if (!isObject(theirs) || !isObject(sub)) continue;
    const p = [...path, k.slice(2)];
    const leaf = Object.keys(sub).length === 0;
    if (leaf) {
      if (JSON.stringify(valueAt(applied, p)) !== JSON.stringify(valueAt(current, p)))
        out.push(`.${p.join(".")}`);
    } else out.push(...conflictingLeaves(sub, theirs, applied, current, p));
  }
  return out;
}
