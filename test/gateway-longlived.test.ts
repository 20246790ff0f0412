/**
 * Long-lived calls: watches, `logs -f`, exec and port-forward sessions against clients that do
 * not read (backpressure: the gateway holds a bounded amount of a fast upstream), clients that go
 * away (the upstream is released), and many streams at once (other agents are still served).
 */
import http2 from "node:http2";
import https from "node:https";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Route } from "./gateway-helpers.ts";
import {
  AGENT_TOKEN,
  SRC,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testPolicy,
  testTls,
  upstreamFor,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-longlived";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** what a flooding upstream route managed to hand to its socket */
interface Flood {
  sent: number;
  done: boolean;
  /** the upstream's response closed (the gateway released it, or it ended) */
  closed: boolean;
}
const floods = new Map<string, Flood>();

/** an upstream stream that writes `total` bytes as fast as its socket takes them */
function floodRoute(prefix: string, contentType: string, unit: (i: number) => string, total: number): Route {
  return async (r, res) => {
    if (!r.url.startsWith(prefix)) return false;
    const f: Flood = { sent: 0, done: false, closed: false };
    floods.set(prefix, f);
    res.writeHead(200, { "content-type": contentType });
    res.on("close", () => {
      f.closed = true;
    });
    for (let i = 0; f.sent < total && !f.closed; i++) {
      const chunk = unit(i);
      f.sent += Buffer.byteLength(chunk);
      if (!res.write(chunk))
        await new Promise<void>((ok) => {
          const go = () => {
            res.off("drain", go).off("close", go);
            ok();
          };
          res.on("drain", go).on("close", go);
        });
    }
    f.done = f.sent >= total;
    res.end();
    return true;
  };
}

const FILLER = "x".repeat(256 * 1024);
const EVENT = (i: number) =>
  `${JSON.stringify({ type: "ADDED", object: { kind: "ConfigMap", metadata: { name: `cm-${i}` }, data: { v: FILLER } } })}\n`;
const LOGLINE = (i: number) => `line ${i} ${FILLER}\n`;
/** far more than the kernel's socket buffers hold (a stalled flood stops at ~10 MiB on loopback) */
const TOTAL = 48 * 1024 * 1024;

/** the upstream responses of the gzip routes, by prefix: closed yet? */
const gz = new Map<string, { closed: boolean }>();

/**
 * A gzip-encoded stream (a compressing proxy in front of the API server): one unit, flushed,
 * then held open ("open") or the connection reset ("reset").
 */
function gzipRoute(prefix: string, then: "open" | "reset"): Route {
  return (r, res) => {
    if (!r.url.startsWith(prefix)) return false;
    const state = { closed: false };
    gz.set(prefix, state);
    res.on("close", () => {
      state.closed = true;
    });
    const log = prefix.endsWith("/log");
    res.writeHead(200, {
      "content-type": log ? "text/plain" : "application/json",
      "content-encoding": "gzip",
    });
    const z = zlib.createGzip();
    z.pipe(res);
    const big = prefix.includes("gz-big");
    z.write(log ? "line 1\n" : big ? `{"items":["${"x".repeat(2 * 1024 * 1024)}` : EVENT(1), () =>
      z.flush(() => {
        if (then === "reset") setTimeout(() => res.socket?.destroy(), 100);
      }),
    );
    return true;
  };
}

/** the upstream's side of the quiet watches */
const quiet: import("node:http").ServerResponse[] = [];

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      floodRoute("/api/v1/namespaces/default/configmaps?watch=1", "application/json", EVENT, TOTAL),
      floodRoute("/api/v1/namespaces/h2/configmaps?watch=1", "application/json", EVENT, TOTAL),
      floodRoute("/api/v1/namespaces/default/pods/web-0/log", "text/plain", LOGLINE, TOTAL),
      gzipRoute("/api/v1/namespaces/gz-open/configmaps?watch=1", "open"),
      gzipRoute("/api/v1/namespaces/gz-reset/configmaps?watch=1", "reset"),
      gzipRoute("/api/v1/namespaces/default/pods/gz-open/log", "open"),
      gzipRoute("/api/v1/namespaces/default/pods/gz-reset/log", "reset"),
      gzipRoute("/api/v1/namespaces/gz-big/configmaps", "open"),
      (r, res) => {
        // a quiet watch: the head, then nothing (an informer between events)
        if (!r.url.startsWith("/api/v1/namespaces/quiet/configmaps?watch=1")) return false;
        quiet.push(res);
        res.writeHead(200, { "content-type": "application/json" });
        res.flushHeaders();
        return true;
      },
      (r, res) => {
        // a big event, then one the masker cannot read ("mask") or a reset connection ("reset")
        const m = /^\/api\/v1\/namespaces\/last-error-(mask|reset)\/configmaps\?watch=1/.exec(r.url);
        if (!m) return false;
        res.writeHead(200, { "content-type": "application/json" });
        const big = `${JSON.stringify({ type: "ADDED", object: { kind: "ConfigMap", metadata: { name: "big" }, data: { v: "z".repeat(8 * 1024 * 1024) } } })}\n`;
        if (m[1] === "mask") res.write(`${big}{"type":"ADDED","object":{not json}\n`);
        else res.write(big, () => setTimeout(() => res.socket?.destroy(), 20));
        return true;
      },
      (r, res) => {
        // a quiet log stream: one line and the start of the next, then nothing (`logs -f` of an idle pod)
        if (!r.url.startsWith("/api/v1/namespaces/default/pods/quiet-log/log")) return false;
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("line 1\nline 2 in progr");
        return true;
      },
      (r, res) => {
        if (r.method !== "POST" || r.url !== "/api/v1/namespaces/default/configmaps") return false;
        res.writeHead(201, { "content-type": "application/json" });
        res.end(r.body);
        return true;
      },
    ],
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN, 2000), {
    limits: { maxResponseBytes: 1024 * 1024 },
  });
  sessionUpstream();
});

