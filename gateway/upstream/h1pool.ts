/**
 * The lean upstream client for plain GETs (the hot path): a pool of persistent TCP/TLS
 * connections, each request written as one string, the response parsed by the strict
 * H1ResponseParser, the body handed out as a Readable of the socket's own chunks. No
 * ClientRequest, Agent or IncomingMessage per call. Anything unexpected drops the connection:
 * a malformed response, bytes after a response or on an idle connection, an early close.
 * Upgrades, watches, streams and requests with bodies keep using `https.request`.
 */
import type { IncomingHttpHeaders } from "node:http";
import net from "node:net";
import { Readable } from "node:stream";
import tls from "node:tls";
import type { CallSignal } from "../ports.ts";
import { H1ParseError, type H1Head, H1ResponseParser } from "./h1parse.ts";

/** An upstream response as the relay reads it (IncomingMessage has the same shape). */
export interface UpstreamResponse extends Readable {
  statusCode?: number | undefined;
  headers: IncomingHttpHeaders;
  complete: boolean;
}

export class LeanResponse extends Readable implements UpstreamResponse {
  statusCode: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  complete = false;
  /** set by the pool: resume the connection (backpressure) / drop it (destroyed before complete) */
  onRead: (() => void) | undefined;
  onDrop: (() => void) | undefined;

  constructor(head: H1Head) {
    // a 300 KB list in ~16 KiB socket chunks is buffered without pausing the connection
    super({ highWaterMark: 256 * 1024 });
    this.statusCode = head.statusCode;
    this.statusMessage = head.statusMessage;
    this.headers = head.headers;
  }

  override _read(): void {
    this.onRead?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.complete) this.onDrop?.();
    // as IncomingMessage: the error is emitted only to a listener (a body that fails before its
    // reader is attached must not crash the process); a late reader finds the stream destroyed
    cb(err && this.listenerCount("error") > 0 ? err : null);
  }
}

export interface H1Target {
  host: string;
  port: number;
  /** present for https upstreams */
  tls?: tls.ConnectionOptions;
}

export interface H1RequestOptions {
  /** a HEAD request: no body follows */
  noBody?: boolean;
  /** fail with timeout() when no response head arrived within this time */
  timeoutMs: number;
  signal?: CallSignal | undefined;
  timeout(): Error;
  /** the connection failed before a response head (errno: the socket's error code) */
  unreachable(errno: string | undefined): Error;
  malformed(problem: string): Error;
  gone(): Error;
}

interface User {
  data(d: Buffer): void;
  end(): void;
  error(e: NodeJS.ErrnoException): void;
  close(): void;
}

class Conn {
  readonly sock: net.Socket;
  user: User | undefined;
  /** requests this connection has carried */
  uses = 0;
  constructor(sock: net.Socket, drop: (c: Conn) => void) {
    this.sock = sock;
    sock.on("data", (d: Buffer) => {
      if (this.user) this.user.data(d);
      // bytes on an idle connection: it cannot be trusted for the next response
      else sock.destroy();
    });
    sock.on("end", () => {
      if (this.user) this.user.end();
      else sock.destroy();
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      drop(this);
      this.user?.error(e);
    });
    sock.on("close", () => {
      drop(this);
      this.user?.close();
    });
    sock.on("timeout", () => {
      // only armed while idle
      if (!this.user) sock.destroy();
    });
  }
}

function resetError(message: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(message);
  e.code = "ECONNRESET";
  return e;
}

export class H1Pool {
  readonly #t: H1Target;
  readonly #idle: Conn[] = [];
  readonly #maxIdle: number;
  readonly #idleMs: number;
  #session: Buffer | undefined;
  #active = 0;
  #closed = false;

  constructor(t: H1Target, o: { maxIdle?: number; idleMs?: number } = {}) {
    this.#t = t;
    this.#maxIdle = o.maxIdle ?? 64;
    this.#idleMs = o.idleMs ?? 30_000;
  }

  /** requests in flight */
  get active(): number {
    return this.#active;
  }

  get idle(): number {
    return this.#idle.length;
  }

