import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { JsonObject } from "./errors.ts";
import { SimulatorError } from "./errors.ts";
import { jsonPatch, mergePatch, strategicMergePatch } from "./patch.ts";
import { ResourceRegistry } from "./resources.ts";
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { Store, type StoreEvent } from "./store.ts";

const fixed = () => new Date("2026-01-02T03:04:05Z");

function setup(opts: { historyLimit?: number } = {}) {
  const registry = new ResourceRegistry();
  const store = new Store({ registry, clock: fixed, ...opts });
  const ns = registry.byResource("", "v1", "namespaces")!;
  const cm = registry.byResource("", "v1", "configmaps")!;
  const pods = registry.byResource("", "v1", "pods")!;
  const deploy = registry.byResource("apps", "v1", "deployments")!;
  store.create(ns, "", { apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } });
  return { registry, store, ns, cm, pods, deploy };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimulatorError) return `${e.code}:${e.status.code}:${e.status.reason}`;
    throw e;
  }
  return "no error";
}

describe("Store", () => {
  it("assigns uid, creationTimestamp and increasing resourceVersions", () => {
    const { store, cm } = setup();
    const a = store.create(cm, "default", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "a" },
      data: { k: "v" },
    });
    const b = store.create(cm, "default", { metadata: { name: "b" } });
    const am = a.metadata as JsonObject;
    expect(am.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(am.creationTimestamp).toBe("2026-01-02T03:04:05Z");
    expect(Number((b.metadata as JsonObject).resourceVersion)).toBe(Number(am.resourceVersion) + 1);
    expect(b.kind).toBe("ConfigMap");
  });

  it("answers 404, 409 AlreadyExists, 409 Conflict and 422 Invalid like kube-apiserver", () => {
    const { store, cm, deploy } = setup();
    store.create(cm, "default", { metadata: { name: "a" } });
    expect(code(() => store.get(cm, "default", "zz"))).toBe("SIM_NOT_FOUND:404:NotFound");
    expect(code(() => store.create(cm, "default", { metadata: { name: "a" } }))).toBe(
      "SIM_ALREADY_EXISTS:409:AlreadyExists",
    );
    expect(
      code(() => store.update(cm, "default", "a", { metadata: { name: "a", resourceVersion: "1" } })),
    ).toBe("SIM_CONFLICT:409:Conflict");
    expect(code(() => store.create(cm, "default", { metadata: { name: "Bad_Name" } }))).toBe(
      "SIM_INVALID:422:Invalid",
    );
    expect(code(() => store.create(cm, "nope", { metadata: { name: "x" } }))).toBe(
      "SIM_NOT_FOUND:404:NotFound",
    );
    try {
      store.get(deploy, "default", "web");
    } catch (e) {
      expect((e as SimulatorError).status).toEqual({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: 'deployments.apps "web" not found',
        reason: "NotFound",
        details: { name: "web", group: "apps", kind: "deployments" },
        code: 404,
      });
    }
  });

  it("bumps generation on spec changes only and keeps status out of main-resource writes", () => {
    const { store, deploy } = setup();
    store.create(deploy, "default", { metadata: { name: "d" }, spec: { replicas: 1 } });
    const p1 = store.patch(deploy, "default", "d", "merge", { metadata: { labels: { a: "b" } } });
    expect((p1.metadata as JsonObject).generation).toBe(1);
    const p2 = store.patch(deploy, "default", "d", "merge", {
      spec: { replicas: 3 },
      status: { replicas: 99 },
    });
    expect((p2.metadata as JsonObject).generation).toBe(2);
    // the client's status is ignored; the stand-in controller reports the new spec at the new generation
    expect(p2.status).toMatchObject({ replicas: 3, readyReplicas: 3, observedGeneration: 2 });
    const p3 = store.patch(
      deploy,
      "default",
      "d",
      "merge",
      { status: { replicas: 5 } },
      { subresource: "status" },
    );
    expect((p3.status as JsonObject).replicas).toBe(5);
    expect((p3.status as JsonObject).readyReplicas).toBe(3);
    expect((p3.metadata as JsonObject).generation).toBe(2);
  });

  it("honours dryRun without storing or bumping the resourceVersion", () => {
    const { store, cm } = setup();
    const rv = store.currentResourceVersion();
    store.create(cm, "default", { metadata: { name: "dry" } }, { dryRun: true });
    expect(store.tryGet(cm, "default", "dry")).toBeUndefined();
    expect(store.currentResourceVersion()).toBe(rv);
  });

  it("server-side apply creates, merges, drops fields the manager stopped applying, and reports conflicts", () => {
    const { store, cm } = setup();
    const created = store.apply(
      cm,
      "default",
      "s",
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "s" }, data: { a: "1", b: "2" } },
      { fieldManager: "tool" },
    );
    expect((created.metadata as { managedFields: JsonObject[] }).managedFields[0]).toMatchObject({
      manager: "tool",
      operation: "Apply",
      fieldsV1: { "f:data": { "f:a": {}, "f:b": {} } },
    });
    const next = store.apply(
      cm,
      "default",
      "s",
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "s" }, data: { a: "1" } },
      { fieldManager: "tool" },
    );
    expect(next.data).toEqual({ a: "1" });
    expect(
      code(() =>
        store.apply(
          cm,
          "default",
          "s",
          { apiVersion: "v1", kind: "ConfigMap", data: { a: "other" } },
          { fieldManager: "rival" },
        ),
      ),
    ).toBe("SIM_CONFLICT:409:Conflict");
    const forced = store.apply(
      cm,
      "default",
      "s",
      { apiVersion: "v1", kind: "ConfigMap", data: { a: "other" } },
      { fieldManager: "rival", force: true },
    );
    expect(forced.data).toEqual({ a: "other" });
  });

  it("deletes namespaces with their contents and garbage-collects owned objects", () => {
    const { store, ns, cm, deploy, pods } = setup();
    store.create(ns, "", { metadata: { name: "tmp" } });
    store.create(cm, "tmp", { metadata: { name: "c" } });
    const d = store.create(deploy, "default", { metadata: { name: "d" }, spec: {} });
    store.create(pods, "default", {
      metadata: {
        name: "owned",
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            name: "d",
            uid: (d.metadata as JsonObject).uid as string,
          },
        ],
      },
      spec: { containers: [{ name: "c" }] },
    });
    store.delete(ns, "", "tmp");
    expect(store.tryGet(ns, "", "tmp")).toBeUndefined();
    expect(store.tryGet(cm, "tmp", "c")).toBeUndefined();
    store.delete(deploy, "default", "d");
    expect(store.tryGet(pods, "default", "owned")).toBeUndefined();
  });

  it("keeps finalized objects until the last finalizer is removed", () => {
    const { store, cm } = setup();
    store.create(cm, "default", { metadata: { name: "f", finalizers: ["x/y"] } });
    const marked = store.delete(cm, "default", "f");
    expect((marked.metadata as JsonObject).deletionTimestamp).toBe("2026-01-02T03:04:05Z");
    expect(store.tryGet(cm, "default", "f")).toBeDefined();
    store.patch(cm, "default", "f", "merge", { metadata: { finalizers: null } });
    expect(store.tryGet(cm, "default", "f")).toBeUndefined();
  });

  it("replays events after a resourceVersion, and expires old ones", () => {
    const { store, cm } = setup({ historyLimit: 3 });
    const seen: StoreEvent[] = [];
    store.subscribe((e) => seen.push(e));
    const start = store.currentResourceVersion();
    store.create(cm, "default", { metadata: { name: "a" } });
    store.patch(cm, "default", "a", "merge", { data: { x: "1" } });
    store.delete(cm, "default", "a");
    expect(seen.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    const replay = store.eventsSince(start, cm.storage);
    expect(replay !== "expired" && replay.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    store.create(cm, "default", { metadata: { name: "b" } });
    expect(store.eventsSince(start, cm.storage)).toBe("expired");
  });

  it("pages: concatenated pages equal the full filtered list, for any page size (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/), { minLength: 0, maxLength: 25 }),
        fc.integer({ min: 1, max: 30 }),
        (names, limit) => {
          const { store, cm } = setup();
          for (const n of names)
            store.create(cm, "default", {
              metadata: { name: n, labels: { even: String(n.length % 2 === 0) } },
            });
          const sel = { labelSelector: parseLabelSelector("even=true") };
          const full = store.list(cm, "default", sel).items.map((o) => (o.metadata as JsonObject).name);
          const paged: unknown[] = [];
          let token: string | undefined;
          do {
            const page = store.list(cm, "default", {
              ...sel,
              limit,
              ...(token ? { continueToken: token } : {}),
            });
            expect(page.items.length).toBeLessThanOrEqual(limit);
            paged.push(...page.items.map((o) => (o.metadata as JsonObject).name));
            token = page.continueToken;
          } while (token);
          expect(paged).toEqual(full);
          expect(full).toEqual([...full].sort());
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("patches", () => {
  it("JSON merge patch follows RFC 7386's examples", () => {
    expect(mergePatch({ a: "b" }, { a: "c" })).toEqual({ a: "c" });
    expect(mergePatch({ a: "b" }, { b: "c" })).toEqual({ a: "b", b: "c" });
    expect(mergePatch({ a: "b" }, { a: null })).toEqual({});
    expect(mergePatch({ a: [{ b: "c" }] }, { a: [1] })).toEqual({ a: [1] });
    expect(mergePatch({ e: null }, { a: 1 })).toEqual({ e: null, a: 1 });
  });

  it("JSON patch applies add/remove/replace/move/copy/test (RFC 6902)", () => {
    const doc = { metadata: { labels: { a: "1" } }, spec: { list: [1, 2] } };
    const out = jsonPatch(doc, [
      { op: "add", path: "/metadata/labels/b~1c", value: "2" },
      { op: "remove", path: "/metadata/labels/a" },
      { op: "add", path: "/spec/list/-", value: 3 },
      { op: "replace", path: "/spec/list/0", value: 0 },
      { op: "copy", from: "/spec/list", path: "/spec/copy" },
      { op: "move", from: "/spec/copy", path: "/spec/moved" },
      { op: "test", path: "/spec/moved/2", value: 3 },
    ]);
    expect(out).toEqual({
      metadata: { labels: { "b/c": "2" } },
      spec: { list: [0, 2, 3], moved: [0, 2, 3] },
    });
    expect(() => jsonPatch(doc, [{ op: "test", path: "/spec/list/0", value: 9 }])).toThrow(SimulatorError);
  });

  it("strategic merge patch merges containers and env by name and honours $patch directives", () => {
    const pod = {
      spec: {
        containers: [
          { name: "a", image: "a:1", env: [{ name: "X", value: "1" }] },
          { name: "b", image: "b:1" },
        ],
      },
    };
    const out = strategicMergePatch(pod, {
      spec: {
        "$setElementOrder/containers": [{ name: "a" }, { name: "b" }],
        containers: [
          { name: "a", env: [{ name: "Y", value: "2" }] },
          { name: "b", $patch: "delete" },
        ],
      },
    });
    expect(out).toMatchObject({
      spec: {
        containers: [
          {
            name: "a",
            image: "a:1",
            env: [
              { name: "X", value: "1" },
              { name: "Y", value: "2" },
            ],
          },
        ],
      },
    });
    expect((out as { spec: { containers: unknown[] } }).spec.containers).toHaveLength(1);
  });

  it("merge patch with null deletes, for any object (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.integer()), (obj) => {
        const keys = Object.keys(obj);
        const patch = Object.fromEntries(keys.map((k) => [k, null]));
        expect(mergePatch(obj, patch)).toEqual({});
      }),
    );
  });
});