afterAll(async () => {
  await t.close();
  await up.close();
});

/** wait until the flood is done or has made no progress for `quietMs` */
async function settle(prefix: string, quietMs = 600): Promise<Flood> {
  for (let i = 0; i < 200 && !floods.has(prefix); i++) await sleep(10);
  const f = floods.get(prefix)!;
  let last = -1;
  while (!f.done && f.sent !== last) {
    last = f.sent;
    await sleep(quietMs);
  }
  return f;
}

describe("a client that does not read its stream (backpressure)", () => {
  for (const [what, path, prefix] of [
    [
      "watch",
      "/api/v1/namespaces/default/configmaps?watch=1",
      "/api/v1/namespaces/default/configmaps?watch=1",
    ],
    [
      "logs -f",
      "/api/v1/namespaces/default/pods/web-0/log?follow=true",
      "/api/v1/namespaces/default/pods/web-0/log",
    ],
  ] as const)
    it(`${what} over HTTP/1.1: the upstream is paused, not buffered without bound; everything arrives once read`, async () => {
      const { res } = await open(path);
      expect(res.statusCode).toBe(200);
      // the client reads nothing: the upstream must stall well before its 48 MiB are through
      const f = await settle(prefix);
      expect(f.done).toBe(false);
      expect(f.sent).toBeLessThan((TOTAL * 3) / 4);
      // then it reads: every unit arrives, in order, and the record says the upstream ended it
      let bytes = 0;
      let lines = 0;
      await new Promise<void>((resolve) => {
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
        });
        res.on("end", resolve);
      });
      expect(floods.get(prefix)!.done).toBe(true);
      expect(lines).toBe(Math.ceil(TOTAL / Buffer.byteLength(what === "watch" ? EVENT(0) : LOGLINE(0))));
      expect(bytes).toBeGreaterThan(TOTAL);
      const rec = (await t.records()).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe("upstream-end");
    });

  it("watch over HTTP/2 (flow control): paused while the window is closed, everything arrives once read", async () => {
    const { session, stream } = await pausedH2Watch("/api/v1/namespaces/h2/configmaps?watch=1&n=read");
    try {
      const f = await settle("/api/v1/namespaces/h2/configmaps?watch=1");
      expect(f.done).toBe(false);
      let lines = 0;
      stream.on("data", (c: Buffer) => {
        for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
      });
      stream.resume();
      await new Promise<void>((resolve) => stream.on("end", () => resolve()));
      expect(f.done).toBe(true);
      expect(lines).toBe(Math.ceil(TOTAL / Buffer.byteLength(EVENT(0))));
    } finally {
      session.destroy();
    }
  });

  it("watch over HTTP/2 (flow control): the upstream is paused, not buffered without bound", async () => {
    const { session, stream, headers } = await pausedH2Watch("/api/v1/namespaces/h2/configmaps?watch=1");
    try {
      expect(headers[":status"]).toBe(200);
      const f = await settle("/api/v1/namespaces/h2/configmaps?watch=1");
      expect(f.done).toBe(false);
      expect(f.sent).toBeLessThan((TOTAL * 3) / 4);
      // RST_STREAM from the client: the upstream stream is released
      stream.close(http2.constants.NGHTTP2_CANCEL);
      for (let i = 0; i < 100 && !f.closed; i++) await sleep(20);
      expect(f.closed).toBe(true);
      expect(f.done).toBe(false);
      await sleep(50);
      const rec = (await t.records()).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe("client-closed");
    } finally {
      session.destroy();
    }
  });
});

