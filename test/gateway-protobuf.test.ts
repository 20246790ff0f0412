/**
 * Protobuf request bodies and HTTP/2 through the gateway, with real kubectl 1.32 and the
 * simulator: `kubectl create <generator>` bodies are decoded, decided on and forwarded as the
 * JSON kubectl meant; unknown kinds are refused (415) and never forwarded; watches end at once
 * over HTTP/2 (`kubectl wait`, `rollout status`).
 */
import { createHash } from "node:crypto";
import http2 from "node:http2";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KIND_SCHEMAS } from "../gateway/codec/protobuf.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import type { Rule } from "../sdk/schema/config.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { encodeObject } from "../gateway/codec/encoder.ts";
import {
  AGENT_TOKEN,
  call,
  json,
  startRecordingUpstream,
  upstreamFor,
  kubectl,
  SRC,
  startTestGateway,
  type TestGateway,
  testPolicy,
  testTls,
  withHash,
} from "./gateway-helpers.ts";

const SIM_TOKEN = "sim-admin-token-protobuf";
const rule = (r: Omit<Rule, "source" | "enforcement">): Rule => ({
  enforcement: "enforce",
  source: SRC,
  ...r,
});

function policy() {
  const { policyHash: _h, ...base } = testPolicy([
    rule({
      id: "no-cluster-admin-bindings",
      decision: "deny",
      reason: "binding cluster-admin gives away the cluster",
      match: {
        resources: ["rolebindings", "clusterrolebindings"],
        body: { op: "eq", path: ["roleRef", "name"], value: "cluster-admin" },
      },
    }),
    rule({
      id: "no-privileged",
      decision: "deny",
      reason: "privileged containers escape the node",
      match: {
        body: {
          op: "some",
          path: ["spec", "template", "spec", "containers"],
          where: { op: "eq", path: ["securityContext", "privileged"], value: true },
        },
      },
    }),
    rule({
      id: "agents-create",
      decision: "allow",
      reason: "agents may create and delete workloads in tests",
      match: { verbs: ["create", "delete"], identities: ["agents"] },
    }),
  ]);
  return withHash(base);
}

/** drop what JSON and protobuf spell differently but mean the same: null, "", {}, [] */
function normal(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normal);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const n = normal(x);
      if (n === null || n === "" || (typeof n === "object" && Object.keys(n as object).length === 0))
        continue;
      out[k] = n;
    }
    return out;
  }
  return v;
}

let sim: Simulator;
let t: TestGateway;
let kc: string;

