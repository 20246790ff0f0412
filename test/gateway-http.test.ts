/**
 * The gateway over real HTTPS against a recording upstream: statuses, header stripping,
 * masking of bodies and streams, evidence (one record per call), fail-closed paths, reload,
 * purposes and login tokens.
 */
import { createHmac } from "node:crypto";
import https from "node:https";
import { connect as tlsConnect } from "node:tls";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluate } from "../gateway/decision/index.ts";
import { parseRequestInfo } from "../gateway/requestinfo/index.ts";
import type { ApprovalService, Masker } from "../gateway/ports.ts";
import type { GatewayConfig } from "../sdk/schema/config.ts";
import {
  AGENT_TOKEN,
  call,
  json,
  NOBODY_TOKEN,
  PLANTED,
  plantedMasker,
  type Recorded,
  refusingSink,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testPolicy,
  testTls,
  upstreamFor,
  withHash,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-xyz";
const POD = {
  kind: "Pod",
  apiVersion: "v1",
  metadata: { name: "web-0", namespace: "default", annotations: { patient: PLANTED } },
};

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      (r, res) => r.url === "/api/v1/namespaces/default/pods/web-0" && json(res, 200, POD),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/gz") &&
        raw(
          res,
          200,
          { "content-type": "application/json", "content-encoding": "gzip" },
          gzipSync(JSON.stringify(POD)),
        ),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/warned") &&
        raw(
          res,
          200,
          {
            "content-type": "application/json",
            // what an admission webhook's warning can quote
            warning: `299 - "annotation patient holds ${PLANTED}"`,
          },
          JSON.stringify(POD),
        ),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/zstd") &&
        raw(res, 200, { "content-type": "application/json", "content-encoding": "zstd" }, "xx"),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/broken") &&
        raw(res, 200, { "content-type": "application/json" }, '{"kind":"Pod", "metadata": {'),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/proto") &&
        raw(
          res,
          200,
          { "content-type": "application/vnd.kubernetes.protobuf" },
          Buffer.from([0x6b, 0x38, 0x73, 0]),
        ),
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/pods/slow")) return false;
        setTimeout(() => json(res, 200, POD), 3000);
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/pods?") || !r.url.includes("watch=true"))
          return false;
        res.writeHead(200, {
          "content-type": "application/json;stream=watch",
          "transfer-encoding": "chunked",
        });
        res.write(`${JSON.stringify({ type: "ADDED", object: POD })}\n`);
        // the second event comes later: the first must already have reached the client
        setTimeout(() => {
          res.write(`${JSON.stringify({ type: "MODIFIED", object: POD }).slice(0, 20)}`);
          setTimeout(() => res.end(`${JSON.stringify({ type: "MODIFIED", object: POD }).slice(20)}\n`), 50);
        }, 400);
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/mixed/pods?") || !r.url.includes("watch=true"))
          return false;
        res.writeHead(200, {
          "content-type": "application/json;stream=watch",
          "transfer-encoding": "chunked",
        });
        // a good event whose "é" is cut between two chunks, then (with its end) a broken one
        const good = Buffer.from(
          `${JSON.stringify({ type: "ADDED", object: { ...POD, metadata: { ...POD.metadata, name: "café-0" } } })}\n`,
        );
        const cut = good.indexOf(0xc3) + 1;
        res.write(good.subarray(0, cut));
        setTimeout(
          () => res.end(Buffer.concat([good.subarray(cut), Buffer.from(`{"type":"ADDED","object":{\n`)])),
          50,
        );
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/pods/web-0/log")) return false;
        res.writeHead(200, { "content-type": "text/plain" });
        res.write(`line 1 admitted ${PLANTED.slice(0, 4)}`);
        setTimeout(() => res.end(`${PLANTED.slice(4)} today\nline 2\n`), 100);
        return true;
      },
      (r, res) =>
        r.method === "GET" &&
        r.url.startsWith("/apis/apps/v1/namespaces/default/deployments") &&
        json(res, 200, { kind: "DeploymentList", items: [] }),
      (r, res) =>
        r.method === "POST" &&
        r.url.startsWith("/api/v1/namespaces/default/configmaps") &&
        (() => {
          try {
            return json(res, 201, JSON.parse(r.body));
          } catch {
            // what kube-apiserver answers a body it cannot decode
            return json(res, 400, {
              kind: "Status",
              apiVersion: "v1",
              status: "Failure",
              code: 400,
              reason: "BadRequest",
              message: "the body of the request was in an unknown format",
            });
          }
        })(),
      (r, res) => r.url === "/version" && json(res, 200, { major: "1", minor: "32", gitVersion: "v1.32.0" }),
    ],
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN, 1000));
});
afterAll(async () => {
  await t?.close();
  await up?.close();
});

