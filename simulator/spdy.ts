/**
 * SPDY/3.1 (draft-mbelshe-httpbis-spdy-00), the subset Kubernetes' streaming uses
 * (k8s.io/apimachinery/pkg/util/httpstream/spdy): the client opens streams with SYN_STREAM
 * (headers `streamtype`, and for port-forward `port` and `requestid`), the server accepts
 * each with an empty SYN_REPLY, data flows in DATA frames, FIN half-closes. Used over a
 * direct `Upgrade: SPDY/3.1` connection (exec, attach, port-forward) and tunnelled inside a
 * WebSocket (`SPDY/3.1+portforward.k8s.io`, one binary message per write), which kubectl
 * 1.32 uses for `port-forward`.
 *
 * Header blocks are zlib streams primed with the SPDY/3 dictionary (section 2.6.10.1). The
 * server's own header blocks are written as stored (uncompressed) deflate blocks, which
 * every inflater reads; the client's are inflated with one zlib context per session.
 */
import { constants as zc, inflateSync } from "node:zlib";

/** The SPDY/3 header compression dictionary (1423 bytes, a protocol constant). */
export const SPDY3_DICTIONARY = Buffer.from(
  "AAAAB29wdGlvbnMAAAAEaGVhZAAAAARwb3N0AAAAA3B1dAAAAAZkZWxldGUAAAAFdHJhY2UAAAAGYWNjZXB0AAAADmFjY2VwdC1jaGFyc2V0AAAAD2FjY2VwdC1lbmNvZGluZwAAAA9hY2NlcHQtbGFuZ3VhZ2UAAAANYWNjZXB0LXJhbmdlcwAAAANhZ2UAAAAFYWxsb3cAAAANYXV0aG9yaXphdGlvbgAAAA1jYWNoZS1jb250cm9sAAAACmNvbm5lY3Rpb24AAAAMY29udGVudC1iYXNlAAAAEGNvbnRlbnQtZW5jb2RpbmcAAAAQY29udGVudC1sYW5ndWFnZQAAAA5jb250ZW50LWxlbmd0aAAAABBjb250ZW50LWxvY2F0aW9uAAAAC2NvbnRlbnQtbWQ1AAAADWNvbnRlbnQtcmFuZ2UAAAAMY29udGVudC10eXBlAAAABGRhdGUAAAAEZXRhZwAAAAZleHBlY3QAAAAHZXhwaXJlcwAAAARmcm9tAAAABGhvc3QAAAAIaWYtbWF0Y2gAAAARaWYtbW9kaWZpZWQtc2luY2UAAAANaWYtbm9uZS1tYXRjaAAAAAhpZi1yYW5nZQAAABNpZi11bm1vZGlmaWVkLXNpbmNlAAAADWxhc3QtbW9kaWZpZWQAAAAIbG9jYXRpb24AAAAMbWF4LWZvcndhcmRzAAAABnByYWdtYQAAABJwcm94eS1hdXRoZW50aWNhdGUAAAATcHJveHktYXV0aG9yaXphdGlvbgAAAAVyYW5nZQAAAAdyZWZlcmVyAAAAC3JldHJ5LWFmdGVyAAAABnNlcnZlcgAAAAJ0ZQAAAAd0cmFpbGVyAAAAEXRyYW5zZmVyLWVuY29kaW5nAAAAB3VwZ3JhZGUAAAAKdXNlci1hZ2VudAAAAAR2YXJ5AAAAA3ZpYQAAAAd3YXJuaW5nAAAAEHd3dy1hdXRoZW50aWNhdGUAAAAGbWV0aG9kAAAAA2dldAAAAAZzdGF0dXMAAAAGMjAwIE9LAAAAB3ZlcnNpb24AAAAISFRUUC8xLjEAAAADdXJsAAAABnB1YmxpYwAAAApzZXQtY29va2llAAAACmtlZXAtYWxpdmUAAAAGb3JpZ2luMTAwMTAxMjAxMjAyMjA1MjA2MzAwMzAyMzAzMzA0MzA1MzA2MzA3NDAyNDA1NDA2NDA3NDA4NDA5NDEwNDExNDEyNDEzNDE0NDE1NDE2NDE3NTAyNTA0NTA1MjAzIE5vbi1BdXRob3JpdGF0aXZlIEluZm9ybWF0aW9uMjA0IE5vIENvbnRlbnQzMDEgTW92ZWQgUGVybWFuZW50bHk0MDAgQmFkIFJlcXVlc3Q0MDEgVW5hdXRob3JpemVkNDAzIEZvcmJpZGRlbjQwNCBOb3QgRm91bmQ1MDAgSW50ZXJuYWwgU2VydmVyIEVycm9yNTAxIE5vdCBJbXBsZW1lbnRlZDUwMyBTZXJ2aWNlIFVuYXZhaWxhYmxlSmFuIEZlYiBNYXIgQXByIE1heSBKdW4gSnVsIEF1ZyBTZXB0IE9jdCBOb3YgRGVjIDAwOjAwOjAwIE1vbiwgVHVlLCBXZWQsIFRodSwgRnJpLCBTYXQsIFN1biwgR01UY2h1bmtlZCx0ZXh0L2h0bWwsaW1hZ2UvcG5nLGltYWdlL2pwZyxpbWFnZS9naWYsYXBwbGljYXRpb24veG1sLGFwcGxpY2F0aW9uL3hodG1sK3htbCx0ZXh0L3BsYWluLHRleHQvamF2YXNjcmlwdCxwdWJsaWNwcml2YXRlbWF4LWFnZT1nemlwLGRlZmxhdGUsc2RjaGNoYXJzZXQ9dXRmLThjaGFyc2V0PWlzby04ODU5LTEsdXRmLSwqLGVucT0wLg==",
  "base64",
);

