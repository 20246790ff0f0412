/**
 * Streams (watches, pod logs) and their evidence: the call is in the evidence before the
 * first event or log line reaches the client, and a stream whose call cannot be recorded
 * delivers nothing. Calls that change the cluster likewise: in the evidence before the API
 * server sees them (write-ahead), never forwarded when that cannot be written.
 */

import { readFileSync } from "node:fs";
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord } from "../gateway/ports.ts";
import {
  AGENT_TOKEN,
  call,
  refusingSink,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testTls,
  upstreamFor,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-streams";
const POD = { kind: "Pod", apiVersion: "v1", metadata: { name: "web-0", namespace: "default" } };

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let caPem: string;
/** called when the upstream receives a ConfigMap create, before it answers */
let onCreate: (() => void) | undefined;

beforeAll(async () => {
  caPem = (await testTls()).caPem;
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      (r, res) => {
        if (r.method !== "POST" || !r.url.startsWith("/api/v1/namespaces/default/configmaps")) return false;
        onCreate?.();
        res.writeHead(201, { "content-type": "application/json" });
        res.end(r.body);
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/pods?") || !r.url.includes("watch=true"))
          return false;
        res.writeHead(200, { "content-type": "application/json;stream=watch" });
        res.write(`${JSON.stringify({ type: "ADDED", object: POD })}\n`);
        setTimeout(() => res.end(`${JSON.stringify({ type: "MODIFIED", object: POD })}\n`), 300);
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/pods/web-0/log")) return false;
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("line 1\n");
        setTimeout(() => res.end("line 2\n"), 300);
        return true;
      },
    ],
  });
});
afterAll(() => up.close());

/** GET a stream as the agent; `onData` sees each chunk as it arrives; resolves with the status when it closes */
async function stream(t: TestGateway, path: string, onData: (c: Buffer) => void): Promise<number> {
  const u = new URL(t.gw.url);
  return new Promise<number>((resolve, reject) => {
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        ca: t.gw.caPem,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
        agent: false,
      },
      (res) => {
        res.on("data", onData);
        res.on("error", () => {});
        res.on("close", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const records = (t: TestGateway): EvidenceRecord[] =>
  readFileSync(t.evidenceFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as EvidenceRecord);

describe("stream evidence", () => {
  for (const [what, path] of [
    ["a watch", "/api/v1/namespaces/default/pods?watch=true"],
    ["a log stream", "/api/v1/namespaces/default/pods/web-0/log?follow=true"],
  ] as const) {
    it(`${what}: the call is in the evidence before its first byte reaches the client`, async () => {
      const t = await startTestGateway(upstreamFor(up.url, caPem, UPSTREAM_TOKEN));
      try {
        let atFirstByte: EvidenceRecord[] | undefined;
        const status = await stream(t, path, () => {
          atFirstByte ??= records(t);
        });
        expect(status).toBe(200);
        expect(atFirstByte).toBeDefined();
        expect(atFirstByte!.length).toBe(1);
        const opened = atFirstByte![0]!;
        expect(opened.stage).toBe("ResponseStarted");
        expect(opened.custos.type).toBe("session");
        // and the call's own record follows when the stream ends, under the same auditID
        const after = records(t);
        expect(after.length).toBe(2);
        expect(after[1]).toMatchObject({ auditID: opened.auditID, stage: "ResponseComplete" });
        expect(after[1]!.custos.type).toBe("call");
      } finally {
        await t.close();
      }
    });

    it(`${what}: nothing is delivered when the evidence sink refuses the call`, async () => {
      const failing = refusingSink();
      const t = await startTestGateway(upstreamFor(up.url, caPem, UPSTREAM_TOKEN), { sink: failing });
      try {
        const chunks: Buffer[] = [];
        const status = await stream(t, path, (c) => chunks.push(c));
        expect(status).toBe(503);
        const body = Buffer.concat(chunks).toString("utf8");
        expect(body).not.toContain("web-0");
        expect(body).not.toContain("line 1");
      } finally {
        await t.close();
      }
    });
  }
});

describe("write-ahead evidence for calls that change the cluster", () => {
  const cm = JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "cfg" },
    data: { a: "b" },
  });
  const create = (t: TestGateway) =>
    call(t.gw.url, "POST", "/api/v1/namespaces/default/configmaps", {
      token: AGENT_TOKEN,
      headers: { "content-type": "application/json" },
      body: cm,
    });

  it("a create is in the evidence (RequestReceived) before the API server sees it, then its call record", async () => {
    const t = await startTestGateway(upstreamFor(up.url, caPem, UPSTREAM_TOKEN));
    // what the evidence held when the upstream received the create
    let atUpstream: EvidenceRecord[] | undefined;
    onCreate = () => {
      atUpstream = records(t);
    };
    try {
      const r = await create(t);
      expect(r.status).toBe(201);
      expect(atUpstream?.map((x) => `${x.custos.type}:${x.stage}`)).toEqual(["session:RequestReceived"]);
      const all = records(t);
      expect(all.map((x) => `${x.custos.type}:${x.stage}`)).toEqual([
        "session:RequestReceived",
        "call:ResponseComplete",
      ]);
      expect(all[0]!.auditID).toBe(all[1]!.auditID);
      expect(all[0]!.annotations?.["custos.dev/session"]).toBe("received");
      expect(all[0]!.objectRef).toMatchObject({ resource: "configmaps", namespace: "default" });
      // reads are not written ahead
      await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods/web-0", { token: AGENT_TOKEN });
      expect(
        records(t)
          .slice(2)
          .map((x) => x.custos.type),
      ).toEqual(["call"]);
    } finally {
      onCreate = undefined;
      await t.close();
    }
  });

  it("a create whose write-ahead record is refused never reaches the API server", async () => {
    const failing = refusingSink();
    const t = await startTestGateway(upstreamFor(up.url, caPem, UPSTREAM_TOKEN), { sink: failing });
    const seen = up.seen.length;
    try {
      const r = await create(t);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).details.causes[0].reason).toBe("custos.dev/EVIDENCE_UNAVAILABLE");
      expect(up.seen.slice(seen).filter((x) => x.method === "POST")).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
