/**
 * Every way an upstream answer reaches the client carries no planted value unmasked: bodiless
 * answers (204, HEAD) and their headers, headers that echo a value, bodies in a charset the
 * masker cannot read, and the frames and close of an exec session.
 */
import https from "node:https";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { createMasker } from "../gateway/masking/index.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import { startSimulator } from "../simulator/index.ts";
import {
  AGENT_TOKEN,
  call,
  PLANTED,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testTls,
  upstreamFor,
  SRC,
  testPolicy,
  withHash,
} from "./gateway-helpers.ts";
import { redactFieldMask } from "./masking-fixtures.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-xyz";

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

function raw(
  res: import("node:http").ServerResponse,
  status: number,
  headers: Record<string, string>,
  body?: string | Buffer,
): true {
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/nocontent") &&
        raw(res, 204, { warning: `299 - "annotation patient holds ${PLANTED}"` }),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/echo") &&
        raw(
          res,
          200,
          {
            "content-type": "application/json",
            "audit-id": "4f1c2a6e-0001-4b1e-9a3d-0c2d5e6f7a8b",
            location: `/api/v1/namespaces/default/configmaps/${PLANTED}`,
            "content-disposition": `attachment; filename="${PLANTED}.json"`,
            "x-patient": PLANTED,
          },
          JSON.stringify({ kind: "Pod", apiVersion: "v1", metadata: { name: "echo" } }),
        ),
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/utf16") &&
        raw(
          res,
          r.url.includes("/log") ? 200 : 500,
          { "content-type": `text/plain; charset="UTF-16LE"` },
          Buffer.from(`internal error for ${PLANTED}\n`, "utf16le"),
        ),
    ],
  });
  // an exec whose upstream writes on channels no conforming server writes on
  up.wss.on("connection", (ws, req) => {
    if (!String(req.url).includes("/pods/odd/exec")) return;
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from("ok\n")]));
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`echo ${PLANTED}\n`)]));
    ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(`{"note":"${PLANTED}"}`)]));
    setTimeout(() => ws.close(1000), 50);
  });
  up.wss.on("connection", (ws, req) => {
    if (!String(req.url).includes("/pods/closer/exec")) return;
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from("ok\n")]));
    setTimeout(() => ws.close(4000, `command failed for ${PLANTED}`), 50);
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN, 1000));
});
afterAll(async () => {
  await t?.close();
  await up?.close();
});

describe("responses without a body", () => {
  it("mask the Warning header of a 204 and of a HEAD", async () => {
    for (const method of ["GET", "HEAD"]) {
      const r = await call(t.gw.url, method, "/api/v1/namespaces/default/pods/nocontent", {
        token: AGENT_TOKEN,
      });
      expect(r.status, method).toBe(204);
      expect(r.headers.warning, method).toBe('299 - "annotation patient holds [MASKED:name]"');
    }
  });
});

describe("response headers", () => {
  it("are masked like a body's strings, except those the API server sets from its own state", async () => {
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/echo", { token: AGENT_TOKEN });
    expect(r.status).toBe(200);
    expect(JSON.stringify(r.headers)).not.toContain(PLANTED);
    expect(r.headers.location).toBe("/api/v1/namespaces/default/configmaps/[MASKED:name]");
    expect(r.headers["content-disposition"]).toBe('attachment; filename="[MASKED:name].json"');
    expect(r.headers["x-patient"]).toBe("[MASKED:name]");
    expect(r.headers["audit-id"]).toBe("4f1c2a6e-0001-4b1e-9a3d-0c2d5e6f7a8b");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers.date).toMatch(/GMT$/);
  });
});

describe("bodies in a charset the masker does not read", () => {
  it("are refused, an error page and a log stream alike (UTF-16 hides every value from the detectors)", async () => {
    for (const path of [
      "/api/v1/namespaces/default/pods/utf16",
      "/api/v1/namespaces/default/pods/utf16/log",
    ]) {
      const r = await call(t.gw.url, "GET", path, { token: AGENT_TOKEN });
      expect(r.status, path).toBe(502);
      expect(JSON.parse(r.body).kind, path).toBe("Status");
      expect(r.body.replaceAll("\0", ""), path).not.toContain(PLANTED);
      expect(r.body, path).toContain("cannot be masked");
    }
  });
});