/**
 * GET a watch as the agent over HTTP/2, on a session of its own; resolves at the response head
 * with the stream paused (the caller reads, or not, and destroys the session)
 */
async function pausedH2Watch(path: string): Promise<{
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  headers: http2.IncomingHttpHeaders;
}> {
  const tls = await testTls();
  const session = http2.connect(t.gw.url, { ca: tls.caPem });
  const stream = session.request({ ":path": path, authorization: `Bearer ${AGENT_TOKEN}` });
  const headers = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once("response", r));
  stream.pause();
  return { session, stream, headers };
}

/** GET a stream as the agent (from the gateway at `base`); resolves at the response head */
async function open(
  path: string,
  base = t.gw.url,
): Promise<{ res: import("node:http").IncomingMessage; req: import("node:http").ClientRequest }> {
  const tls = await testTls();
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        ca: tls.caPem,
        agent: false,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      },
      (res) => resolve({ res, req }),
    );
    req.on("error", reject);
    req.end();
  });
}

describe("compressed streams (a gzip-encoding upstream)", () => {
  for (const [what, base] of [
    ["watch", "/api/v1/namespaces/gz-%/configmaps?watch=1"],
    ["logs -f", "/api/v1/namespaces/default/pods/gz-%/log"],
  ] as const) {
    it(`${what}: a client that goes away releases the upstream`, async () => {
      const prefix = base.replace("%", "open");
      const { res, req } = await open(prefix + (what === "watch" ? "" : "?follow=true"));
      expect(res.statusCode).toBe(200);
      await new Promise((r) => res.once("data", r));
      req.destroy();
      for (let i = 0; i < 100 && !gz.get(prefix)!.closed; i++) await sleep(20);
      expect(gz.get(prefix)!.closed).toBe(true);
      await sleep(50);
      const rec = (await t.records()).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe("client-closed");
    });

    it(`${what}: an upstream reset mid-stream ends the client's stream abnormally (never a hang), recorded`, async () => {
      const prefix = base.replace("%", "reset");
      const { res } = await open(prefix + (what === "watch" ? "" : "?follow=true"));
      expect(res.statusCode).toBe(200);
      const ended = await new Promise<string>((resolve) => {
        res.on("data", () => {});
        res.on("end", () => resolve("end"));
        res.on("error", () => resolve("error"));
        res.on("aborted", () => resolve("aborted"));
        setTimeout(() => resolve("hang"), 2000);
      });
      expect(ended).not.toBe("hang");
      expect(ended).not.toBe("end");
      await sleep(50);
      const rec = (await t.records()).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe("upstream-error");
    });
  }
});

