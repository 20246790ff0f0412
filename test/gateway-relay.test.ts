/**
 * The unmasked relay (a response no mask can touch is streamed after its record is written):
 * multi-chunk and large bodies arrive intact, the record is still written before any byte and a
 * refused record still refuses the call, and an upstream that stalls or fails mid-body ends the
 * response abnormally (never as a clean, truncated answer).
 */
import https from "node:https";
import { createServer as tlsCreateServer } from "node:tls";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Upstream } from "../gateway/upstream/index.ts";
import type { EvidenceRecord, Masker } from "../gateway/ports.ts";
import {
  AGENT_TOKEN,
  call,
  kubeconfigYaml,
  plantedMasker,
  refusingSink,
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
        const r = await new Promise<{ status: number; body: string; length?: string | undefined }>(
          (resolve, reject) => {
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
          },
        );
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
    const failing = refusingSink();
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
      expect(failing.attempts).toBe(1);
    } finally {
      await g.close();
    }
  });
});

describe("malformed upstream HTTP (the lean client for plain GETs)", () => {
  it("502 for a malformed head or a body that fails before it is read; abnormal end after; the gateway stays up", async () => {
    const tlsM = await testTls();
    const LEAK = '{"x":"LEAK"}';
    const replies: Record<string, string> = {
      "bad-head": `HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n${LEAK}`,
      "bad-chunk": `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n${LEAK}XX0\r\n\r\n`,
      smuggled: `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 12\r\n\r\n${LEAK}`,
      "lf-only": `HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 12\n\n${LEAK}`,
      ok: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"kind":"Pod"}\n',
    };
    const seen: string[] = [];
    const srv = tlsServer(tlsM, (head, sock) => {
      seen.push(head);
      const name = /\/pods\/([\w-]+)/.exec(head)?.[1] ?? "";
      if (name === "cut") {
        // the head, part of the body, then the connection is reset
        sock.write(
          'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"kind":',
          () => setTimeout(() => sock.destroy(), 30),
        );
        return;
      }
      sock.write(replies[name] ?? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(srv.address() as import("node:net").AddressInfo).port}`;
    for (const masker of [untouched, plantedMasker]) {
      const g = await startTestGateway(upstreamFor(url, tlsM.caPem, UPSTREAM_TOKEN, 500), {
        maskerFactory: masker,
      });
      try {
        for (const name of ["bad-head", "bad-chunk", "smuggled", "lf-only"]) {
          const r = await call(g.gw.url, "GET", `/api/v1/namespaces/default/pods/${name}`, {
            token: AGENT_TOKEN,
          });
          expect(r.status, name).toBe(502);
          expect(r.body, name).not.toContain("LEAK");
          expect(r.body).not.toContain(UPSTREAM_TOKEN);
          expect((await g.records()).pop()!.responseStatus.code, name).toBe(502);
        }
        const cut = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/cut", {
          token: AGENT_TOKEN,
        }).catch((e: Error) => ({ status: 0, body: e.message }));
        // never a clean, truncated 200
        expect(cut.status === 200 && cut.body === '{"kind":').toBe(false);
        if (cut.status !== 0) expect(cut.status).toBe(502);
        const ok = await call(g.gw.url, "GET", "/api/v1/namespaces/default/pods/ok", { token: AGENT_TOKEN });
        expect(ok.status).toBe(200);
        expect(JSON.parse(ok.body)).toEqual({ kind: "Pod" });
      } finally {
        await g.close();
      }
    }
    // the upstream got the gateway's credential, never the agent's
    expect(seen.every((h) => h.includes(`authorization: Bearer ${UPSTREAM_TOKEN}`))).toBe(true);
    expect(seen.some((h) => h.includes(AGENT_TOKEN))).toBe(false);
    srv.close();
  });
});

/** a raw TLS server: `answer` is called with each request head (keep-alive connections) */
function tlsServer(
  m: { cert: string; key: string },
  answer: (head: string, sock: import("node:tls").TLSSocket) => void,
): import("node:tls").Server {
  return tlsCreateServer({ cert: m.cert, key: m.key }, (sock) => {
    sock.on("error", () => {});
    let buf = "";
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n\r\n"); i >= 0; i = buf.indexOf("\r\n\r\n")) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        answer(head, sock);
      }
    });
  });
}

describe("upstream.client: node (the escape hatch)", () => {
  it("relays plain GETs over https.request as before", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(
      kubeconfigYaml({ server: up.url, caPem: (await testTls()).caPem, token: UPSTREAM_TOKEN }),
    );
    const g = await startTestGateway(new Upstream(kc, { timeoutMs: 5000, client: "node" }), {
      maskerFactory: untouched,
    });
    try {
      for (const n of ["001", "002"]) {
        const r = await call(g.gw.url, "GET", `/api/v1/namespaces/default/configmaps/small-${n}`, {
          token: AGENT_TOKEN,
        });
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body)).toEqual({ kind: "ConfigMap", data: { n } });
      }
    } finally {
      await g.close();
    }
  });
});