  #drop = (c: Conn): void => {
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
  };

  #connect(): Conn {
    const t = this.#t;
    let sock: net.Socket;
    if (t.tls) {
      const o: tls.ConnectionOptions = { ...t.tls, host: t.host, port: t.port };
      if (this.#session) o.session = this.#session;
      const s = tls.connect(o);
      s.on("session", (session: Buffer) => {
        this.#session = session;
      });
      sock = s;
    } else sock = net.connect({ host: t.host, port: t.port });
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 1000);
    return new Conn(sock, this.#drop);
  }

  #take(): Conn | undefined {
    for (let c = this.#idle.pop(); c !== undefined; c = this.#idle.pop()) {
      if (c.sock.destroyed || !c.sock.writable) continue;
      c.sock.setTimeout(0);
      c.sock.ref();
      return c;
    }
    return undefined;
  }

  #release(c: Conn): void {
    c.user = undefined;
    if (this.#closed || c.sock.destroyed || this.#idle.length >= this.#maxIdle) {
      c.sock.destroy();
      return;
    }
    c.sock.setTimeout(this.#idleMs);
    c.sock.unref();
    // paused for backpressure on the last chunk: an idle connection must still see the server's close
    c.sock.resume();
    this.#idle.push(c);
  }

  /** Send one request (the complete head, as latin1 text). Resolves at the response head. */
  request(head: string, o: H1RequestOptions): Promise<LeanResponse> {
    return new Promise<LeanResponse>((resolve, reject) => {
      let settled = false;
      let retried = false;
      let res: LeanResponse | undefined;
      let conn: Conn;
      this.#active++;
      let counted = true;
      const uncount = () => {
        if (counted) {
          counted = false;
          this.#active--;
        }
      };
      const onAbort = () => fail(o.gone());
      const timer = setTimeout(() => fail(o.timeout()), o.timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
      };
      /** before the head: the call fails, the connection is dropped */
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        cleanup();
        uncount();
        conn.user = undefined;
        conn.sock.destroy();
        reject(err);
      };
      /** after the head: the body ends abnormally, the connection is dropped */
      const breakBody = (err: Error) => {
        uncount();
        conn.user = undefined;
        conn.sock.destroy();
        if (res && !res.complete && !res.destroyed) res.destroy(err);
      };
      const start = () => {
        const got = this.#take();
        const reused = got !== undefined;
        conn = got ?? this.#connect();
        conn.uses++;
        let gotBytes = false;
        const c = conn;
        const parser = new H1ResponseParser(
          {
            onHead: (h) => {
              settled = true;
              cleanup();
              const r = new LeanResponse(h);
              res = r;
              r.onRead = () => {
                if (c.user === user && c.sock.isPaused()) c.sock.resume();
              };
              r.onDrop = () => {
                if (c.user === user) breakBody(resetError("response destroyed"));
              };
              resolve(r);
            },
            onBody: (chunk) => {
              if (!res!.push(chunk) && c.user === user) c.sock.pause();
            },
            onComplete: (rest) => {
              const r = res!;
              r.complete = true;
              uncount();
              if (parser.keepAlive && rest.length === 0) this.#release(c);
              else {
                c.user = undefined;
                c.sock.destroy();
              }
              r.push(null);
            },
          },
          { noBody: o.noBody === true },
        );
        /** the connection failed: before the head, a reused connection is retried once on a new one */
        const lost = (errno: string | undefined) => {
          if (settled) {
            if (res && !res.complete)
              breakBody(resetError(`upstream connection lost (${errno ?? "closed"})`));
            return;
          }
          if (reused && !gotBytes && !retried && !this.#closed) {
            retried = true;
            c.user = undefined;
            c.sock.destroy();
            start();
            return;
          }
          fail(o.unreachable(errno));
        };
        const user: User = {
          data: (d) => {
            gotBytes = true;
            try {
              parser.execute(d);
            } catch (e) {
              if (!(e instanceof H1ParseError)) throw e;
              if (!settled) fail(o.malformed(e.problem));
              else breakBody(e);
            }
          },
          end: () => {
            try {
              parser.finish();
            } catch (e) {
              if (!(e instanceof H1ParseError)) throw e;
              lost("ECONNRESET");
            }
          },
          error: (e) => lost(e.code),
          close: () => lost("ECONNRESET"),
        };
        c.user = user;
        c.sock.write(head, "latin1");
      };
      if (o.signal?.aborted) {
        settled = true;
        cleanup();
        uncount();
        reject(o.gone());
        return;
      }
      o.signal?.addEventListener("abort", onAbort, { once: true });
      start();
    });
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.sock.destroy();
  }
}