describe("a watch that fails mid-stream behind a full socket", () => {
  for (const [what, ns, reason] of [
    ["an event the masker cannot read", "last-error-mask", "mask-error"],
    ["an upstream reset", "last-error-reset", "upstream-error"],
  ] as const)
    it(`${what}: the ERROR event saying why still reaches the client, then the stream ends abnormally`, async () => {
      const { res } = await open(`/api/v1/namespaces/${ns}/configmaps?watch=1`);
      expect(res.statusCode).toBe(200);
      let body = "";
      const ended = await new Promise<string>((resolve) => {
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve("end"));
        res.on("error", () => resolve("error"));
        res.on("aborted", () => resolve("aborted"));
        setTimeout(() => resolve("hang"), 5000);
      });
      expect(ended).not.toBe("hang");
      expect(ended).not.toBe("end");
      const lines = body.split("\n").filter((l) => l !== "");
      expect(lines.length).toBe(2);
      expect(JSON.parse(lines[0]!).object.metadata.name).toBe("big");
      const last = JSON.parse(lines[1]!);
      expect(last.type).toBe("ERROR");
      expect(last.object.kind).toBe("Status");
      expect(last.object.code).toBe(502);
      await sleep(50);
      const rec = (await t.records()).pop()!;
      expect(rec.annotations?.["custos.dev/stream-end"]).toBe(reason);
    });
});

describe("compressed bodies (a gzip-encoding upstream)", () => {
  it("a body over the size cap is refused with 502 and its upstream connection released", async () => {
    const { res } = await open("/api/v1/namespaces/gz-big/configmaps");
    expect(res.statusCode).toBe(502);
    const body = await new Promise<string>((r) => {
      let b = "";
      res.on("data", (c: Buffer) => {
        b += c.toString();
      });
      res.on("end", () => r(b));
    });
    expect(JSON.parse(body).message).toContain("exceeded");
    const prefix = "/api/v1/namespaces/gz-big/configmaps";
    for (let i = 0; i < 100 && !gz.get(prefix)!.closed; i++) await sleep(20);
    expect(gz.get(prefix)!.closed).toBe(true);
  });
});

describe("many agents watching at once", () => {
  it("300 open watches do not starve other calls: a create is still answered by the upstream", async () => {
    const tls = await testTls();
    const session = http2.connect(t.gw.url, { ca: tls.caPem });
    try {
      const N = 300;
      const streams: http2.ClientHttp2Stream[] = [];
      for (let i = 0; i < N; i++) {
        const s = session.request({
          ":path": `/api/v1/namespaces/quiet/configmaps?watch=1&n=${i}`,
          authorization: `Bearer ${AGENT_TOKEN}`,
        });
        s.on("error", () => {});
        streams.push(s);
      }
      for (let i = 0; i < 250 && quiet.length < N; i++) await sleep(20);
      // (a watch queued behind the others would only reach the upstream once one ends)
      expect(quiet.length).toBe(N);
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({
          ":method": "POST",
          ":path": "/api/v1/namespaces/default/configmaps",
          authorization: `Bearer ${AGENT_TOKEN}`,
          "content-type": "application/json",
        });
        let status = 0;
        let body = "";
        s.on("response", (h) => {
          status = Number(h[":status"]);
        });
        s.on("data", (c: Buffer) => {
          body += c.toString();
        });
        s.on("end", () => resolve({ status, body }));
        s.on("error", reject);
        s.end(JSON.stringify({ kind: "ConfigMap", apiVersion: "v1", metadata: { name: "after-300" } }));
      });
      expect(r.status).toBe(201);
      expect(JSON.parse(r.body).metadata.name).toBe("after-300");
      for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
      // every watch the clients left is released upstream
      for (
        let i = 0;
        i < 150 && quiet.some((q) => !q.destroyed && !q.writableEnded && !q.socket?.destroyed);
        i++
      )
        await sleep(20);
      expect(quiet.filter((q) => !q.socket?.destroyed).length).toBe(0);
    } finally {
      session.destroy();
    }
  });
});

/** the upstream's side of a session, flooding the client: how much its socket took */
interface WsFlood extends Flood {
  ws: WebSocket;
}
const wsFloods = new Map<string, WsFlood>();
let slowUpstream: WebSocket | undefined;

