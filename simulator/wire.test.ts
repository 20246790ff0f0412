/**
 * Wire-format checks at the HTTP level (plain HTTP, so fetch needs no CA): the shapes
 * kube-apiserver sends and kubectl/client-go rely on.
 */
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Simulator, startSimulator } from "./index.ts";

let sim: Simulator;
const TOKEN = "wire-test-token";

beforeAll(async () => {
  sim = await startSimulator({
    tls: false,
    token: TOKEN,
    bookmarkIntervalMs: 50,
    historyLimit: 50,
    serviceAccountTokens: {
      "sa-token-1": { username: "system:serviceaccount:ci:ci-bot", groups: ["system:serviceaccounts"] },
    },
    seed: [
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web-0", namespace: "default" },
        spec: { containers: [{ name: "main", image: "nginx" }] },
      },
      {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name: "ev1", namespace: "default" },
        involvedObject: { kind: "Pod", name: "web-0", namespace: "default" },
        message: "hello",
        reason: "Test",
      },
      {
        apiVersion: "example.org/v1",
        kind: "Widget",
        metadata: { name: "w1", namespace: "default" },
        spec: { size: 3 },
      },
    ],
  });
});

afterAll(async () => {
  await sim?.stop();
});

function get(path: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sim.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...headers } });
}

const TABLE =
  "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const AGG =
  "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/** Read newline-delimited watch events until `n` arrived. */
async function readEvents(
  res: Response,
  n: number,
): Promise<Array<{ type: string; object: Record<string, unknown> }>> {
  const reader = res.body!.getReader();
  let buf = "";
  const out: Array<{ type: string; object: Record<string, unknown> }> = [];
  while (out.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += Buffer.from(value).toString("utf8");
    let i = buf.indexOf("\n");
    while (i >= 0) {
      out.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
  await reader.cancel();
  return out;
}

describe("authentication", () => {
  it("answers 401 with a Status without a valid token, but serves /healthz and /version", async () => {
    const r = await fetch(`${sim.url}/api/v1/pods`);
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Unauthorized",
      reason: "Unauthorized",
      code: 401,
    });
    expect(await (await fetch(`${sim.url}/healthz`)).text()).toBe("ok");
    expect(((await (await fetch(`${sim.url}/version`)).json()) as { minor: string }).minor).toBe("32");
  });

  it("accepts configured service-account tokens and answers TokenReview for them", async () => {
    const r = await fetch(`${sim.url}/apis/authentication.k8s.io/v1/tokenreviews`, {
      method: "POST",
      headers: { authorization: "Bearer sa-token-1", "content-type": "application/json" },
      body: JSON.stringify({
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token: "sa-token-1" },
      }),
    });
    expect(r.status).toBe(201);
    const body = (await r.json()) as { status: { authenticated: boolean; user: { username: string } } };
    expect(body.status).toMatchObject({
      authenticated: true,
      user: { username: "system:serviceaccount:ci:ci-bot" },
    });
  });
});

describe("discovery", () => {
  it("serves aggregated discovery with its exact Content-Type, and legacy documents otherwise", async () => {
    const agg = await get("/api?timeout=32s", { accept: AGG });
    expect(agg.headers.get("content-type")).toBe(
      "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    );
    const doc = (await agg.json()) as {
      kind: string;
      items: Array<{
        versions: Array<{
          resources: Array<{ resource: string; subresources?: Array<{ subresource: string }> }>;
        }>;
      }>;
    };
    expect(doc.kind).toBe("APIGroupDiscoveryList");
    const pods = doc.items[0]!.versions[0]!.resources.find((r) => r.resource === "pods")!;
    expect(pods.subresources!.map((s) => s.subresource)).toEqual(
      expect.arrayContaining(["exec", "log", "portforward", "attach", "status"]),
    );
    const apis = (await (await get("/apis", { accept: AGG })).json()) as {
      items: Array<{ metadata: { name: string } }>;
    };
    expect(apis.items.map((i) => i.metadata.name)).toEqual(
      expect.arrayContaining(["apps", "rbac.authorization.k8s.io", "events.k8s.io", "example.org"]),
    );
    const legacy = (await (await get("/apis", { accept: "application/json, */*" })).json()) as {
      kind: string;
    };
    expect(legacy.kind).toBe("APIGroupList");
    const rl = (await (await get("/api/v1")).json()) as { resources: Array<{ name: string; kind: string }> };
    expect(rl.resources).toContainEqual(
      expect.objectContaining({ name: "pods/exec", kind: "PodExecOptions" }),
    );
  });

  it("serves OpenAPI v3 with PATCH parameters kubectl's verifier needs, and 404 for v2", async () => {
    const root = (await (await get("/openapi/v3")).json()) as {
      paths: Record<string, { serverRelativeURL: string }>;
    };
    const doc = (await (await get(root.paths["api/v1"]!.serverRelativeURL)).json()) as {
      paths: Record<
        string,
        { patch?: { parameters: Array<{ name: string }>; "x-kubernetes-group-version-kind": unknown } }
      >;
    };
    const patch = doc.paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]!.patch!;
    expect(patch["x-kubernetes-group-version-kind"]).toEqual({ group: "", version: "v1", kind: "ConfigMap" });
    expect(patch.parameters.map((p) => p.name)).toContain("fieldValidation");
    expect((await get("/openapi/v2")).status).toBe(404);
  });
});