function raw(
  res: import("node:http").ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string | Buffer,
): true {
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

const lastSeen = (): Recorded => up.seen[up.seen.length - 1]!;

describe("allowed calls", () => {
  it("an object name holding an identifier is masked in the record's objectRef as in its requestURI", async () => {
    const r = await call(t.gw.url, "GET", `/api/v1/namespaces/default/pods/${encodeURIComponent(PLANTED)}`, {
      token: AGENT_TOKEN,
    });
    expect(r.status).toBe(404);
    const rec = (await t.records()).pop()!;
    expect(rec.objectRef).toMatchObject({ resource: "pods", namespace: "default", name: "[MASKED:name]" });
    expect(rec.requestURI).toBe("/api/v1/namespaces/default/pods/[MASKED:name]");
    expect(JSON.stringify(rec)).not.toContain(PLANTED);
    // a default deny quotes the request in its reason: the record quotes it masked
    const widget = `/apis/example.com/v1/namespaces/default/widgets/${encodeURIComponent(PLANTED)}`;
    const denied = await call(t.gw.url, "DELETE", widget, { token: AGENT_TOKEN });
    expect(denied.status).toBe(403);
    const drec = (await t.records()).pop()!;
    expect(drec.custos.reason).toContain("widgets.example.com [MASKED:name] in namespace default");
    expect(JSON.stringify(drec)).not.toContain(PLANTED);
  });

  it("forwards with the gateway's credential only, rewrites Accept away from protobuf, masks the body, records once", async () => {
    const before = (await t.records()).length;
    const seenBefore = up.seen.length;
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", {
      token: AGENT_TOKEN,
      headers: {
        accept: "application/vnd.kubernetes.protobuf,application/json",
        "impersonate-user": "system:admin",
        "impersonate-group": "system:masters",
        "x-remote-user": "root",
        "custos-purpose": "incident-42",
        connection: "x-secret-hop",
        "x-secret-hop": "1",
        "kubectl-command": "kubectl get",
      },
    });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain(PLANTED);
    expect(JSON.parse(r.body).metadata.annotations.patient).toBe("[MASKED:name]");
    expect(up.seen.length).toBe(seenBefore + 1);
    const seen = lastSeen();
    expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
    expect(
      Object.keys(seen.headers).filter((h) => h.startsWith("impersonate-") || h.startsWith("x-remote-")),
    ).toEqual([]);
    expect(seen.headers["custos-purpose"]).toBeUndefined();
    expect(seen.headers["x-secret-hop"]).toBeUndefined();
    expect(seen.headers.accept).toBe("application/json");
    expect(seen.headers["accept-encoding"]).toBe("gzip");
    expect(seen.headers["kubectl-command"]).toBe("kubectl get");
    // the upstream credential never reaches the client or the evidence
    expect(JSON.stringify(r.headers)).not.toContain(UPSTREAM_TOKEN);
    const recs = await t.records();
    expect(recs.length).toBe(before + 1);
    const rec = recs[recs.length - 1]!;
    expect(rec).toMatchObject({
      verb: "get",
      user: { username: "agent-1", groups: ["agents", "ci"] },
      objectRef: { resource: "pods", namespace: "default", name: "web-0", apiVersion: "v1" },
      responseStatus: { code: 200 },
      custos: {
        decision: "allow",
        ruleId: "agents-read",
        purpose: "incident-42",
        policyHash: t.gw.config().policyHash,
        seq: recs.length,
      },
    });
    expect(rec.custos.masking?.counts).toEqual({ name: 1 });
    expect(JSON.stringify(recs)).not.toContain(UPSTREAM_TOKEN);
    expect(JSON.stringify(recs)).not.toContain(AGENT_TOKEN);
  });

  it("impersonates the agent upstream when configured (never the client's own Impersonate-* headers)", async () => {
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      impersonate: true,
    });
    try {
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", {
        token: AGENT_TOKEN,
        headers: { "impersonate-user": "system:admin", "impersonate-group": "system:masters" },
      });
      expect(r.status).toBe(200);
      const seen = lastSeen();
      expect(seen.headers["impersonate-user"]).toBe("agent-1");
      expect(seen.headers["impersonate-group"]).toBe("agents, ci");
      expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
    } finally {
      await g.close();
    }
  });

  it("keeps the as=Table variants of Accept", async () => {
    await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", {
      token: AGENT_TOKEN,
      headers: {
        accept:
          "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
      },
    });
    expect(lastSeen().headers.accept).toBe(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    );
  });

  it("masks the upstream's Warning headers like a body's strings", async () => {
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/warned", { token: AGENT_TOKEN });
    expect(r.status).toBe(200);
    expect(r.headers.warning).toBe('299 - "annotation patient holds [MASKED:name]"');
    expect(r.body).not.toContain(PLANTED);
  });

  it("decompresses gzip before masking", async () => {
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/gz", { token: AGENT_TOKEN });
    expect(r.status).toBe(200);
    expect(r.headers["content-encoding"]).toBeUndefined();
    expect(JSON.parse(r.body).metadata.annotations.patient).toBe("[MASKED:name]");
  });

  it("forwards the exact body bytes of a create and records their hash", async () => {
    const body = JSON.stringify({
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "c1" },
      data: { note: PLANTED },
    });
    const r = await call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/json" },
      body,
    });
    expect(r.status).toBe(201);
    expect(lastSeen().body).toBe(body);
    expect(r.body).not.toContain(PLANTED);
    const rec = (await t.records()).pop()!;
    expect(rec.custos.ruleId).toBe("agents-write-configmaps");
    expect(rec.custos.bodySha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("dry-run rules decide and record but never block", async () => {
    const r = await call(t.gw.url, "GET", "/apis/apps/v1/namespaces/default/deployments", {
      token: AGENT_TOKEN,
    });
    expect(r.status).toBe(200);
    const rec = (await t.records()).pop()!;
    expect(rec.custos.ruleId).toBe("agents-read");
    expect(rec.annotations?.["custos.dev/dry-run-matches"]).toContain("dry-run-no-deploy-read");
  });
});