/** the upstream's session ends: flooding ("flood-*" pods) or not reading ("slow-pf") */
function sessionUpstream(): void {
  up.wss.on("connection", (ws: WebSocket, req: import("node:http").IncomingMessage) => {
    const pod = /pods\/([^/]+)\//.exec(req.url ?? "")?.[1] ?? "";
    if (pod === "slow-pf") {
      // a port the pod does not read from yet
      ws.pause();
      slowUpstream = ws;
      return;
    }
    if (!pod.startsWith("flood-")) return;
    const f: WsFlood = { sent: 0, done: false, closed: false, ws };
    wsFloods.set(pod, f);
    ws.on("close", () => {
      f.closed = true;
    });
    // stdout lines (exec) or data on the first port's data channel (port-forward)
    const frame = Buffer.from(`\x01${"y".repeat(64 * 1024 - 2)}\n`);
    const next = () => {
      if (f.closed || ws.readyState !== WebSocket.OPEN) return;
      if (f.sent >= TOTAL) {
        f.done = true;
        ws.close(1000);
        return;
      }
      f.sent += frame.length;
      // the next frame once this one is in the socket (never more than the socket takes)
      ws.send(frame, { binary: true }, next);
    };
    next();
  });
}

describe("a session client that does not read (exec stdout, port-forward)", () => {
  for (const [what, sub, protocol] of [
    ["exec", "exec?command=cat&container=main&stdout=true", "v5.channel.k8s.io"],
    ["port-forward", "portforward?ports=8080", "v4.channel.k8s.io"],
  ] as const)
    it(`${what}: the upstream is paused, not buffered without bound; everything arrives once read`, async () => {
      const pod = `flood-${what}`;
      const u = new URL(t.gw.url);
      const ws = new WebSocket(`wss://${u.host}/api/v1/namespaces/default/pods/${pod}/${sub}`, [protocol], {
        ca: t.gw.caPem,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      });
      let bytes = 0;
      ws.on("message", (d: Buffer) => {
        bytes += d.length;
      });
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      ws.pause();
      for (let i = 0; i < 200 && !wsFloods.has(pod); i++) await sleep(10);
      const f = wsFloods.get(pod)!;
      let last = -1;
      while (!f.done && f.sent !== last) {
        last = f.sent;
        await sleep(600);
      }
      expect(f.done).toBe(false);
      expect(f.sent).toBeLessThan((TOTAL * 3) / 4);
      ws.resume();
      await new Promise<void>((resolve) => ws.once("close", () => resolve()));
      expect(f.done).toBe(true);
      expect(bytes).toBe(TOTAL);
      await sleep(50);
      const rec = (await t.records()).pop()!;
      expect(rec.objectRef?.name).toBe(pod);
      expect(rec.custos.bytes?.out).toBe(TOTAL);
    });
});

describe("a session upstream that does not read (port-forward into a busy pod)", () => {
  it("the client is paused, not buffered without bound; everything arrives once read", async () => {
    const u = new URL(t.gw.url);
    const ws = new WebSocket(
      `wss://${u.host}/api/v1/namespaces/default/pods/slow-pf/portforward?ports=8080`,
      ["v4.channel.k8s.io"],
      { ca: t.gw.caPem, headers: { authorization: `Bearer ${AGENT_TOKEN}` } },
    );
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const f: Flood = { sent: 0, done: false, closed: false };
    const frame = Buffer.alloc(64 * 1024, 1);
    const next = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (f.sent >= TOTAL) {
        f.done = true;
        return;
      }
      f.sent += frame.length;
      ws.send(frame, { binary: true }, next);
    };
    next();
    let last = -1;
    while (!f.done && f.sent !== last) {
      last = f.sent;
      await sleep(600);
    }
    expect(f.done).toBe(false);
    expect(f.sent).toBeLessThan((TOTAL * 3) / 4);
    let got = 0;
    slowUpstream!.on("message", (d: Buffer) => {
      got += d.length;
    });
    slowUpstream!.resume();
    for (let i = 0; i < 500 && got < TOTAL; i++) await sleep(20);
    expect(got).toBe(TOTAL);
    ws.close(1000);
    await new Promise<void>((resolve) => ws.once("close", () => resolve()));
  });
});

