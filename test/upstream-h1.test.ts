/**
 * The lean upstream client: the strict HTTP/1.1 response parser (framing by Content-Length,
 * chunked and connection close; every malformed form refused), fed whole and split at every
 * byte, and the connection pool (keep-alive reuse, a stale connection retried once, a
 * connection dropped after anything unexpected, 504 / 502 before the head, an abnormal end after it).
 */
import net from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { type H1Head, H1ParseError, H1ResponseParser } from "../gateway/upstream/h1parse.ts";
import { H1Pool, type H1RequestOptions, type LeanResponse } from "../gateway/upstream/h1pool.ts";

interface Parsed {
  head?: H1Head;
  heads: number;
  body: Buffer;
  complete: boolean;
  rest?: Buffer;
  error?: string;
}

/** feed the pieces in order (then EOF when eof), collecting what the parser reports */
function parse(pieces: Buffer[], o: { noBody?: boolean; eof?: boolean } = {}): Parsed {
  const out: Parsed = { heads: 0, body: Buffer.alloc(0), complete: false };
  const chunks: Buffer[] = [];
  const p = new H1ResponseParser(
    {
      onHead: (h) => {
        out.head = h;
        out.heads++;
      },
      onBody: (c) => chunks.push(Buffer.from(c)),
      onComplete: (rest) => {
        out.complete = true;
        out.rest = Buffer.from(rest);
      },
    },
    o,
  );
  try {
    for (const piece of pieces) {
      if (out.complete) break;
      p.execute(piece);
    }
    if (o.eof) p.finish();
  } catch (e) {
    if (!(e instanceof H1ParseError)) throw e;
    out.error = e.problem;
  }
  out.body = Buffer.concat(chunks);
  return out;
}

/** every way of cutting b into two pieces, plus byte by byte */
function splits(b: Buffer): Buffer[][] {
  const out: Buffer[][] = [[b]];
  for (let i = 1; i < b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  out.push(Array.from(b, (x) => Buffer.from([x])));
  return out;
}

const B = (s: string) => Buffer.from(s, "latin1");

function chunked(body: Buffer, sizes: number[], ext = false): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  let i = 0;
  while (off < body.length) {
    const n = Math.max(1, Math.min(sizes[i++ % sizes.length] ?? 1, body.length - off));
    parts.push(
      B(`${n.toString(16)}${ext && i % 2 === 0 ? ";x=y" : ""}\r\n`),
      body.subarray(off, off + n),
      B("\r\n"),
    );
    off += n;
  }
  parts.push(B("0\r\n\r\n"));
  return Buffer.concat(parts);
}