beforeAll(async () => {
  sim = await startSimulator({ token: SIM_TOKEN });
  const ukc = new k8s.KubeConfig();
  ukc.loadFromString(sim.kubeconfig());
  t = await startTestGateway(new Upstream(ukc, { timeoutMs: 10_000 }), { config: policy() });
  kc = await t.kubeconfig(AGENT_TOKEN);
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

const lastPost = (fragment: string) =>
  sim.requests.filter((r) => r.method === "POST" && r.url.split("?")[0]!.endsWith(fragment)).at(-1);

describe("kubectl create through the gateway (protobuf request bodies)", () => {
  const cases: [string, string[], string][] = [
    ["namespace", ["create", "namespace", "pb-ns"], "/namespaces"],
    [
      "configmap",
      ["create", "configmap", "pb-cm", "--from-literal=a=b", "--from-literal=c=d"],
      "/configmaps",
    ],
    ["secret", ["create", "secret", "generic", "pb-s", "--from-literal=pw=hunter2"], "/secrets"],
    [
      "rolebinding",
      ["create", "rolebinding", "pb-rb", "--clusterrole=view", "--user=u", "--serviceaccount=default:x"],
      "/rolebindings",
    ],
    [
      "deployment",
      [
        "create",
        "deployment",
        "pb-dep",
        "--image=nginx:1",
        "--port=80",
        "--replicas=0",
        "--",
        "sh",
        "-c",
        "x",
      ],
      "/deployments",
    ],
  ];
  it.each(cases)("%s: the upstream receives, as JSON, the object kubectl meant", async (_n, args, frag) => {
    const cut = args.includes("--") ? args.indexOf("--") : args.length;
    const dry = [...args.slice(0, cut), "--dry-run=client", "-o", "json", ...args.slice(cut)];
    const meant = await kubectl(kc, dry);
    expect(meant.code, meant.stderr).toBe(0);
    const r = await kubectl(kc, args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("created");
    const up = lastPost(frag);
    expect(up?.headers["content-type"]).toBe("application/json");
    const sent = JSON.parse(String(up?.body)) as unknown;
    expect(normal(sent)).toEqual(normal(JSON.parse(meant.stdout)));
    const rec = (await t.records()).filter((x) => x.verb === "create").at(-1);
    expect(rec?.annotations?.["custos.dev/request-encoding"]).toBe("protobuf-as-json");
  });

  it("body predicates see the decoded protobuf: a RoleBinding to cluster-admin is denied, never forwarded", async () => {
    const before = sim.requests.length;
    const r = await kubectl(kc, [
      "create",
      "rolebinding",
      "pb-admin",
      "--clusterrole=cluster-admin",
      "--user=u",
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("no-cluster-admin-bindings");
    expect(sim.requests.slice(before).some((q) => q.url.includes("rolebindings"))).toBe(false);
    const crb = await kubectl(kc, [
      "create",
      "clusterrolebinding",
      "pb-admin",
      "--clusterrole=cluster-admin",
      "--user=u",
    ]);
    expect(crb.stderr).toContain("no-cluster-admin-bindings");
  });

  it("a job and a service are decoded too", async () => {
    const j = await kubectl(kc, ["create", "job", "pb-j", "--image=busybox", "--", "echo", "hi"]);
    expect(j.code, j.stderr).toBe(0);
    const s = await kubectl(kc, ["create", "service", "clusterip", "pb-svc", "--tcp=80:8080"]);
    expect(s.code, s.stderr).toBe(0);
    const svc = JSON.parse(String(lastPost("/services")?.body)) as {
      spec: { ports: { targetPort: number }[] };
    };
    expect(svc.spec.ports[0]?.targetPort).toBe(8080);
  });

  it("a kind the decoder does not know is refused with 415 and a fix, never forwarded", async () => {
    const before = sim.requests.length;
    const r = await kubectl(kc, ["create", "ingress", "pb-ing", "--rule=a.example/=svc:80"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("kubectl apply -f");
    expect(sim.requests.slice(before).some((q) => q.url.includes("ingresses"))).toBe(false);
  });

  it("decides on decoded fields, fingerprints the original bytes, refuses unknown fields", async () => {
    const tls = await testTls();
    void tls;
    const privileged = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "pb-priv", namespace: "default" },
      spec: {
        template: {
          spec: { containers: [{ name: "c", image: "busybox", securityContext: { privileged: true } }] },
        },
      },
    };
    const headers = { "content-type": "application/vnd.kubernetes.protobuf" };
    const url = "/apis/apps/v1/namespaces/default/deployments";
    const bytes = encodeObject(privileged);
    const denied = await call(t.gw.url, "POST", url, { token: AGENT_TOKEN, headers, body: bytes });
    expect(denied.status).toBe(403);
    expect(denied.body).toContain("no-privileged");
    const rec = (await t.records()).at(-1);
    expect(rec?.custos.bodySha256).toBe(createHash("sha256").update(bytes).digest("hex"));

    const ok = encodeObject({
      ...privileged,
      metadata: { name: "pb-unpriv", namespace: "default" },
      spec: {},
    });
    expect((await call(t.gw.url, "POST", url, { token: AGENT_TOKEN, headers, body: ok })).status).toBe(201);

    // an extra field 99 in ObjectMeta: not read, so not forwarded
    const extra = encodeObject({ ...privileged, spec: {} }, { extraMetaField: 99 });
    const r = await call(t.gw.url, "POST", url, { token: AGENT_TOKEN, headers, body: extra });
    expect(r.status).toBe(415);
    expect(r.body).toContain("metadata.#99");
    const bad = await call(t.gw.url, "POST", url, {
      token: AGENT_TOKEN,
      headers,
      body: Buffer.from("k8s\0\x0a\xff"),
    });
    expect(bad.status).toBe(400);
    expect(Object.keys(KIND_SCHEMAS)).toContain("apps/v1/Deployment");
  });
});

describe("HTTP/2", () => {
  it("serves h2 via ALPN, and HTTP/1.1 to clients that ask for it", async () => {
    const tls = await testTls();
    const s = http2.connect(t.gw.url, { ca: tls.caPem });
    const status = await new Promise<number>((resolve, reject) => {
      const q = s.request({ ":path": "/version", authorization: `Bearer ${AGENT_TOKEN}` });
      q.on("response", (h) => resolve(Number(h[":status"])));
      q.on("error", reject);
      q.resume();
    });
    s.close();
    expect(status).toBe(200);
    expect((await call(t.gw.url, "GET", "/version", { token: AGENT_TOKEN })).status).toBe(200);
  });

  it("kubectl wait --for=delete returns as soon as the pod is gone", async () => {
    sim.load([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "pb-doomed", namespace: "default" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      },
    ]);
    const t0 = Date.now();
    const waiting = kubectl(kc, ["wait", "--for=delete", "pod/pb-doomed", "--timeout=20s"], {
      timeoutMs: 30_000,
    });
    await new Promise((r) => setTimeout(r, 1500));
    const del = await kubectl(kc, ["delete", "pod", "pb-doomed", "--wait=false"]);
    expect(del.code, del.stderr).toBe(0);
    const w = await waiting;
    expect(w.code, w.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("kubectl rollout status completes in seconds, over HTTP/2 to the gateway", async () => {
    const c = await kubectl(kc, ["create", "deployment", "pb-roll", "--image=nginx:1"]);
    expect(c.code, c.stderr).toBe(0);
    const t0 = Date.now();
    const r = await kubectl(kc, ["rollout", "status", "deployment/pb-roll", "--timeout=20s"], {
      timeoutMs: 30_000,
    });
    expect(r.stdout).toContain("successfully rolled out");
    expect(Date.now() - t0).toBeLessThan(8000);
  });
});

describe("a watch whose upstream holds its headers back", () => {
  it("is started by the gateway; a late upstream refusal arrives as an ERROR event", async () => {
    const tls = await testTls();
    const up = await startRecordingUpstream({
      token: "up-token-watch-123",
      routes: [
        async (req, res) => {
          if (!req.url.includes("watch=true")) return false;
          await new Promise((r) => setTimeout(r, 900));
          return json(res, 410, {
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            code: 410,
            reason: "Expired",
            message: "too old resource version",
          });
        },
      ],
    });
    const g = await startTestGateway(upstreamFor(up.url, tls.caPem, "up-token-watch-123"));
    try {
      const t0 = Date.now();
      let headersAt = 0;
      const s = http2.connect(g.gw.url, { ca: tls.caPem });
      const body = await new Promise<string>((resolve, reject) => {
        const q = s.request({
          ":path": "/api/v1/namespaces/default/pods?watch=true",
          authorization: `Bearer ${AGENT_TOKEN}`,
        });
        let b = "";
        q.on("response", (h) => {
          headersAt = Date.now() - t0;
          expect(h[":status"]).toBe(200);
        });
        q.on("data", (c: Buffer) => {
          b += c.toString();
        });
        q.on("end", () => resolve(b));
        q.on("error", reject);
      });
      s.close();
      expect(headersAt).toBeLessThan(800);
      const ev = JSON.parse(body.trim()) as { type: string; object: { code: number; message: string } };
      expect(ev.type).toBe("ERROR");
      expect(ev.object.code).toBe(410);
      expect(ev.object.message).toBe("too old resource version");
      const rec = (await g.records()).at(-1);
      expect(rec?.responseStatus?.code).toBe(410);
    } finally {
      await g.close();
      await up.close();
    }
  });
});