describe("reads", () => {
  it("answers Tables with PartialObjectMetadata rows, or full objects with includeObject=Object", async () => {
    const t = (await (await get("/api/v1/namespaces/default/pods?limit=500", { accept: TABLE })).json()) as {
      kind: string;
      columnDefinitions: Array<{ name: string; priority: number }>;
      rows: Array<{ cells: unknown[]; object: { kind: string } }>;
    };
    expect(t.kind).toBe("Table");
    expect(t.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      "Name",
      "Ready",
      "Status",
      "Restarts",
      "Age",
    ]);
    expect(t.rows[0]!.cells.slice(0, 4)).toEqual(["web-0", "1/1", "Running", "0"]);
    expect(t.rows[0]!.object.kind).toBe("PartialObjectMetadata");
    const full = (await (
      await get("/api/v1/namespaces/default/pods?includeObject=Object", { accept: TABLE })
    ).json()) as { rows: Array<{ object: { kind: string; spec: unknown } }> };
    expect(full.rows[0]!.object.kind).toBe("Pod");
    const widgets = (await (
      await get("/apis/example.org/v1/namespaces/default/widgets", { accept: TABLE })
    ).json()) as { columnDefinitions: Array<{ name: string }> };
    expect(widgets.columnDefinitions.map((c) => c.name)).toEqual(["Name", "Age"]);
  });

  it("answers JSON to protobuf-first Accept headers and 406 to protobuf only", async () => {
    const ok = await get("/api/v1/namespaces/default/pods/web-0", {
      accept: "application/vnd.kubernetes.protobuf,application/json",
    });
    expect(ok.headers.get("content-type")).toBe("application/json");
    const no = await get("/api/v1/namespaces/default/pods/web-0", {
      accept: "application/vnd.kubernetes.protobuf",
    });
    expect(no.status).toBe(406);
  });

  it("serves events.k8s.io/v1 Events from the same storage, converted", async () => {
    const ev = (await (await get("/apis/events.k8s.io/v1/namespaces/default/events/ev1")).json()) as {
      apiVersion: string;
      note: string;
      regarding: { name: string; uid: string };
    };
    expect(ev.apiVersion).toBe("events.k8s.io/v1");
    expect(ev.note).toBe("hello");
    expect(ev.regarding.name).toBe("web-0");
    expect(ev.regarding.uid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("gzips large responses when asked", async () => {
    const cms = Array.from({ length: 40 }, (_, i) => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `big-${i}`, namespace: "default" },
      data: { blob: "x".repeat(5000) },
    }));
    sim.load(cms);
    const r = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      const url = new URL(`${sim.url}/api/v1/namespaces/default/configmaps`);
      import("node:http").then(({ get: httpGet }) => {
        httpGet(url, { headers: { authorization: `Bearer ${TOKEN}`, "accept-encoding": "gzip" } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ encoding: res.headers["content-encoding"], body: Buffer.concat(chunks) }),
          );
        }).on("error", reject);
      });
    });
    expect(r.encoding).toBe("gzip");
    expect(
      (JSON.parse(gunzipSync(r.body).toString()) as { items: unknown[] }).items.length,
    ).toBeGreaterThanOrEqual(40);
  });
});

describe("watch", () => {
  it("streams Table events with column definitions only in the first", async () => {
    const res = await get("/api/v1/namespaces/default/pods?watch=true", { accept: TABLE });
    setTimeout(
      () =>
        sim.load([
          {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "web-1", namespace: "default" },
            spec: { containers: [{ name: "c" }] },
          },
        ]),
      20,
    );
    const evs = await readEvents(res, 2);
    expect(evs.map((e) => e.type)).toEqual(["ADDED", "ADDED"]);
    expect((evs[0]!.object.columnDefinitions as unknown[]).length).toBeGreaterThan(0);
    expect(evs[1]!.object.columnDefinitions).toEqual([]);
    expect((evs[1]!.object.rows as Array<{ cells: unknown[] }>)[0]!.cells[0]).toBe("web-1");
  });

  it("replays from a resourceVersion, sends bookmarks, and 410s when too old", async () => {
    const list = (await (await get("/api/v1/namespaces/default/configmaps?limit=1")).json()) as {
      metadata: { resourceVersion: string };
    };
    sim.load([
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "after-list", namespace: "default" } },
    ]);
    const res = await get(
      `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${list.metadata.resourceVersion}&allowWatchBookmarks=true`,
    );
    const evs = await readEvents(res, 2);
    expect(evs[0]).toMatchObject({
      type: "ADDED",
      object: { kind: "ConfigMap", metadata: { name: "after-list" } },
    });
    expect(evs[1]!.type).toBe("BOOKMARK");
    const old = await get("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1");
    const [err] = await readEvents(old, 1);
    expect(err).toMatchObject({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } });
  });
});