describe("TLS", () => {
  /** the cipher a gateway chooses for a client offering `ciphers` (Node's default order when absent) */
  async function negotiated(url: string, ciphers?: string): Promise<string> {
    const u = new URL(url);
    const s = tlsConnect({
      host: u.hostname,
      port: Number(u.port),
      ca: (await testTls()).caPem,
      servername: "localhost",
      ...(ciphers ? { ciphers } : {}),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once("secureConnect", resolve);
        s.once("error", reject);
      });
      return s.getCipher().name;
    } finally {
      s.destroy();
    }
  }

  it("chooses AES-128-GCM as a Go API server does, whatever order the client offers", async () => {
    // Node's default order (AES-256 first), and AES-128 offered last
    expect(await negotiated(t.gw.url)).toBe("TLS_AES_128_GCM_SHA256");
    expect(
      await negotiated(
        t.gw.url,
        "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
      ),
    ).toBe("TLS_AES_128_GCM_SHA256");
    // a client that offers only AES-256 still gets it
    expect(await negotiated(t.gw.url, "TLS_AES_256_GCM_SHA384")).toBe("TLS_AES_256_GCM_SHA384");
  });

  it("an operator's cipher list (tlsCiphers) replaces the default order", async () => {
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      tlsCiphers: "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
    });
    try {
      // a client that prefers AES-128 (as Go's do) gets the operator's first choice
      expect(await negotiated(g.gw.url, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")).toBe(
        "TLS_AES_256_GCM_SHA384",
      );
    } finally {
      await g.close();
    }
  });
});