describe("H1ResponseParser", () => {
  it("parses a Content-Length response split at every byte, with nothing left over", () => {
    const body = B('{"kind":"Pod","metadata":{"name":"web-0"}}');
    const msg = Buffer.concat([
      B(
        `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 1\r\nx-a: 2\r\n\r\n`,
      ),
      body,
    ]);
    for (const pieces of splits(msg)) {
      const r = parse(pieces);
      expect(r.error).toBeUndefined();
      expect(r.complete).toBe(true);
      expect(r.body.equals(body)).toBe(true);
      expect(r.rest?.length).toBe(0);
      expect(r.head).toMatchObject({
        statusCode: 200,
        statusMessage: "OK",
        keepAlive: true,
        headers: { "content-type": "application/json", "set-cookie": ["a=1", "b=2"], "x-a": "1, 2" },
      });
    }
  });

  it("property: any body, Content-Length or chunked (with extensions and trailers), split anywhere, arrives intact", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 6 }),
        (raw, sizes, useChunked, trailer, cuts) => {
          const body = Buffer.from(raw);
          const msg = useChunked
            ? Buffer.concat([
                B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                trailer
                  ? Buffer.concat([chunked(body, sizes, true).subarray(0, -2), B("X-Trailer: t\r\n\r\n")])
                  : chunked(body, sizes, true),
              ])
            : Buffer.concat([B(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
          const at = [...new Set(cuts.map((c) => c % (msg.length + 1)))].sort((a, b) => a - b);
          const pieces: Buffer[] = [];
          let prev = 0;
          for (const c of [...at, msg.length]) {
            pieces.push(msg.subarray(prev, c));
            prev = c;
          }
          const r = parse(pieces.filter((p) => p.length > 0));
          expect(r.error).toBeUndefined();
          expect(r.complete).toBe(true);
          expect(r.body.equals(body)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("chunked framing split at every byte; bytes after the message are handed back", () => {
    const body = B("hello, chunked world");
    const msg = Buffer.concat([
      B("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"),
      chunked(body, [3, 7, 1]),
      B("HTTP/1.1 200 OK"),
    ]);
    for (const pieces of splits(msg)) {
      const r = parse(pieces);
      expect(r.error).toBeUndefined();
      expect(r.complete).toBe(true);
      expect(r.body.toString()).toBe("hello, chunked world");
      // what followed within the same piece is reported (the pool then drops the connection)
      if (pieces.length === 1) expect(r.rest?.toString()).toBe("HTTP/1.1 200 OK");
    }
  });

  it("a body without framing runs until EOF and ends keep-alive; EOF elsewhere is an error", () => {
    const r = parse([B("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc"), B("def")], { eof: true });
    expect(r.complete).toBe(true);
    expect(r.body.toString()).toBe("abcdef");
    expect(r.head?.keepAlive).toBe(false);
    const short = parse([B("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")], { eof: true });
    expect(short.complete).toBe(false);
    expect(short.error).toContain("closed before");
    const noHead = parse([B("HTTP/1.1 200 OK\r\nContent-")], { eof: true });
    expect(noHead.error).toContain("closed before");
  });

  it("no body for HEAD, 204 and 304; 1xx interim responses are skipped; Connection: close and HTTP/1.0 end keep-alive", () => {
    expect(parse([B("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")], { noBody: true })).toMatchObject({
      complete: true,
    });
    expect(parse([B("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")])).toMatchObject({
      complete: true,
    });
    expect(parse([B("HTTP/1.1 304 Not Modified\r\n\r\n")])).toMatchObject({ complete: true });
    const interim = parse([B("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]);
    expect(interim).toMatchObject({ complete: true, heads: 1 });
    expect(interim.body.toString()).toBe("ok");
    expect(
      parse([B("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")]).head?.keepAlive,
    ).toBe(false);
    expect(parse([B("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")]).head?.keepAlive).toBe(false);
  });

  it("refuses every malformed form (whole and split at every byte)", () => {
    const bad: [string, string][] = [
      ["HTTP/2 200 OK\r\n\r\n", "status line"],
      ["HTTP/1.1 20 OK\r\n\r\n", "status line"],
      ["HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n", "bare"],
      ["HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", "header name"],
      ["HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n", "without a name"],
      ["HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n", "folding"],
      ["HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n", "header value"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"],
      ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length"],
      [
        "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n",
        "conflicting",
      ],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "both"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"],
      ["HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n", "chunk size"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "bare LF"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", "CRLF"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n", "chunk size"],
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", "header"],
      ["HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"],
    ];
    for (const [text, problem] of bad)
      for (const pieces of splits(B(text))) {
        const r = parse(pieces, { eof: true });
        expect(r.complete, text).toBe(false);
        expect(r.error, text).toContain(problem);
      }
    const huge = parse([B(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(70 * 1024)}\r\n\r\n`)]);
    expect(huge.error).toContain("too large");
    const endless = parse(Array.from({ length: 80 }, () => B("a".repeat(1024))));
    expect(endless.error).toContain("too large");
  });

  it("property: random bytes after a valid status line never crash it (an answer or an H1ParseError)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (raw, eof) => {
        const r = parse([B("HTTP/1.1 200 OK\r\n"), Buffer.from(raw)], { eof });
        if (r.complete) expect(r.error).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});

/** a raw TCP upstream: answers each request (one per `\r\n\r\n`) with what `reply` gives */
async function rawUpstream(reply: (n: number, sock: net.Socket) => string | Buffer | undefined) {
  let n = 0;
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const srv = net.createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n\r\n"); i >= 0; i = buf.indexOf("\r\n\r\n")) {
        buf = buf.slice(i + 4);
        const out = reply(n++, sock);
        if (out !== undefined) sock.write(out);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    get connections() {
      return connections;
    },
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

const opts = (o: Partial<H1RequestOptions> = {}): H1RequestOptions => ({
  timeoutMs: 1000,
  timeout: () => new Error("timeout"),
  unreachable: (errno) => new Error(`unreachable ${errno}`),
  malformed: (p) => new Error(`malformed ${p}`),
  gone: () => new Error("gone"),
  ...o,
});

const HEAD = "GET /x HTTP/1.1\r\nhost: u\r\n\r\n";

async function body(r: LeanResponse): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

describe("H1Pool", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it("reuses one keep-alive connection for sequential requests; Connection: close is not reused", async () => {
    const up = await rawUpstream((n) =>
      n === 2
        ? "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        : `HTTP/1.1 200 OK\r\nContent-Length: ${String(n).length}\r\n\r\n${n}`,
    );
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    for (let i = 0; i < 2; i++) {
      const r = await pool.request(HEAD, opts());
      expect(r.statusCode).toBe(200);
      expect(await body(r)).toBe(String(i));
    }
    expect(up.connections).toBe(1);
    expect(await body(await pool.request(HEAD, opts()))).toBe("ok");
    expect(pool.idle).toBe(0);
    expect(await body(await pool.request(HEAD, opts()))).toBe("3");
    expect(up.connections).toBe(2);
    expect(pool.active).toBe(0);
  });

  it("retries once on a new connection when a reused one was closed by the server", async () => {
    const up = await rawUpstream(() => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    expect(await body(await pool.request(HEAD, opts()))).toBe("ok");
    // the server drops its idle connection without the pool noticing yet
    for (const s of up.sockets) s.resetAndDestroy();
    expect(await body(await pool.request(HEAD, opts()))).toBe("ok");
    expect(up.connections).toBe(2);
  });

  it("502-style errors before the head (malformed, closed, refused), 504-style on no head, gone on abort", async () => {
    const up = await rawUpstream((n, sock) => {
      if (n === 0) return "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
      if (n === 1) {
        sock.end();
        return undefined;
      }
      return undefined; // silent
    });
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    await expect(pool.request(HEAD, opts())).rejects.toThrow("malformed invalid Content-Length");
    await expect(pool.request(HEAD, opts())).rejects.toThrow("unreachable ECONNRESET");
    await expect(pool.request(HEAD, opts({ timeoutMs: 50 }))).rejects.toThrow("timeout");
    const ac = new AbortController();
    const p = pool.request(HEAD, opts({ signal: ac.signal }));
    ac.abort();
    await expect(p).rejects.toThrow("gone");
    expect(pool.active).toBe(0);
    const closed = new H1Pool({ host: "127.0.0.1", port: 1 });
    await expect(closed.request(HEAD, opts())).rejects.toThrow("unreachable ECONNREFUSED");
  });

  it("a body cut short or malformed after the head ends the response with an error, and the connection is dropped", async () => {
    const up = await rawUpstream((n, sock) => {
      if (n === 0) {
        sock.end("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        return undefined;
      }
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX";
    });
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    const r1 = await pool.request(HEAD, opts());
    await expect(body(r1)).rejects.toThrow();
    expect(r1.complete).toBe(false);
    const r2 = await pool.request(HEAD, opts());
    await expect(body(r2)).rejects.toThrow(/CRLF/);
    expect(pool.idle).toBe(0);
  });

  it("drops a connection that sent more than one response, and one that talks while idle", async () => {
    const up = await rawUpstream((n, sock) => {
      if (n === 0) return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA";
      if (n === 1) {
        sock.write("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
        setTimeout(() => sock.write("HTTP/1.1 200 OK\r\n"), 20);
        return undefined;
      }
      return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc";
    });
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    expect(await body(await pool.request(HEAD, opts()))).toBe("a");
    expect(pool.idle).toBe(0);
    expect(await body(await pool.request(HEAD, opts()))).toBe("b");
    expect(pool.idle).toBe(1);
    await new Promise((r) => setTimeout(r, 60));
    expect(pool.idle).toBe(0);
    expect(await body(await pool.request(HEAD, opts()))).toBe("c");
    expect(up.connections).toBe(3);
  });

  it("a response destroyed before its end drops the connection (never reused mid-body)", async () => {
    const up = await rawUpstream((n) =>
      n === 0
        ? "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
        : "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
    );
    const pool = new H1Pool({ host: "127.0.0.1", port: up.port });
    cleanups.push(() => pool.close(), up.close);
    const r = await pool.request(HEAD, opts());
    r.destroy();
    expect(pool.active).toBe(0);
    expect(await body(await pool.request(HEAD, opts()))).toBe("z");
    expect(up.connections).toBe(2);
  });
});