describe("idle connections (no call in flight)", () => {
  it("are closed after idleConnectionMs: an HTTP/2 session without streams, a TLS connection that never sends a request; a quiet watch is not", async () => {
    const tls = await testTls();
    const g = await startTestGateway(upstreamFor(up.url, tls.caPem, UPSTREAM_TOKEN, 2000), {
      limits: { idleConnectionMs: 300 },
    });
    const u = new URL(g.gw.url);
    const closedWithin = (e: { once(ev: "close", f: () => void): unknown }, ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        e.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    try {
      // an HTTP/2 session that opens no stream
      const idle = http2.connect(g.gw.url, { ca: tls.caPem });
      idle.on("error", () => {});
      // a TLS connection (HTTP/1.1) that never sends a request
      const { connect } = await import("node:tls");
      const raw = connect({
        host: u.hostname,
        port: Number(u.port),
        ca: tls.caPem,
        ALPNProtocols: ["http/1.1"],
      });
      raw.on("error", () => {});
      // a quiet watch on its own session: kept for as long as it lasts
      const busy = http2.connect(g.gw.url, { ca: tls.caPem });
      busy.on("error", () => {});
      const w = busy.request({
        ":path": "/api/v1/namespaces/quiet/configmaps?watch=1&n=idle",
        authorization: `Bearer ${AGENT_TOKEN}`,
      });
      w.on("error", () => {});
      // ... and one over HTTP/1.1
      const h1 = https.request({
        host: u.hostname,
        port: u.port,
        path: "/api/v1/namespaces/quiet/configmaps?watch=1&n=idle-h1",
        ca: tls.caPem,
        agent: false,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      });
      h1.on("error", () => {});
      h1.end();
      const h1Closed = new Promise<boolean>((resolve) => {
        h1.on("response", (res) => {
          res.resume();
          const timer = setTimeout(() => resolve(false), 1500);
          res.once("close", () => {
            clearTimeout(timer);
            resolve(true);
          });
        });
      });
      const busyClosed = closedWithin(busy, 1500);
      const [a, b] = await Promise.all([closedWithin(idle, 1500), closedWithin(raw, 1500)]);
      expect(a).toBe(true);
      expect(b).toBe(true);
      expect(await busyClosed).toBe(false);
      expect(await h1Closed).toBe(false);
      h1.destroy();
      // the watch ends: its session is idle from then on
      w.close(http2.constants.NGHTTP2_CANCEL);
      expect(await closedWithin(busy, 1500)).toBe(true);
    } finally {
      await g.close();
    }
  });
});

describe("a policy reload and the streams opened before it", () => {
  it("ends open watches and log streams cleanly (recorded with the new policyHash); sessions go on, recorded under the old one", async () => {
    const tls = await testTls();
    const g = await startTestGateway(upstreamFor(up.url, tls.caPem, UPSTREAM_TOKEN, 2000));
    const get = async (path: string) => (await open(path, g.gw.url)).res;
    /** how the response ended, and what it carried */
    const ending = (res: import("node:http").IncomingMessage) =>
      new Promise<{ how: string; body: string }>((resolve) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ how: "end", body }));
        res.on("error", () => resolve({ how: "error", body }));
        res.on("aborted", () => resolve({ how: "aborted", body }));
        setTimeout(() => resolve({ how: "still open", body }), 2000);
      });
    try {
      const oldHash = g.gw.config().policyHash;
      const watch = await get("/api/v1/namespaces/quiet/configmaps?watch=1&n=reload");
      const logs = await get("/api/v1/namespaces/default/pods/quiet-log/log?follow=true");
      expect(watch.statusCode).toBe(200);
      expect(logs.statusCode).toBe(200);
      const ws = new WebSocket(
        `wss://${new URL(g.gw.url).host}/api/v1/namespaces/default/pods/hold-exec/exec?command=sh&container=main&stdout=true`,
        ["v5.channel.k8s.io"],
        { ca: tls.caPem, headers: { authorization: `Bearer ${AGENT_TOKEN}` } },
      );
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      const watchEnd = ending(watch);
      const logsEnd = ending(logs);
      await sleep(100);
      // the same policy again (same hash): nothing ends
      await g.gw.reload(testPolicy());
      await sleep(100);
      expect(watch.complete).toBe(false);
      const next = testPolicy([
        {
          id: "no-widgets",
          decision: "deny",
          enforcement: "enforce",
          source: SRC,
          reason: "a new rule",
          match: { resources: ["widgets"] },
        },
      ]);
      const { newPolicyHash } = await g.gw.reload(next);
      expect(newPolicyHash).not.toBe(oldHash);
      const [w, l] = await Promise.all([watchEnd, logsEnd]);
      expect(w.how).toBe("end");
      expect(l).toEqual({ how: "end", body: "line 1\n" });
      // the session is still open
      await sleep(100);
      expect(ws.readyState).toBe(WebSocket.OPEN);
      ws.close(1000);
      await new Promise<void>((resolve) => ws.once("close", () => resolve()));
      await sleep(100);
      const recs = (await g.records()).filter((r) => r.custos.type === "call");
      const byName = (name: string) => recs.find((r) => r.requestURI?.includes(name));
      for (const r of [byName("n=reload"), byName("quiet-log")]) {
        expect(r?.annotations?.["custos.dev/stream-end"]).toBe("policy-reload");
        expect(r?.annotations?.["custos.dev/ended-by-reload"]).toBe(newPolicyHash);
      }
      const session = byName("hold-exec");
      expect(session?.annotations?.["custos.dev/continued-under-policy"]).toBe(oldHash);
      expect(session?.annotations?.["custos.dev/policy-reloaded-to"]).toBe(newPolicyHash);
    } finally {
      await g.close();
    }
  });
});