describe("selectors", () => {
  it("parse and match the label selector grammar", () => {
    const labels = { app: "web", tier: "front", version: "3" };
    const yes = [
      "app=web",
      "app==web",
      "tier!=back",
      "app in (web,api)",
      "tier notin (back)",
      "app",
      "!missing",
      "version>2",
      "app=web,tier=front",
    ];
    const no = ["app=api", "app in (api)", "tier notin (front)", "missing", "!app", "version<2"];
    for (const s of yes) expect(matchLabels(parseLabelSelector(s), labels), s).toBe(true);
    for (const s of no) expect(matchLabels(parseLabelSelector(s), labels), s).toBe(false);
  });

  it("matches field selectors on nested paths like kubectl describe sends", () => {
    const ev = {
      metadata: { name: "e", namespace: "default" },
      involvedObject: { name: "web-0", uid: "u1", namespace: "default" },
    };
    expect(
      matchFields(
        parseFieldSelector(
          "involvedObject.namespace=default,involvedObject.uid=u1,involvedObject.name=web-0",
        ),
        ev,
      ),
    ).toBe(true);
    expect(matchFields(parseFieldSelector("involvedObject.uid=u2"), ev)).toBe(false);
    expect(matchFields(parseFieldSelector("spec.nodeName!=x"), ev)).toBe(true);
  });
});