/** an exec session through the gateway: the frames the client got (channel, text) */
async function exec(pod: string): Promise<{ frames: [number, string][]; code: number; reason: string }> {
  const u = new URL(t.gw.url);
  const ws = new WebSocket(
    `wss://${u.host}/api/v1/namespaces/default/pods/${pod}/exec?command=ls&container=main&stdout=true&stderr=true`,
    ["v5.channel.k8s.io"],
    { ca: t.gw.caPem, headers: { authorization: `Bearer ${AGENT_TOKEN}` } },
  );
  const frames: [number, string][] = [];
  ws.on("message", (d: Buffer) => frames.push([d[0]!, d.subarray(1).toString()]));
  const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on("error", reject);
  });
  return { frames, ...closed };
}

describe("exec sessions", () => {
  it("mask what the upstream writes on any channel, not only stdout and stderr", async () => {
    const s = await exec("odd");
    expect(JSON.stringify(s.frames)).not.toContain(PLANTED);
    expect(s.frames).toContainEqual([1, "ok\n"]);
    expect(s.frames).toContainEqual([0, "echo [MASKED:name]\n"]);
    expect(s.frames).toContainEqual([4, '{"note":"[MASKED:name]"}']);
  });

  it("mask the upstream's close reason", async () => {
    const s = await exec("closer");
    expect(s.code).toBe(4000);
    expect(s.reason).toBe("command failed for [MASKED:name]");
  });
});

describe("a Table watch (kubectl get -w)", () => {
  // kube-apiserver sends the column definitions with the first event only; a mask that names a
  // column (its label, or its field's last segment) must hold for the events after it too
  const MRN = "Patient Number1";
  const table = (columns: boolean) => ({
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion: "7" },
    columnDefinitions: columns
      ? [
          { name: "Name", type: "string", format: "name", description: "", priority: 0 },
          { name: "Patient", type: "string", format: "", description: "", priority: 0 },
          { name: "Age", type: "string", format: "", description: "", priority: 0 },
        ]
      : [],
    rows: [
      {
        cells: ["p-1", MRN, "1d"],
        object: {
          kind: "PartialObjectMetadata",
          apiVersion: "meta.k8s.io/v1",
          metadata: { name: "p-1", namespace: "phi-a" },
        },
      },
    ],
  });

  it("masks a column's cells in every event, not only in the first (which alone carries the columns)", async () => {
    const tup = await startRecordingUpstream({
      token: UPSTREAM_TOKEN,
      routes: [
        (r, res) => {
          if (!r.url.startsWith("/apis/clinic.example.com/v1/namespaces/phi-a/patients?")) return false;
          res.writeHead(200, { "content-type": "application/json;stream=watch" });
          res.write(`${JSON.stringify({ type: "ADDED", object: table(true) })}\n`);
          res.end(`${JSON.stringify({ type: "MODIFIED", object: table(false) })}\n`);
          return true;
        },
      ],
    });
    const { policyHash: _, ...base } = testPolicy();
    const config = withHash({
      ...base,
      masks: [
        redactFieldMask(
          "patients",
          { apiGroups: ["clinic.example.com"], resources: ["patients"] },
          "spec.patient",
          "patient",
        ),
      ],
    });
    const g = await startTestGateway(upstreamFor(tup.url, (await testTls()).caPem, UPSTREAM_TOKEN, 2000), {
      config,
      maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(7) }),
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const u = new URL(g.gw.url);
        https
          .get(
            {
              host: u.hostname,
              port: u.port,
              path: "/apis/clinic.example.com/v1/namespaces/phi-a/patients?watch=true&resourceVersion=0",
              ca: g.gw.caPem,
              agent: false,
              headers: {
                authorization: `Bearer ${AGENT_TOKEN}`,
                accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
              },
            },
            (res) => {
              let b = "";
              res.on("data", (c: Buffer) => {
                b += c.toString();
              });
              res.on("end", () => resolve(b));
              res.on("error", reject);
            },
          )
          .on("error", reject);
      });
      const events = body
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
      expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED"]);
      expect(body).not.toContain(MRN);
      for (const e of events) expect(e.object.rows[0].cells[1]).toBe("[MASKED:patient]");
      // the later event goes out as it came: without the column definitions
      expect(events[1].object.columnDefinitions).toEqual([]);
      const rec = (await g.records()).pop()!;
      expect(rec.custos.masking?.counts.patient).toBe(2);
    } finally {
      await g.close();
      await tup.close();
    }
  });
});