describe("writes and upgrades", () => {
  it("decodes kubectl's protobuf SelfSubjectAccessReview", async () => {
    const hex =
      "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577123f0a100a0012001a0022002a0032003800420012210a1f0a0764656661756c74120664656c6574651a0022002a04706f647332003a001a08080012001a0020001a002200";
    const r = await get(
      "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
      {
        "content-type": "application/vnd.kubernetes.protobuf",
        accept: "application/vnd.kubernetes.protobuf,application/json",
      },
      { method: "POST", body: Buffer.from(hex, "hex") },
    );
    expect(r.status).toBe(201);
    const body = (await r.json()) as {
      spec: { resourceAttributes: { verb: string; resource: string; namespace: string } };
      status: { allowed: boolean };
    };
    expect(body.spec.resourceAttributes).toMatchObject({
      verb: "delete",
      resource: "pods",
      namespace: "default",
    });
    expect(body.status.allowed).toBe(true);
  });

  it("refuses a SPDY upgrade whose stream protocols it does not speak, with a Status", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      const req = request(`${sim.url}/api/v1/namespaces/default/pods/web-0/exec?command=ls&stdout=true`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          connection: "Upgrade",
          upgrade: "SPDY/3.1",
          "x-stream-protocol-version": "channel.k8s.io",
        },
      });
      req.on("response", (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ code: res.statusCode ?? 0, body }));
      });
      req.on("upgrade", () => reject(new Error("upgraded although the protocol is not spoken")));
      req.on("error", reject);
      req.end();
    });
    expect(status.code).toBe(400);
    expect(JSON.parse(status.body)).toMatchObject({
      kind: "Status",
      reason: "BadRequest",
      message: expect.stringContaining("v4.channel.k8s.io"),
    });
  });

  it("applies JSON patch and merge patch, and rejects unknown patch types with 415", async () => {
    const path = "/api/v1/namespaces/default/pods/web-0";
    const jp = await get(
      path,
      { "content-type": "application/json-patch+json" },
      { method: "PATCH", body: JSON.stringify([{ op: "add", path: "/metadata/labels", value: { a: "b" } }]) },
    );
    expect(jp.status).toBe(200);
    const mp = await get(
      path,
      { "content-type": "application/merge-patch+json" },
      { method: "PATCH", body: JSON.stringify({ metadata: { labels: { c: "d" } } }) },
    );
    expect(((await mp.json()) as { metadata: { labels: Record<string, string> } }).metadata.labels).toEqual({
      a: "b",
      c: "d",
    });
    const bad = await get(path, { "content-type": "text/plain" }, { method: "PATCH", body: "x" });
    expect(bad.status).toBe(415);
    const dry = await get(
      "/api/v1/namespaces/default/configmaps?dryRun=All",
      { "content-type": "application/json" },
      {
        method: "POST",
        body: JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "dry" } }),
      },
    );
    expect(dry.status).toBe(201);
    expect((await get("/api/v1/namespaces/default/configmaps/dry")).status).toBe(404);
  });
});

describe("fault injection", () => {
  it("answers matching requests with the injected status a limited number of times", async () => {
    sim.injectFault({
      method: "GET",
      path: "/api/v1/namespaces/default/pods/web-0",
      times: 2,
      action: { kind: "status", status: 429, reason: "TooManyRequests", headers: { "Retry-After": "1" } },
    });
    const a = await get("/api/v1/namespaces/default/pods/web-0");
    expect(a.status).toBe(429);
    expect(a.headers.get("retry-after")).toBe("1");
    expect(((await a.json()) as { reason: string }).reason).toBe("TooManyRequests");
    expect((await get("/api/v1/namespaces/default/pods/web-0")).status).toBe(429);
    expect((await get("/api/v1/namespaces/default/pods/web-0")).status).toBe(200);
    expect(sim.requests.filter((r) => r.fault === "status")).toHaveLength(2);
  });

  it("delays, drops connections and sends malformed replies", async () => {
    const removeDelay = sim.injectFault({ path: /\/configmaps/, action: { kind: "delay", ms: 150 } });
    const t0 = Date.now();
    expect((await get("/api/v1/namespaces/default/configmaps")).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    removeDelay();
    sim.injectFault({ path: "/api/v1/namespaces/default/secrets", times: 1, action: { kind: "destroy" } });
    await expect(get("/api/v1/namespaces/default/secrets")).rejects.toThrow();
    sim.injectFault({
      path: "/api/v1/namespaces/default/services",
      times: 1,
      action: { kind: "malformed", variant: "truncated-json" },
    });
    const bad = await get("/api/v1/namespaces/default/services");
    await expect(bad.json()).rejects.toThrow();
  });
});