describe("a session client that vanished without a FIN (a laptop that sleeps)", () => {
  it("is pinged; with no pong within the next interval both sides are closed and the end recorded", async () => {
    const tls = await testTls();
    const g = await startTestGateway(upstreamFor(up.url, tls.caPem, UPSTREAM_TOKEN, 2000), {
      limits: { sessionPingMs: 150 },
    });
    const u = new URL(g.gw.url);
    let upstreamSide: WebSocket | undefined;
    const seen = (ws: WebSocket, req: import("node:http").IncomingMessage) => {
      if ((req.url ?? "").includes("/pods/asleep-")) upstreamSide = ws;
    };
    up.wss.on("connection", seen);
    const open = (pod: string, autoPong: boolean) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(
          `wss://${u.host}/api/v1/namespaces/default/pods/${pod}/exec?command=sh&container=main&stdout=true`,
          ["v5.channel.k8s.io"],
          { ca: tls.caPem, headers: { authorization: `Bearer ${AGENT_TOKEN}` }, autoPong },
        );
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    try {
      // a client that answers pings stays connected across several intervals
      const awake = await open("awake-0", true);
      let pings = 0;
      awake.on("ping", () => pings++);
      await sleep(700);
      expect(pings).toBeGreaterThanOrEqual(2);
      expect(awake.readyState).toBe(WebSocket.OPEN);
      awake.close(1000);
      // a client that never answers (its socket is open but nobody is there)
      const asleep = await open("asleep-0", false);
      const closed = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        asleep.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      for (let i = 0; i < 50 && !upstreamSide; i++) await sleep(10);
      const upstreamClosed = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        upstreamSide!.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      expect(await upstreamClosed).toBe(true);
      expect(await closed).toBe(true);
      await sleep(100);
      const rec = (await g.records()).filter((r) => r.custos.type === "call").pop()!;
      expect(rec.objectRef?.name).toBe("asleep-0");
      expect(rec.annotations?.["custos.dev/session-end"]).toBe("client-unresponsive");
    } finally {
      up.wss.off("connection", seen);
      await g.close();
    }
  });
});

describe("port-forward records", () => {
  it("say the bytes were relayed unmasked by design (opaque); exec records do not", async () => {
    const u = new URL(t.gw.url);
    const session = async (pod: string, sub: string, protocol: string) => {
      const ws = new WebSocket(`wss://${u.host}/api/v1/namespaces/default/pods/${pod}/${sub}`, [protocol], {
        ca: t.gw.caPem,
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      });
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      ws.close(1000);
      await new Promise<void>((resolve) => ws.once("close", () => resolve()));
      await sleep(100);
      return (await t.records()).filter((r) => r.custos.type === "call" && r.objectRef?.name === pod).pop()!;
    };
    const pf = await session("opaque-pf", "portforward?ports=8080", "v4.channel.k8s.io");
    expect(pf.annotations?.["custos.dev/unmasked"]).toBe("port-forward bytes are opaque");
    const exec = await session(
      "masked-exec",
      "exec?command=sh&container=main&stdout=true",
      "v5.channel.k8s.io",
    );
    expect(exec.annotations?.["custos.dev/unmasked"]).toBeUndefined();
  });
});
