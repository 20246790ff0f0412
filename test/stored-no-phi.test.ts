/**
 * What custos stores about a call holds no identifier the call carried: synthetic identifiers
 * (SSN, MRN, e-mail) planted in paths, namespaces, selectors, headers, exec arguments and
 * purposes, through the real masker (HIPAA Safe Harbor detectors), the simulator and real
 * kubectl; then every evidence record, artefact, approval file (git objects too) and log line
 * is swept for them. Also: a bearer token offered as a WebSocket subprotocol is never stored.
 */
import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonlEvidenceSink } from "../gateway/evidence/jsonl-sink.ts";
import { createMasker } from "../gateway/masking/index.ts";
import type { EvidenceRecord } from "../gateway/ports.ts";
import type { Logger } from "../gateway/server/runtime.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import { LocalApprovalService } from "../gitops/approvals/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import {
  AGENT_TOKEN,
  call,
  kubectl,
  startTestGateway,
  type TestGateway,
  tempDir,
  testPolicy,
  testTls,
  withHash,
} from "./gateway-helpers.ts";
import { detectors } from "./masking-fixtures.ts";

const SSN = "900-12-3456";
const MRN = "MRN-12345678";
const MAIL = "jane.roe@example.com";
/** the planted values, and the encoded forms a stored URI could keep them in */
const PLANTED = [SSN, "900%2D12%2D3456", MRN, "12345678", MAIL, "jane.roe%40example.com"];

const logLines: string[] = [];
const capture: Logger = {
  info: (msg, f) => logLines.push(JSON.stringify({ level: "info", msg, ...f })),
  warn: (msg, f) => logLines.push(JSON.stringify({ level: "warn", msg, ...f })),
  error: (msg, f) => logLines.push(JSON.stringify({ level: "error", msg, ...f })),
};

let sim: Simulator;
let t: TestGateway;
let approvalsDir: string;
/** the evidence file and its artefacts (session recordings) */
let evidenceFile: string;
let agentKc: string;

function leaks(s: string): string[] {
  const lower = s.toLowerCase();
  return PLANTED.filter((v) => lower.includes(v.toLowerCase()));
}

async function records(): Promise<EvidenceRecord[]> {
  return (await readFile(evidenceFile, "utf8"))
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as EvidenceRecord);
}

/** the last call record written */
async function lastRecord(): Promise<EvidenceRecord> {
  const all = (await records()).filter((r) => r.custos.type === "call");
  return all[all.length - 1]!;
}

async function allFilesText(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) parts.push((await readFile(path.join(e.parentPath, e.name))).toString("latin1"));
  return parts.join("\n");
}

beforeAll(async () => {
  sim = await startSimulator({
    seed: [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: `ns-${SSN}` } },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: "web-0",
          namespace: "default",
          annotations: {
            "sim.custos.dev/exec": JSON.stringify({ [`cat /data/${SSN}`]: { stdout: "chart ok\n" } }),
          },
        },
        spec: { containers: [{ name: "main", image: "nginx" }] },
      },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: "web-0",
          namespace: `ns-${SSN}`,
          annotations: {
            "sim.custos.dev/exec": JSON.stringify({ [`cat /data/${SSN}`]: { stdout: "chart ok\n" } }),
          },
        },
        spec: { containers: [{ name: "main", image: "nginx" }] },
      },
    ],
  });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  const { policyHash: _h, ...base } = testPolicy();
  const config = withHash({
    ...base,
    rules: base.rules.map((r) => (r.id === "agents-exec" ? { ...r, recordSession: true } : r)),
    detectors: detectors(),
  });
  const dir = await tempDir("custos-stored-");
  approvalsDir = path.join(dir, "approvals");
  evidenceFile = path.join(dir, "evidence.jsonl");
  const sink = await JsonlEvidenceSink.open({
    file: evidenceFile,
    gatewayId: "gw-stored",
    fsync: false,
  });
  let approvalGroups = () => config.approvalGroups;
  const approvals = new LocalApprovalService({
    dir: approvalsDir,
    approvalGroups: () => approvalGroups(),
    evidence: sink,
    log: (e) => logLines.push(JSON.stringify(e)),
  });
  await approvals.init();
  t = await startTestGateway(new Upstream(kc, { timeoutMs: 10_000 }), {
    config,
    sink,
    approval: approvals,
    logger: capture,
    maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(9) }),
  });
  approvalGroups = () => t.gw.config().approvalGroups;
  agentKc = await t.kubeconfig(AGENT_TOKEN);
}, 30_000);

afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

describe("what custos stores about a call holds no planted identifier", () => {
  it("calls refused before their request is parsed (401, bad path, unknown purpose, login)", async () => {
    const cases: [string, string, Parameters<typeof call>[3]][] = [
      ["GET", `/api/v1/namespaces/default/configmaps/${SSN}?labelSelector=mrn%3D${MRN}`, {}],
      ["GET", `/api/v1/namespaces/default/configmaps?labelSelector=mail=${MAIL}`, { token: "not-a-token" }],
      ["GET", `/api/v1/namespaces/default/configmaps/${SSN}/../x`, { token: AGENT_TOKEN }],
      ["GET", `/api/v1/namespaces/default/configmaps/a?x=1;mrn=${MRN}`, { token: AGENT_TOKEN }],
      // invalid percent-encoding elsewhere in the URI must not keep the encoded SSN from the masker
      [
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3D900%2D12%2D3456&x=%E0%A4%A",
        { token: AGENT_TOKEN },
      ],
      ["GET", "/api/v1/namespaces/default/configmaps/900%2D12%2D3456%ZZ", { token: AGENT_TOKEN }],
      [
        "GET",
        "/api/v1/namespaces/default/configmaps/a",
        { token: AGENT_TOKEN, headers: { "custos-purpose": MRN } },
      ],
      [
        "GET",
        "/purpose/deploy/api/v1/namespaces/default/configmaps/a",
        { token: AGENT_TOKEN, headers: { "custos-purpose": MRN } },
      ],
      ["GET", `/custos/v1/login?patient=${SSN}`, { token: AGENT_TOKEN }],
    ];
    for (const [method, p, o] of cases) {
      const before = (await records()).length;
      const r = await call(t.gw.url, method, p, o);
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      const recs = (await records()).slice(before);
      expect(recs.length, p).toBe(1);
      expect(leaks(JSON.stringify(recs[0])), `${p}: ${JSON.stringify(recs[0])}`).toEqual([]);
    }
  });

  it("the User-Agent is masked; kubectl's own stays as sent", async () => {
    await call(t.gw.url, "GET", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "user-agent": `agent/1.0 (for ${SSN}, ${MAIL})` },
    });
    const rec = await lastRecord();
    expect(rec.userAgent).toBeDefined();
    expect(leaks(JSON.stringify(rec))).toEqual([]);
    const ua = "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9";
    await call(t.gw.url, "GET", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "user-agent": ua },
    });
    expect((await lastRecord()).userAgent).toBe(ua);
  });

  it("a namespace named after an identifier: objectRef, approval request file and approval records", async () => {
    const ns = `ns-${SSN}`;
    const got = await kubectl(agentKc, ["get", "configmaps", "-n", ns]);
    expect(got.code, got.stderr).toBe(0);
    const rec = await lastRecord();
    expect(rec.objectRef?.namespace).toBeDefined();
    expect(leaks(JSON.stringify(rec)), JSON.stringify(rec)).toEqual([]);
    // a pod delete goes to approval: the request file and its records name the namespace masked
    const del = await kubectl(agentKc, ["delete", "pod", "x", "-n", ns, "--wait=false"]);
    expect(del.stderr).toMatch(/requires approval/);
    const git = execFileSync("git", [
      "-C",
      approvalsDir,
      "cat-file",
      "--batch-all-objects",
      "--batch",
    ]).toString("latin1");
    expect(git).toMatch(/ns-\[MASKED:ssn\]/);
    expect(leaks(git)).toEqual([]);
    expect(leaks(await allFilesText(approvalsDir))).toEqual([]);
    for (const r of await records()) expect(leaks(JSON.stringify(r)), JSON.stringify(r)).toEqual([]);
  });

  it("exec arguments holding a path with an identifier: the record's URI and the recording", async () => {
    const e = await kubectl(agentKc, ["exec", "web-0", "--", "cat", `/data/${SSN}`]);
    expect(e.stdout, e.stderr).toContain("chart ok");
    let rec: EvidenceRecord | undefined;
    for (let i = 0; i < 50 && !rec; i++) {
      rec = (await records()).find((r) => r.objectRef?.subresource === "exec" && r.custos.type === "call");
      if (!rec) await new Promise((r) => setTimeout(r, 50));
    }
    expect(rec?.annotations?.["custos.dev/session-recording"]).toBeDefined();
    expect(leaks(JSON.stringify(rec)), rec?.requestURI).toEqual([]);
    const cast = await allFilesText(path.dirname(evidenceFile));
    expect(cast).toContain('"command":["cat","/data/');
    expect(leaks(cast)).toEqual([]);
    // in a namespace named after an identifier (a raw client: kubectl builds the exec URL from
    // the pod it read, whose namespace comes back masked): the recording's header names it masked
    const tls = await testTls();
    const out = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(
        `${t.gw.url.replace("https", "wss")}/api/v1/namespaces/ns-${SSN}/pods/web-0/exec?command=cat&command=${encodeURIComponent(`/data/${SSN}`)}&stdout=true`,
        ["v5.channel.k8s.io"],
        { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, ca: tls.caPem },
      );
      let got = "";
      ws.on("message", (d: Buffer) => {
        if (d[0] === 1) got += d.subarray(1).toString();
      });
      ws.on("close", () => resolve(got));
      ws.on("error", reject);
    });
    expect(out).toContain("chart ok");
    for (let i = 0; i < 50; i++) {
      const casts = (await readdir(path.dirname(evidenceFile))).filter((f) => f.endsWith(".cast"));
      if (casts.length >= 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const both = await allFilesText(path.dirname(evidenceFile));
    expect(both).toMatch(/"namespace":"ns-\[MASKED:ssn\]/);
    expect(leaks(both)).toEqual([]);
  });

  it("a bearer token offered as a WebSocket subprotocol is never stored nor forwarded", async () => {
    const secret = "ws-subprotocol-secret-0123456789";
    const proto = `base64url.bearer.authorization.k8s.io.${Buffer.from(secret).toString("base64url")}`;
    const tls = await testTls();
    const open = (protocols: string[]) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(
          `${t.gw.url.replace("https", "wss")}/api/v1/namespaces/default/pods/web-0/exec?command=true&stdout=true`,
          protocols,
          { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, ca: tls.caPem },
        );
        ws.on("unexpected-response", (_q, r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        });
        ws.on("open", () => {
          ws.close();
          resolve(101);
        });
        ws.on("error", () => resolve(0));
      });
    expect(await open([proto, "v9.unknown.k8s.io"])).toBe(400);
    expect(await open([proto, "v5.channel.k8s.io"])).toBe(101);
    await new Promise((r) => setTimeout(r, 300));
    const stored = await allFilesText(path.dirname(evidenceFile));
    expect(stored).not.toContain(proto.slice(-20));
    expect(stored).not.toContain(secret);
    for (const r of sim.requests) expect(JSON.stringify(r)).not.toContain(proto.slice(-20));
    expect(logLines.join("\n")).not.toContain(proto.slice(-20));
  });

  it("the gateway's log holds no planted value", () => {
    expect(leaks(logLines.join("\n"))).toEqual([]);
  });
});