describe("content negotiation", () => {
  it("a client that accepts JSON gets JSON, even when it prefers YAML (which the masker cannot read)", async () => {
    const sim = await startSimulator({
      token: UPSTREAM_TOKEN,
      seed: [
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "notes", namespace: "default" },
          data: { note: `admitted ${PLANTED}` },
        },
      ],
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromString(sim.kubeconfig());
    const g = await startTestGateway(new Upstream(kc, { timeoutMs: 5000 }));
    try {
      for (const accept of [
        "application/yaml, application/json;q=0.9",
        "application/yaml,application/json",
        "application/cbor, application/yaml;q=0.5, */*;q=0.1",
      ]) {
        const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/configmaps/notes", {
          token: AGENT_TOKEN,
          headers: { accept },
        });
        expect(r.status, accept).toBe(200);
        expect(String(r.headers["content-type"]), accept).toMatch(/^application\/json/);
        expect(JSON.parse(r.body).data.note, accept).toBe("admitted [MASKED:name]");
      }
    } finally {
      await g.close();
      await sim.stop();
    }
  });
});

describe("a body nested deeper than the masker reads", () => {
  it("is refused with a 502 Status that says so and names the limit, buffered and on a watch stream", async () => {
    const DEPTH = 200_000;
    const deep = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"deep","namespace":"default"},"data":{"x":${"[".repeat(DEPTH)}"${PLANTED}"${"]".repeat(DEPTH)}}}`;
    const tup = await startRecordingUpstream({
      token: UPSTREAM_TOKEN,
      routes: [
        (r, res) => {
          if (!r.url.startsWith("/api/v1/namespaces/default/configmaps")) return false;
          if (r.url.includes("watch=true")) {
            res.writeHead(200, { "content-type": "application/json;stream=watch" });
            res.write(
              `${JSON.stringify({ type: "ADDED", object: { kind: "ConfigMap", apiVersion: "v1", metadata: { name: "flat", namespace: "default" } } })}\n`,
            );
            res.end(`{"type":"MODIFIED","object":${deep}}\n`);
            return true;
          }
          return raw(res, 200, { "content-type": "application/json" }, deep);
        },
      ],
    });
    const { policyHash: _, ...base } = testPolicy();
    const config = withHash({
      ...base,
      detectors: [
        {
          id: "patient-name",
          category: "name",
          pattern: PLANTED,
          flags: "",
          strategy: { kind: "redact" },
          label: "name",
          scope: "everywhere",
          source: SRC,
        },
      ],
    });
    const g = await startTestGateway(upstreamFor(tup.url, (await testTls()).caPem, UPSTREAM_TOKEN, 5000), {
      config,
      maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(7) }),
    });
    try {
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/configmaps/deep", {
        token: AGENT_TOKEN,
      });
      expect(r.status).toBe(502);
      expect(r.body).not.toContain(PLANTED);
      const st = JSON.parse(r.body);
      expect(st.kind).toBe("Status");
      expect(st.reason).toBe("BadGateway");
      expect(st.message).toMatch(/nests deeper than custos reads/);
      expect(st.message).toContain("1000 levels");
      // (the stream ends abnormally after its ERROR event: read what came until then)
      const w = await new Promise<string>((resolve, reject) => {
        const u = new URL(g.gw.url);
        let b = "";
        https
          .get(
            {
              host: u.hostname,
              port: u.port,
              path: "/api/v1/namespaces/default/configmaps?watch=true",
              ca: g.gw.caPem,
              agent: false,
              headers: { authorization: `Bearer ${AGENT_TOKEN}` },
            },
            (res) => {
              res.on("data", (c: Buffer) => {
                b += c.toString();
              });
              res.on("close", () => resolve(b));
              res.on("error", () => resolve(b));
            },
          )
          .on("error", reject);
      });
      expect(w).not.toContain(PLANTED);
      const events = w
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
      expect(events.map((e) => e.type)).toEqual(["ADDED", "ERROR"]);
      expect(events[1].object.code).toBe(502);
      expect(events[1].object.reason).toBe("BadGateway");
      expect(events[1].object.message).toMatch(/nests deeper than custos reads/);
      expect(events[1].object.message).toContain("1000 levels");
      const recs = await g.records();
      // (the watch also wrote its stream-opened `session` record: the calls' own records are counted)
      const calls = recs.filter((rec) => rec.custos.type === "call");
      expect(calls.at(-2)?.annotations?.["custos.dev/error-code"]).toBe("MASK_TOO_DEEP");
    } finally {
      await g.close();
      await tup.close();
    }
  });
});