describe("streams", () => {
  /**
   * GET a stream as the agent; `onData` sees each chunk as it arrives. Resolves when the
   * response closes (cleanly or not: a refused stream ends abnormally).
   */
  async function stream(path: string, onData: (c: Buffer) => void): Promise<void> {
    const tls = await testTls();
    const u = new URL(t.gw.url);
    await new Promise<void>((resolve, reject) => {
      const req = https.request(
        {
          host: u.hostname,
          port: u.port,
          path,
          ca: tls.caPem,
          headers: { authorization: `Bearer ${AGENT_TOKEN}` },
          agent: false,
        },
        (res) => {
          res.on("data", onData);
          res.on("error", () => {});
          res.on("close", () => resolve());
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  it("forwards each watch event as soon as it arrives, masked", async () => {
    const arrivals: { at: number; line: string }[] = [];
    const start = Date.now();
    let buf = "";
    await stream("/api/v1/namespaces/default/pods?watch=true&resourceVersion=1", (c) => {
      buf += c.toString();
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        arrivals.push({ at: Date.now() - start, line: buf.slice(0, nl) });
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    });
    expect(arrivals.length).toBe(2);
    expect(arrivals[0]!.at).toBeLessThan(350);
    expect(arrivals[1]!.at).toBeGreaterThanOrEqual(400);
    for (const a of arrivals) expect(a.line).not.toContain(PLANTED);
    expect(JSON.parse(arrivals[1]!.line).type).toBe("MODIFIED");
    const rec = (await t.records()).pop()!;
    expect(rec.verb).toBe("watch");
    expect(rec.custos.masking?.counts.name).toBe(2);
  });

  it("a watch event that cannot be masked ends the stream with an ERROR event, after the events before it", async () => {
    const chunks: Buffer[] = [];
    await stream("/api/v1/namespaces/mixed/pods?watch=true", (c) => chunks.push(c));
    const body = Buffer.concat(chunks).toString("utf8");
    const lines = body.split("\n").filter((l) => l !== "");
    expect(lines.length).toBe(2);
    // the good event, whole (its two-byte character was cut between chunks), masked
    const first = JSON.parse(lines[0]!);
    expect(first.object.metadata.name).toBe("café-0");
    expect(lines[0]).not.toContain(PLANTED);
    // then the refusal, as an event client-go reads, and nothing of the broken event
    const err = JSON.parse(lines[1]!);
    expect(err.type).toBe("ERROR");
    expect(err.object.kind).toBe("Status");
    expect(err.object.message).toContain("not valid JSON");
    expect(body).not.toContain('{"type":"ADDED","object":{\n');
    const rec = (await t.records()).pop()!;
    expect(rec.verb).toBe("watch");
    expect(rec.annotations?.["custos.dev/stream-end"]).toBe("mask-error");
    expect(rec.custos.masking?.counts.name).toBe(1);
  });

  it("masks a log stream even when a value is split across chunks", async () => {
    const r = await call(
      t.gw.url,
      "GET",
      "/api/v1/namespaces/default/pods/web-0/log?container=main&follow=true",
      { token: AGENT_TOKEN },
    );
    expect(r.status).toBe(200);
    expect(r.body).toBe("line 1 admitted [MASKED:name] today\nline 2\n");
  });
});

describe("refusals", () => {
  it("401 for missing, unknown, alg-none and malformed tokens, recorded, never forwarded", async () => {
    const seen = up.seen.length;
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(
      JSON.stringify({
        iss: "custos-gateway",
        aud: "custos-gateway",
        sub: "admin",
        purpose: "deploy",
        exp: 9999999999,
        iat: 1,
        jti: "x",
      }),
    ).toString("base64url")}.`;
    for (const token of [undefined, "wrong", none, "a.b.c"]) {
      const o: { token?: string } = {};
      if (token) o.token = token;
      const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", o);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
    }
    expect(up.seen.length).toBe(seen);
    const rec = (await t.records()).pop()!;
    expect(rec.custos.ruleId).toBe("authentication");
    expect(rec.user.username).toBe("system:anonymous");
  });

  it("403 names the rule, its reason and remediation; the upstream never sees it", async () => {
    const seen = up.seen.length;
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/secrets/db", { token: AGENT_TOKEN });
    expect(r.status).toBe(403);
    const s = JSON.parse(r.body);
    expect(s.reason).toBe("Forbidden");
    expect(s.message).toContain("no-secrets");
    expect(s.message).toContain("secrets hold PHI");
    expect(s.message).toContain("ask the platform team");
    // a program reads the same facts from details: the failure's code, then the rule
    expect(s.details.causes).toEqual([
      { reason: "custos.dev/DENIED_BY_POLICY", message: s.message },
      { reason: "custos.dev/rule", message: "no-secrets" },
    ]);
    expect(up.seen.length).toBe(seen);
    const d = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods", { token: NOBODY_TOKEN });
    expect(d.status).toBe(403);
    expect(JSON.parse(d.body).message).toContain("default-deny");
  });

  it("approval required without a backend: 403 saying so", async () => {
    const r = await call(t.gw.url, "DELETE", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).message).toContain("approval required: no approval backend configured");
    expect((await t.records()).pop()!.custos).toMatchObject({
      decision: "requireApproval",
      ruleId: "approve-pod-delete",
    });
  });

  it("400 for path tricks", async () => {
    const seen = up.seen.length;
    for (const p of [
      "/api/v1/namespaces/default/pods/..%2Fsecrets",
      "/api/v1/namespaces/default/secrets%2Fdb",
      "/api/v1/namespaces/default/pods/../secrets/db",
      "/api/v1/namespaces/default//secrets",
      "/api/v1/namespaces/default/pods/%2e%2e/x",
    ]) {
      const r = await call(t.gw.url, "GET", p, { token: AGENT_TOKEN });
      expect(r.status, p).toBe(400);
      expect(JSON.parse(r.body).kind).toBe("Status");
    }
    expect(up.seen.length).toBe(seen);
  });

  it("413 for oversized bodies, 415 for unknown content types, 400 for malformed JSON", async () => {
    const big = "x".repeat(3 * 1024 * 1024 + 10);
    const r = await call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/json" },
      body: big,
    }).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
    // the gateway answers 413 and closes; a client still writing may see the reset instead
    expect([413, -1]).toContain(r.status);
    expect((await t.records()).pop()!.responseStatus.code).toBe(413);
    const u = await call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=b",
    });
    expect(u.status).toBe(415);
    // an empty body under an unreadable media type is refused too, not forwarded unseen
    const before = up.seen.length;
    const e = await call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "content-type": "text/plain" },
      body: "",
    });
    expect(e.status).toBe(415);
    expect(JSON.parse(e.body).reason).toBe("UnsupportedMediaType");
    expect(up.seen.length).toBe(before);
    const m = await call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    expect(m.status).toBe(400);
  });

  it("502 for malformed JSON, protobuf and unknown encodings from the upstream; 504 when it is slow", async () => {
    for (const name of ["broken", "proto", "zstd"]) {
      const r = await call(t.gw.url, "GET", `/api/v1/namespaces/default/pods/${name}`, {
        token: AGENT_TOKEN,
      });
      expect(r.status, name).toBe(502);
      expect(r.body).not.toContain("Pod");
    }
    const s = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/slow", { token: AGENT_TOKEN });
    expect(s.status).toBe(504);
    expect(JSON.parse(s.body).reason).toBe("Timeout");
  });

  it("502 when the upstream is down", async () => {
    const down = await startTestGateway(
      upstreamFor("https://127.0.0.1:1", (await testTls()).caPem, UPSTREAM_TOKEN),
    );
    try {
      const r = await call(down.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", {
        token: AGENT_TOKEN,
      });
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body).message).toContain("could not be reached");
      expect((await down.records()).pop()!.responseStatus.code).toBe(502);
    } finally {
      await down.close();
    }
  });

  it("fails closed with 503 when the evidence sink refuses", async () => {
    const failing = refusingSink();
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      sink: failing,
    });
    try {
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
      expect(r.status).toBe(503);
      expect(r.body).not.toContain("Pod");
      const d = await call(g.gw.url, "GET", "/api/v1/namespaces/default/secrets/x", { token: AGENT_TOKEN });
      expect(d.status).toBe(503);
    } finally {
      await g.close();
    }
  });
});

describe("operations endpoints", () => {
  it("/metrics counts calls by decision and status class, /readyz follows the evidence sink; no values leak", async () => {
    let refuse = false;
    const sink = refusingSink(() => refuse);
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      sink,
      ops: { port: 0 },
    });
    const ops = async (p: string) => {
      const r = await fetch(`${g.gw.opsUrl}${p}`);
      return { status: r.status, body: await r.text() };
    };
    try {
      expect(g.gw.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(await ops("/livez")).toEqual({ status: 200, body: "ok\n" });
      expect((await ops("/readyz")).status).toBe(200);
      for (let i = 0; i < 3; i++)
        expect(
          (await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN }))
            .status,
        ).toBe(200);
      expect(
        (await call(g.gw.url, "GET", "/api/v1/namespaces/default/secrets/x", { token: AGENT_TOKEN })).status,
      ).toBe(403);
      expect((await call(g.gw.url, "GET", "/api/v1/pods", { token: "not-a-token" })).status).toBe(401);
      const m = (await ops("/metrics")).body;
      const value = (series: string) =>
        Number(new RegExp(`^${series.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} (\\S+)$`, "m").exec(m)?.[1]);
      expect(value('custos_records_total{type="call",decision="allow",effective="allow",code="2xx"}')).toBe(
        3,
      );
      expect(value('custos_records_total{type="call",decision="deny",effective="deny",code="4xx"}')).toBe(2);
      expect(value("custos_call_duration_seconds_count")).toBe(5);
      expect(value('custos_call_duration_seconds_bucket{le="+Inf"}')).toBe(5);
      expect(value(`custos_policy_info{policy_hash="${g.gw.config().policyHash}"}`)).toBe(1);
      expect(value("custos_ready")).toBe(1);
      // counts only: no token, user, path or planted value
      for (const secret of [AGENT_TOKEN, "not-a-token", UPSTREAM_TOKEN, "web-0", PLANTED, "agent"])
        expect(m).not.toContain(secret);
      // the sink refuses: the call is refused, and the gateway says it is not ready
      refuse = true;
      expect(
        (await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN })).status,
      ).toBe(503);
      const notReady = await ops("/readyz");
      expect(notReady.status).toBe(503);
      expect(notReady.body).toContain("evidence");
      const m2 = (await ops("/metrics")).body;
      expect(Number(/^custos_evidence_append_failures_total (\d+)$/m.exec(m2)?.[1])).toBeGreaterThanOrEqual(
        1,
      );
      expect(m2).toMatch(/^custos_ready 0$/m);
      // it recovers with the sink
      refuse = false;
      expect(
        (await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN })).status,
      ).toBe(200);
      expect((await ops("/readyz")).status).toBe(200);
      expect((await ops("/nope")).status).toBe(404);
    } finally {
      await g.close();
    }
    // stopped with the gateway
    await expect(fetch(`${g.gw.opsUrl}/livez`)).rejects.toThrow();
  });
});

/** a policy whose one rule sends every configmap deletion to approval (held up to `wait`) */
function cmDeleteNeedsApproval(wait: { timeoutSeconds: number } | null) {
  return testPolicy([
    {
      id: "approve-cm-delete",
      decision: "requireApproval",
      reason: "configmap deletion needs approval",
      enforcement: "enforce",
      match: { verbs: ["delete"], resources: ["configmaps"] },
      approval: { group: "leads", count: 1, ttlSeconds: 60, use: "once", wait, allowUnsigned: false },
      source: { file: "x.ts", line: 1, column: 1 },
    },
  ]);
}

describe("approval", () => {
  it("holds a call while its approval is pending, then forwards it once granted (single-use grant consumed)", async () => {
    const calls: string[] = [];
    const service: ApprovalService = {
      async check(op) {
        calls.push("check");
        return calls.length < 3
          ? {
              status: "pending",
              requestId: "req-1",
              fingerprint: "fp",
              reviewCommand: "custos approve req-1",
            }
          : { status: "granted", requestId: "req-1", fingerprint: "fp", grantId: `grant-for-${op.ruleId}` };
      },
      async consume(id) {
        calls.push(`consume:${id}`);
        return true;
      },
      async close() {},
    };
    const held = cmDeleteNeedsApproval({ timeoutSeconds: 5 });
    up.routes.push(
      (r, res) =>
        r.method === "DELETE" &&
        r.url.startsWith("/api/v1/namespaces/default/configmaps/") &&
        json(res, 200, { kind: "Status", status: "Success" }),
    );
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      config: held,
      approval: service,
      approvalPollMs: 20,
    });
    try {
      const r = await call(g.gw.url, "DELETE", "/api/v1/namespaces/default/configmaps/c1", {
        token: AGENT_TOKEN,
      });
      expect(r.status).toBe(200);
      expect(calls).toEqual(["check", "check", "check", "consume:grant-for-approve-cm-delete"]);
      expect(lastSeen().method).toBe("DELETE");
      const rec = (await g.records()).pop()!;
      expect(rec.custos).toMatchObject({
        decision: "requireApproval",
        ruleId: "approve-cm-delete",
        approval: { requestId: "req-1", grantId: "grant-for-approve-cm-delete" },
      });
    } finally {
      await g.close();
    }
  });
});

describe("approval of an object whose name holds an identifier", () => {
  it("names it masked, with a keyed digest that tells two such objects apart", async () => {
    const ops: Parameters<ApprovalService["check"]>[0][] = [];
    const service: ApprovalService = {
      async check(op) {
        ops.push(op);
        return { status: "denied", requestId: "req-x", fingerprint: "fp", reason: "not now" };
      },
      async consume() {
        return false;
      },
      async close() {},
    };
    const held = cmDeleteNeedsApproval(null);
    const base = plantedMasker();
    // the test masker, with a keyed digest as the gateway's masker has, and an SSN found only
    // on its own (as the real detector's lookbehind leaves "/900-12-3456" in a path alone)
    const SSN = "900-12-3456";
    const masker: Masker = {
      ...base,
      textStream: (c) => {
        const inner = base.textStream(c);
        let text = "";
        return {
          push: (x: string) => {
            text += x;
            return "";
          },
          end: () => (text === SSN ? "[MASKED:ssn]" : inner.push(text) + inner.end()),
          summary: () => inner.summary(),
        };
      },
      digest: (v) => createHmac("sha256", "k").update(v).digest("hex").slice(0, 32),
    };
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      config: held,
      approval: service,
      maskerFactory: () => masker,
    });
    try {
      for (const name of [`${PLANTED} 1`, `${PLANTED} 2`, "plain-name", SSN])
        await call(g.gw.url, "DELETE", `/api/v1/namespaces/default/configmaps/${encodeURIComponent(name)}`, {
          token: AGENT_TOKEN,
        });
      expect(ops.length).toBe(4);
      const [a, b, c, d] = ops.map((o) => o.request);
      // what an approval stores (request file, pull request, evidence) holds no identifier
      expect(JSON.stringify(ops)).not.toContain(PLANTED);
      expect(JSON.stringify(ops)).not.toContain(SSN);
      expect(d!.path).toMatch(/\/configmaps\/\[MASKED:ssn\]#[0-9a-f]{32}$/);
      expect(a!.name).toMatch(/^\[MASKED:name\] 1#[0-9a-f]{32}$/);
      expect(a!.path).toMatch(/\/configmaps\/\[MASKED:name\] 1#[0-9a-f]{32}$/);
      // two objects that mask alike are still two operations
      expect(b!.name).not.toBe(a!.name);
      // a name that holds nothing is named as it is
      expect(c!.name).toBe("plain-name");
      expect(c!.path).toBe("/api/v1/namespaces/default/configmaps/plain-name");
      // the call records name each object as its approval does
      const names = (await g.records()).map((r) => r.objectRef?.name);
      expect(names).toEqual([a!.name, b!.name, c!.name, d!.name]);
    } finally {
      await g.close();
    }
  });
});

describe("purpose", () => {
  it("from the server URL path prefix, stripped before forwarding", async () => {
    const r = await call(t.gw.url, "GET", "/purpose/deploy/api/v1/namespaces/default/pods/web-0", {
      token: AGENT_TOKEN,
    });
    expect(r.status).toBe(200);
    expect(lastSeen().url).toBe("/api/v1/namespaces/default/pods/web-0");
    expect((await t.records()).pop()!.custos.purpose).toBe("deploy");
  });
  it("unknown and conflicting purposes are 400", async () => {
    const a = await call(t.gw.url, "GET", "/purpose/nope/api/v1/namespaces/default/pods/web-0", {
      token: AGENT_TOKEN,
    });
    expect(a.status).toBe(400);
    const b = await call(t.gw.url, "GET", "/purpose/deploy/api/v1/namespaces/default/pods/web-0", {
      token: AGENT_TOKEN,
      headers: { "custos-purpose": "incident-42" },
    });
    expect(b.status).toBe(400);
    expect(JSON.parse(b.body).message).toContain("conflicting purposes");
  });
});

describe("reload", () => {
  it("swaps the policy atomically and records old and new policyHash", async () => {
    const old = t.gw.config().policyHash;
    const next = testPolicy([
      {
        id: "freeze",
        decision: "deny",
        reason: "change freeze",
        enforcement: "enforce",
        match: { resources: ["pods"] },
        source: { file: "x.ts", line: 1, column: 1 },
      },
    ]);
    await expect(t.gw.reload({ ...next, rules: "nope" })).rejects.toMatchObject({
      code: "POLICY_CONFIG_INVALID",
    });
    // edited after compiling: the content no longer matches its policyHash
    await expect(t.gw.reload({ ...next, name: "edited" })).rejects.toMatchObject({
      code: "POLICY_CONFIG_INVALID",
    });
    expect(t.gw.config().policyHash).toBe(old);
    const r = await t.gw.reload(next);
    expect(r).toEqual({ oldPolicyHash: old, newPolicyHash: next.policyHash });
    const rec = (await t.records()).pop()!;
    expect(rec.custos).toMatchObject({
      type: "policy-reload",
      extra: { oldPolicyHash: old, newPolicyHash: next.policyHash },
    });
    const d = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
    expect(d.status).toBe(403);
    expect(JSON.parse(d.body).message).toContain("freeze");
    await t.gw.reload(testPolicy());
  });
});

describe("property: garbage in, a Status out, the gateway stays up", () => {
  it("random methods, content types, bodies and tokens never crash it", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"),
        fc.constantFrom(
          "application/json",
          "application/yaml",
          "application/apply-patch+yaml",
          "application/vnd.kubernetes.protobuf",
          "text/plain",
          "",
          "multipart/form-data; boundary=x",
        ),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom(AGENT_TOKEN, NOBODY_TOKEN, "", "x.y.z", "Basic Zm9vOmJhcg=="),
        fc.constantFrom(
          "/api/v1/namespaces/default/configmaps",
          "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
          "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
          "/custos/v1/login",
          "/api/v1/namespaces/default/pods/web-0",
        ),
        async (method, contentType, body, token, p) => {
          const headers: Record<string, string> = {};
          if (contentType) headers["content-type"] = contentType;
          // bodies only where HTTP frames them (Node sends GET/HEAD/OPTIONS bodies unframed)
          const o: Parameters<typeof call>[3] = { headers };
          if (["POST", "PUT", "PATCH", "DELETE"].includes(method)) o.body = Buffer.from(body);
          if (token.startsWith("Basic")) headers.authorization = token;
          else if (token) o.token = token;
          const r = await call(t.gw.url, method, p, o);
          expect(r.status).toBeGreaterThanOrEqual(200);
          expect(r.status).toBeLessThan(600);
          if (r.status >= 400 && method !== "HEAD") expect(JSON.parse(r.body).kind).toBe("Status");
        },
      ),
      { numRuns: 120 },
    );
    const ok = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
    expect(ok.status).toBe(200);
  });
});

describe("reload with a call in flight", () => {
  it("a watch opened before the reload is masked by the old masker only, and ended by the reload (re-watched under the new one)", async () => {
    const tagging = (c: GatewayConfig): Masker => ({
      maskJson: (value) => ({
        value: { ...(value as object), maskedBy: c.name },
        summary: { rules: [], paths: [], truncated: false, counts: {} },
      }),
      textStream: () => plantedMasker().textStream({} as never),
    });
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      maskerFactory: tagging,
    });
    try {
      const { policyHash: _h, ...base } = testPolicy();
      const renamed = withHash({ ...base, name: "after-reload" });
      const lines: string[] = [];
      const tls = await testTls();
      const u = new URL(g.gw.url);
      await new Promise<void>((resolve, reject) => {
        const req = https.request(
          {
            host: u.hostname,
            port: u.port,
            path: "/api/v1/namespaces/default/pods?watch=true",
            ca: tls.caPem,
            headers: { authorization: `Bearer ${AGENT_TOKEN}` },
            agent: false,
          },
          (res) => {
            let buf = "";
            res.on("data", (c: Buffer) => {
              buf += c.toString();
              if (lines.length === 0 && buf.includes("\n")) void g.gw.reload(renamed);
              const parts = buf.split("\n");
              buf = parts.pop() ?? "";
              lines.push(...parts.filter((l) => l !== ""));
            });
            res.on("end", () => resolve());
          },
        );
        req.on("error", reject);
        req.end();
      });
      // what the stream carried was masked by the masker of the policy that decided it; the
      // reload then ended it cleanly (the upstream's second event, 400 ms later, never came)
      expect(lines.map((l) => JSON.parse(l).maskedBy)).toEqual(["gateway-test"]);
      expect(g.gw.config().name).toBe("after-reload");
      await new Promise((r) => setTimeout(r, 50));
      const rec = (await g.records()).filter((x) => x.requestURI.includes("watch=true")).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe("policy-reload");
      expect(rec.annotations?.["custos.dev/ended-by-reload"]).toBe(renamed.policyHash);
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
      expect(JSON.parse(r.body).maskedBy).toBe("after-reload");
    } finally {
      await g.close();
    }
  });
});

describe("property: never forwards what the decision denies", () => {
  const seg = fc.oneof(
    fc.constantFrom(
      "api",
      "apis",
      "v1",
      "apps",
      "namespaces",
      "default",
      "phi-x",
      "pods",
      "secrets",
      "configmaps",
      "web-0",
      "log",
      "exec",
      "proxy",
      "watch",
      "status",
    ),
    fc.constantFrom("..", ".", "", "%2F", "%2e%2e", "a%2Fb", "%00", "x;y", "%252F", "%"),
    fc.stringMatching(/^[a-z0-9-]{1,6}$/),
  );
  it("for random paths and callers, every forwarded request was allowed by evaluate()", async () => {
    const config = testPolicy();
    await fc.assert(
      fc.asyncProperty(
        fc.array(seg, { minLength: 1, maxLength: 7 }),
        fc.constantFrom("GET", "DELETE", "PATCH"),
        fc.constantFrom(AGENT_TOKEN, NOBODY_TOKEN),
        fc.constantFrom("", "?watch=true", "?fieldSelector=metadata.name%3Dx"),
        async (segs, method, token, query) => {
          const path = `/${segs.join("/")}${query}`;
          const before = up.seen.length;
          const r = await call(t.gw.url, method, path, {
            token,
            headers: { "content-type": "application/json" },
            ...(method === "PATCH" ? { body: "{}" } : {}),
          });
          const forwarded = up.seen
            .slice(before)
            .filter((s) => !s.url.startsWith("/api/v1/namespaces/default/pods?watch"));
          if (forwarded.length === 0) return;
          // forwarded: it must parse, and the decision must allow it for this caller
          const info = parseRequestInfo(method, path);
          const identity =
            token === AGENT_TOKEN
              ? {
                  subject: "agent-1",
                  groups: ["agents", "ci"],
                  claims: { uid: "u1" },
                  source: "token-file" as const,
                }
              : {
                  subject: "nobody",
                  groups: ["others"],
                  claims: { uid: "u2" },
                  source: "token-file" as const,
                };
          const d = evaluate(config, {
            identity,
            request: info,
            ...(method === "PATCH" ? { body: {} } : {}),
          });
          expect(d.effective, `${method} ${path} -> ${r.status}`).toBe("allow");
          expect(forwarded[0]!.url).toBe(path);
        },
      ),
      { numRuns: 150 },
    );
  });
});