const TYPE = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;
const FLAG_FIN = 0x01;

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

export type Headers = Record<string, string>;

export function encodeHeaderBlock(h: Headers): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const entries = Object.entries(h);
  parts.push(u32(entries.length));
  for (const [k, v] of entries) {
    const kb = Buffer.from(k.toLowerCase(), "utf8");
    const vb = Buffer.from(v, "utf8");
    parts.push(u32(kb.length), kb, u32(vb.length), vb);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(b: Buffer): Headers {
  const out: Headers = {};
  let pos = 0;
  const n = b.readUInt32BE(pos);
  pos += 4;
  for (let i = 0; i < n; i++) {
    const kl = b.readUInt32BE(pos);
    const k = b.subarray(pos + 4, pos + 4 + kl).toString("utf8");
    pos += 4 + kl;
    const vl = b.readUInt32BE(pos);
    out[k] = b
      .subarray(pos + 4, pos + 4 + vl)
      .toString("utf8")
      .split("\0")
      .join(",");
    pos += 4 + vl;
  }
  return out;
}

/** Writes zlib-framed stored blocks: the stream header (with the dictionary's id) once, then one block per call. */
class StoredZlibWriter {
  private started = false;
  write(data: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      const dictId = Buffer.alloc(4);
      dictId.writeUInt32BE(adler32(SPDY3_DICTIONARY));
      // CMF 0x78 (deflate, 32K window), FLG 0x20 (FDICT; 0x7820 % 31 == 0)
      parts.push(Buffer.from([0x78, 0x20]), dictId);
    }
    for (let off = 0; off < data.length || off === 0; off += 0xffff) {
      const chunk = data.subarray(off, off + 0xffff);
      const hdr = Buffer.alloc(5);
      hdr[0] = 0x00; // BFINAL=0, BTYPE=00 (stored)
      hdr.writeUInt16LE(chunk.length, 1);
      hdr.writeUInt16LE(~chunk.length & 0xffff, 3);
      parts.push(hdr, chunk);
      if (data.length === 0) break;
    }
    // an empty stored block, as a zlib sync flush ends with: inflaters hand out what they hold when they reach it
    parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

/**
 * The client's header blocks form one zlib stream per session. Node has no synchronous
 * streaming inflate, so the whole stream so far is inflated again and the new tail taken:
 * quadratic, but header blocks are a few dozen bytes and sessions open a few streams.
 */
class HeaderInflater {
  private compressed: Buffer = Buffer.alloc(0);
  private consumed = 0;
  next(block: Buffer): Buffer {
    this.compressed = Buffer.concat([this.compressed, block]);
    const all = inflateSync(this.compressed, { dictionary: SPDY3_DICTIONARY, finishFlush: zc.Z_SYNC_FLUSH });
    const fresh = all.subarray(this.consumed);
    this.consumed = all.length;
    return fresh;
  }
}

export interface SpdyStream {
  id: number;
  headers: Headers;
  write(data: Buffer | string): void;
  /** half-close our side (DATA with FIN) */
  end(): void;
  onData(fn: (b: Buffer) => void): void;
  onEnd(fn: () => void): void;
}

/** A server-side SPDY/3.1 session over any byte transport. */
export class SpdySession {
  private buf: Buffer = Buffer.alloc(0);
  private readonly inflate = new HeaderInflater();
  private readonly deflate = new StoredZlibWriter();
  private readonly streams = new Map<
    number,
    { s: SpdyStream; data: Array<(b: Buffer) => void>; end: Array<() => void>; ended: boolean }
  >();
  private closed = false;

  constructor(
    private readonly send: (b: Buffer) => void,
    private readonly onStream: (s: SpdyStream) => void,
    private readonly onClose: () => void,
  ) {}

  /** Feed bytes from the transport. */
  push(chunk: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 8) {
      const len = this.buf.readUIntBE(5, 3);
      if (this.buf.length < 8 + len) break;
      const frame = this.buf.subarray(0, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      try {
        this.frame(frame);
      } catch {
        this.goAway(1);
        return;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const st of this.streams.values()) if (!st.ended) for (const f of st.end) f();
    this.streams.clear();
    this.onClose();
  }

  private control(type: number, flags: number, payload: Buffer): void {
    const h = Buffer.alloc(8);
    h.writeUInt16BE(0x8003, 0);
    h.writeUInt16BE(type, 2);
    h[4] = flags;
    h.writeUIntBE(payload.length, 5, 3);
    this.send(Buffer.concat([h, payload]));
  }

  private data(id: number, flags: number, payload: Buffer): void {
    for (let off = 0; off < payload.length || (off === 0 && payload.length === 0); off += 0xffffff) {
      const chunk = payload.subarray(off, off + 0xffffff);
      const last = off + 0xffffff >= payload.length;
      const h = Buffer.alloc(8);
      h.writeUInt32BE(id & 0x7fffffff, 0);
      h[4] = last ? flags : 0;
      h.writeUIntBE(chunk.length, 5, 3);
      this.send(Buffer.concat([h, chunk]));
      if (payload.length === 0) break;
    }
  }

  private goAway(status: number): void {
    const p = Buffer.alloc(8);
    p.writeUInt32BE(0, 0);
    p.writeUInt32BE(status, 4);
    this.control(TYPE.GOAWAY, 0, p);
    this.close();
  }

  private frame(f: Buffer): void {
    const control = (f[0]! & 0x80) !== 0;
    const flags = f[4]!;
    const payload = f.subarray(8);
    if (!control) {
      const id = f.readUInt32BE(0) & 0x7fffffff;
      const st = this.streams.get(id);
      if (!st) return;
      if (payload.length > 0) for (const fn of st.data) fn(Buffer.from(payload));
      if (flags & FLAG_FIN) for (const fn of st.end) fn();
      return;
    }
    const type = f.readUInt16BE(2);
    switch (type) {
      case TYPE.SYN_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const block = this.inflate.next(payload.subarray(10));
        const headers = decodeHeaderBlock(block);
        this.openStream(id, headers, (flags & FLAG_FIN) !== 0);
        return;
      }
      case TYPE.HEADERS:
      case TYPE.SYN_REPLY:
        this.inflate.next(payload.subarray(4));
        return;
      case TYPE.RST_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const st = this.streams.get(id);
        if (st && !st.ended) for (const fn of st.end) fn();
        this.streams.delete(id);
        return;
      }
      case TYPE.PING:
        this.control(TYPE.PING, 0, Buffer.from(payload));
        return;
      case TYPE.GOAWAY:
        this.close();
        return;
      default:
        return; // SETTINGS, WINDOW_UPDATE: nothing to do for a simulator
    }
  }

  private openStream(id: number, headers: Headers, fin: boolean): void {
    const entry = {
      s: undefined as unknown as SpdyStream,
      data: [] as Array<(b: Buffer) => void>,
      end: [] as Array<() => void>,
      ended: false,
    };
    let localEnded = false;
    const s: SpdyStream = {
      id,
      headers,
      write: (d) => {
        if (!localEnded && !this.closed) this.data(id, 0, typeof d === "string" ? Buffer.from(d, "utf8") : d);
      },
      end: () => {
        if (localEnded || this.closed) return;
        localEnded = true;
        this.data(id, FLAG_FIN, Buffer.alloc(0));
      },
      onData: (fn) => entry.data.push(fn),
      onEnd: (fn) => entry.end.push(fn),
    };
    entry.s = s;
    entry.end.push(() => {
      entry.ended = true;
    });
    this.streams.set(id, entry);
    // SYN_REPLY with an empty header block accepts the stream (k8s.io/apimachinery httpstream/spdy)
    const p = Buffer.alloc(4);
    p.writeUInt32BE(id & 0x7fffffff);
    this.control(TYPE.SYN_REPLY, 0, Buffer.concat([p, this.deflate.write(encodeHeaderBlock({}))]));
    this.onStream(s);
    if (fin) for (const fn of entry.end) fn();
  }
}
