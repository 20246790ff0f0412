/**
 * Deciding what kube-apiserver will execute: request bodies, identities and paths that the
 * gateway must read exactly as the API server does, against a recording upstream over real
 * HTTPS. A call the policy denies must never reach the upstream.
 */
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Rule } from "../sdk/schema/config.ts";
import {
  AGENT_TOKEN,
  call,
  json,
  SRC,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testPolicy,
  testTls,
  upstreamFor,
  withHash,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-decide";

const rules: Rule[] = [
  {
    id: "no-host-network",
    decision: "deny",
    enforcement: "enforce",
    reason: "pods must not share the node's network",
    source: SRC,
    match: {
      verbs: ["create", "update", "patch"],
      resources: ["pods"],
      body: { op: "eq", path: ["spec", "hostNetwork"], value: true },
    },
  },
  {
    id: "agents-create-pods",
    decision: "allow",
    enforcement: "enforce",
    reason: "agents may create pods",
    source: SRC,
    match: { verbs: ["create"], resources: ["pods"], identities: ["agents"] },
  },
];

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      (r, res) =>
        r.method === "POST" &&
        r.url.startsWith("/api/v1/namespaces/default/pods") &&
        json(res, 201, { kind: "Pod", apiVersion: "v1", metadata: { name: "p", namespace: "default" } }),
    ],
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
    config: testPolicy(rules),
  });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

const podsSeen = () => up.seen.filter((r) => r.method === "POST" && r.url.includes("/pods")).length;

describe("YAML request bodies are read as the API server reads them (YAML 1.1: sigs.k8s.io/yaml)", () => {
  it("hostNetwork: yes is true to kube-apiserver: denied, never forwarded", async () => {
    const before = podsSeen();
    for (const value of ["yes", "on", "Y"]) {
      const body = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostNetwork: ${value}\n  containers:\n  - name: c\n    image: busybox\n`;
      const r = await call(t.gw.url, "POST", "/api/v1/namespaces/default/pods", {
        token: AGENT_TOKEN,
        headers: { "content-type": "application/yaml" },
        body,
      });
      expect(r.status, `${value}: ${r.body}`).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(JSON.parse(r.body)).toMatchObject({ kind: "Status", status: "Failure" });
    }
    expect(podsSeen()).toBe(before);
  });

  it("a plain YAML body both readings agree on still goes through", async () => {
    const before = podsSeen();
    const body =
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    at: 12:30\n    on-call: 2024-01-01\nspec:\n  hostNetwork: false\n  containers:\n  - name: c\n    image: busybox\n";
    const r = await call(t.gw.url, "POST", "/api/v1/namespaces/default/pods", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/yaml" },
      body,
    });
    expect(r.status, r.body).toBe(201);
    expect(podsSeen()).toBe(before + 1);
  });
});

describe("token file: columns as kube-apiserver's --token-auth-file reads them (encoding/csv, TrimLeadingSpace)", () => {
  it('"tok, bob, u9, agents" is user bob: a rule for bob applies, and the upstream is told bob', async () => {
    const base = testPolicy();
    const { policyHash: _h, ...rest } = base;
    const config = withHash({
      ...rest,
      identities: { ...rest.identities, bob: { subjects: ["bob"], source: SRC } },
      rules: [
        {
          id: "bob-no-pods",
          decision: "deny",
          enforcement: "enforce",
          reason: "bob may not read pods",
          source: SRC,
          match: { resources: ["pods"], identities: ["bob"] },
        },
        ...rest.rules,
      ],
    });
    const tok = "bob-token-0123456789abcdef";
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      config,
      impersonate: true,
      tokenFile: `${tok}, bob, u9, "agents, ci"\n`,
    });
    try {
      const before = up.seen.length;
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods", { token: tok });
      expect(r.status, r.body).toBe(403);
      expect(JSON.parse(r.body).message).toContain("bob-no-pods");
      expect(up.seen.length).toBe(before);
      // an allowed call is made for "bob" (impersonated as kube-apiserver would name him)
      await call(g.gw.url, "GET", "/api/v1/namespaces/default/configmaps", { token: tok });
      const last = up.seen.at(-1)!;
      expect(last.headers["impersonate-user"]).toBe("bob");
      expect(last.headers["impersonate-group"]).toBe("agents, ci");
    } finally {
      await g.close();
    }
  });
});

/** One raw HTTP/1.1 exchange over TLS (what a client library would never send). */
async function rawExchange(base: string, text: string): Promise<string> {
  const tls = await testTls();
  const u = new URL(base);
  return new Promise((resolve) => {
    const s = tlsConnect(
      { host: u.hostname, port: Number(u.port), ca: tls.caPem, ALPNProtocols: ["http/1.1"] },
      () => s.write(text),
    );
    let out = "";
    s.on("data", (d: Buffer) => {
      out += d.toString();
    });
    s.on("close", () => resolve(out));
    s.on("error", () => resolve(out));
    setTimeout(() => s.destroy(), 2000);
  });
}

describe("WebSocket upgrades: the client's handshake is checked before the upstream session starts", () => {
  it("an exec upgrade the gateway cannot complete never runs the command upstream; the client gets a Status and the call its record", async () => {
    let sessions = 0;
    up.wss.on("connection", () => sessions++);
    const head = `GET /api/v1/namespaces/default/pods/p/exec?command=id&stdout=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${AGENT_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`;
    const cases = [
      "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\nSec-WebSocket-Version: 13\r\n",
      "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n",
      "Sec-WebSocket-Protocol: v5.channel.k8s.io, v5.channel.k8s.io\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    ];
    for (const extra of cases) {
      const before = (await t.records()).length;
      const out = await rawExchange(t.gw.url, `${head}${extra}\r\n`);
      expect(out.split("\r\n")[0]).toMatch(/^HTTP\/1.1 400 /);
      const body = out.slice(out.indexOf("\r\n\r\n") + 4);
      expect(JSON.parse(body)).toMatchObject({ kind: "Status", code: 400 });
      const recs = (await t.records()).slice(before);
      expect(recs.map((r) => r.custos.type)).toEqual(["call"]);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(sessions).toBe(0);
  });
});

describe("method overrides: the upstream is asked for exactly the method that was decided", () => {
  it("X-HTTP-Method-Override (and its variants) never reach the upstream", async () => {
    const before = up.seen.length;
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: {
        "X-HTTP-Method-Override": "DELETE",
        "X-HTTP-Method": "DELETE",
        "X-Method-Override": "DELETE",
      },
    });
    expect(r.status).toBe(404); // the recording upstream's answer: the call went through, as a GET
    const seen = up.seen.slice(before);
    expect(seen.map((s) => s.method)).toEqual(["GET"]);
    expect(Object.keys(seen[0]!.headers).filter((h) => h.includes("method"))).toEqual([]);
  });
});
