/**
 * Streams (watches, pod logs) and their evidence: the call is in the evidence before the
 * first event or log line reaches the client, and a stream whose call cannot be recorded
 * delivers nothing.
 */
import https from "node:https";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord, EvidenceSink } from "../gateway/ports.ts";
import {
  AGENT_TOKEN,
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

beforeAll(async () => {
  caPem = (await testTls()).caPem;
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
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
      const failing: EvidenceSink = {
        append: async () => {
          throw new Error("disk full");
        },
        appendArtifact: async () => {},
        close: async () => {},
      };
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
