/**
 * The unmasked relay (a response no mask can touch is streamed after its record is written):
 * multi-chunk and large bodies arrive intact, the record is still written before any byte and a
 * refused record still refuses the call, and an upstream that stalls or fails mid-body ends the
 * response abnormally (never as a clean, truncated answer).
 */
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord, EvidenceSink, Masker } from "../gateway/ports.ts";
import {
  AGENT_TOKEN,
  call,
  plantedMasker,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testTls,
  upstreamFor,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-relay";
/** the planted masker, but reporting that nothing in the policy can touch any response */
const untouched = (): Masker => ({ ...plantedMasker(), appliesTo: () => false });
const BIG = Buffer.alloc(4 * 1024 * 1024, "a");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      async (r, res) => {
        if (r.url !== "/api/v1/namespaces/default/configmaps/chunked") return false;
        // several writes, apart in time: the relay coalesces per event-loop turn, never waits for the end
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"kind":"ConfigMap",');
        await sleep(20);
        res.write('"data":{"a":"1",');
        await sleep(20);
        res.end('"b":"2"}}');
        return true;
      },
      (r, res) => {
        if (!r.url.startsWith("/api/v1/namespaces/default/configmaps/small")) return false;
        const body = JSON.stringify({ kind: "ConfigMap", data: { n: r.url.slice(-3) } });
        res.writeHead(200, { "content-type": "application/json", "content-length": String(body.length) });
        res.end(body);
        return true;
      },
      (r, res) => {
        if (r.url !== "/api/v1/namespaces/default/configmaps/big") return false;
        res.writeHead(200, { "content-type": "text/plain", "content-length": String(BIG.length) });
        res.end(BIG);
        return true;
      },
      (r, res) => {
        if (r.url !== "/api/v1/namespaces/default/configmaps/stall") return false;
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"kind":"ConfigMap"'); // ...and never the rest
        return true;
      },
      (r, res) => {
        if (r.url !== "/api/v1/namespaces/default/configmaps/reset") return false;
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"kind":"ConfigMap"', () => setTimeout(() => res.destroy(), 20));
        return true;
      },
    ],
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN, 500), {
    maskerFactory: untouched,
  });
});

afterAll(async () => {
  await t.close();
  await up.close();
});

/** GET through the gateway; resolves with the body, or with the error that ended the response */
async function get(path: string): Promise<{ status: number; body: Buffer; error?: string }> {
  const tls = await testTls();
  const u = new URL(t.gw.url);
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        ca: tls.caPem,
        agent: false,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", (e) =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error: e.message }),
        );
        res.on("aborted", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error: "aborted" }),
        );
      },
    );
    req.on("error", (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
    req.end();
  });
}

async function lastRecord(): Promise<EvidenceRecord> {
  return (await t.records()).pop()!;
}

describe("unmasked relay", () => {
  it("relays a body written in several chunks, intact, with one record", async () => {
    const r = await get("/api/v1/namespaces/default/configmaps/chunked");
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({ kind: "ConfigMap", data: { a: "1", b: "2" } });
    const rec = await lastRecord();
    expect(rec.objectRef?.name).toBe("chunked");
    expect(rec.responseStatus.code).toBe(200);
  });

  it("relays small bodies that arrived whole, intact, on a reused connection, one record each", async () => {
    const before = (await t.records()).length;
    const tls = await testTls();
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: tls.caPem });
    try {
      const u = new URL(t.gw.url);
      for (const n of ["001", "002", "003"]) {
        const r = await new Promise<{ status: number; body: string; length?: string | undefined }>((resolve, reject) => {
          https
            .get(
              {
                host: u.hostname,
                port: u.port,
                path: `/api/v1/namespaces/default/configmaps/small-${n}`,
                agent,
                headers: { authorization: `Bearer ${AGENT_TOKEN}` },
              },
              (res) => {
                let body = "";
                res.setEncoding("utf8");
                res.on("data", (c: string) => {
                  body += c;
                });
                res.on("end", () =>
                  resolve({ status: res.statusCode ?? 0, body, length: res.headers["content-length"] }),
                );
              },
            )
            .on("error", reject);
        });
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body)).toEqual({ kind: "ConfigMap", data: { n } });
        expect(Number(r.length)).toBe(Buffer.byteLength(r.body));
      }
    } finally {
      agent.destroy();
    }
    expect((await t.records()).length).toBe(before + 3);
  });

  it("relays a 4 MiB body intact (backpressure towards a reading client)", async () => {
    const r = await get("/api/v1/namespaces/default/configmaps/big");
    expect(r.error).toBeUndefined();
    expect(r.body.length).toBe(BIG.length);
    expect(r.body.equals(BIG)).toBe(true);
  });

  it("ends the response abnormally when the upstream stalls mid-body", async () => {
    const r = await get("/api/v1/namespaces/default/configmaps/stall");
    expect(r.error).toBeDefined();
    expect(r.body.length).toBeLessThan(1000);
    expect((await lastRecord()).objectRef?.name).toBe("stall");
  });

  it("ends the response abnormally when the upstream resets mid-body", async () => {
    const r = await get("/api/v1/namespaces/default/configmaps/reset");
    expect(r.error).toBeDefined();
    expect(r.body.length).toBeLessThan(1000);
  });
});

describe("unmasked relay, evidence refused", () => {
  it("refuses the call with 503 and relays no byte of the body", async () => {
    let attempts = 0;
    const failing: EvidenceSink = {
      append: async () => {
        attempts++;
        throw new Error("disk full");
      },
      appendArtifact: async () => {},
      close: async () => {},
    };
    const g = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN), {
      sink: failing,
      maskerFactory: untouched,
    });
    try {
      const r = await call(g.gw.url, "GET", "/api/v1/namespaces/default/configmaps/chunked", {
        token: AGENT_TOKEN,
      });
      expect(r.status).toBe(503);
      expect(r.body).not.toContain("ConfigMap");
      expect(attempts).toBe(1);
    } finally {
      await g.close();
    }
  });
});
