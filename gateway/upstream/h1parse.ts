/**
 * A strict, incremental HTTP/1.1 response parser for the lean upstream client (h1pool.ts).
 * It accepts what a conforming server sends and refuses everything else (fail closed): CRLF
 * line endings only, no obs-fold, header names as RFC 9110 tokens, no control characters in
 * values, one Content-Length (digits only, duplicates must agree), Transfer-Encoding only as
 * exactly `chunked` and never together with Content-Length, strict chunk-size lines and
 * chunk terminators, bounded header and trailer sections. 1xx interim responses (other than
 * 101, never asked for) are skipped. Pure: no I/O, so it can be fed a response split anywhere.
 */
import type { IncomingHttpHeaders } from "node:http";

export class H1ParseError extends Error {
  readonly code = "UPSTREAM_MALFORMED_RESPONSE";
  readonly problem: string;
  constructor(problem: string) {
    super(`malformed upstream response: ${problem}`);
    this.problem = problem;
  }
}

export interface H1Head {
  statusCode: number;
  statusMessage: string;
  /** lower-case names; set-cookie as an array, other repeated fields joined with ", " */
  headers: IncomingHttpHeaders;
  /** the connection may carry another request after this response */
  keepAlive: boolean;
}

export interface H1Handlers {
  onHead(head: H1Head): void;
  onBody(chunk: Buffer): void;
  /** the message is complete; `rest` are bytes that followed it (a keep-alive connection must have none) */
  onComplete(rest: Buffer): void;
}

/** header section limit (Node's default is 16 KiB; kube-apiserver's responses are far below) */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;

/** a header name (an RFC 9110 token) and a header value, as Node's HTTP client also accepts them */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const CHUNK_LINE = /^([0-9A-Fa-f]{1,13})(;[\t\x20-\x7e\x80-\xff]*)?$/;
/** fields that must not repeat with different values (the relay and masking decide on them) */
const SINGLE = new Set(["content-length", "content-type", "content-encoding", "transfer-encoding"]);

/** parser states (plain numbers: tsx runs the sources without const enums) */
const S = {
  Head: 0,
  BodyLength: 1,
  BodyEof: 2,
  ChunkLine: 3,
  ChunkData: 4,
  ChunkEnd: 5,
  Trailers: 6,
  Done: 7,
} as const;
type S = (typeof S)[keyof typeof S];

const CRLFCRLF = Buffer.from("\r\n\r\n");

function parseFields(lines: string[], from: number, into: IncomingHttpHeaders): void {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new H1ParseError("header line without a name");
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new H1ParseError("invalid header name");
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
    if (!FIELD_VALUE.test(value)) throw new H1ParseError("invalid header value");
    const n = name.toLowerCase();
    const prev = into[n];
    if (prev === undefined) into[n] = n === "set-cookie" ? [value] : value;
    else if (n === "set-cookie") (prev as string[]).push(value);
    else if (SINGLE.has(n)) {
      if (prev !== value) throw new H1ParseError(`conflicting ${n} fields`);
    } else into[n] = `${prev as string}, ${value}`;
  }
}

export class H1ResponseParser {
  readonly #h: H1Handlers;
  /** the request was HEAD: no body follows whatever the headers say */
  readonly #noBody: boolean;
  #state: S = S.Head;
  /** unparsed bytes of the head, a chunk line or the trailers */
  #pending: Buffer | undefined;
  #remaining = 0;
  #trailerBytes = 0;
  #keepAlive = false;

  constructor(h: H1Handlers, o: { noBody?: boolean } = {}) {
    this.#h = h;
    this.#noBody = o.noBody === true;
  }

  get done(): boolean {
    return this.#state === S.Done;
  }

  /** true once the head was parsed and the body runs until the connection closes */
  get untilClose(): boolean {
    return this.#state === S.BodyEof;
  }

  /** Feed bytes. Throws H1ParseError on anything malformed (the connection must then be dropped). */
  execute(data: Buffer): void {
    let buf = data;
    while (buf.length > 0) {
      switch (this.#state) {
        case S.Head: {
          const all = this.#pending ? Buffer.concat([this.#pending, buf]) : buf;
          // search only where the terminator can newly appear
          const from = this.#pending ? Math.max(0, this.#pending.length - 3) : 0;
          const end = all.indexOf(CRLFCRLF, from);
          // a bare LF fails at once (a server using LF line ends would otherwise only time out)
          const limit = end < 0 ? all.length : end + 4;
          for (
            let i = all.indexOf(10, this.#pending ? this.#pending.length : 0);
            i >= 0 && i < limit;
            i = all.indexOf(10, i + 1)
          )
            if (i === 0 || all[i - 1] !== 13) throw new H1ParseError("bare LF");
          if (end < 0) {
            if (all.length > MAX_HEAD_BYTES) throw new H1ParseError("header section too large");
            this.#pending = all;
            return;
          }
          if (end > MAX_HEAD_BYTES) throw new H1ParseError("header section too large");
          this.#pending = undefined;
          buf = all.subarray(end + 4);
          this.#head(all.toString("latin1", 0, end));
          if ((this.#state as S) === S.Done) {
            this.#h.onComplete(buf);
            return;
          }
          break;
        }
        case S.BodyLength: {
          buf = this.#body(buf);
          if (this.#remaining === 0) {
            this.#state = S.Done;
            this.#h.onComplete(buf);
            return;
          }
          break;
        }
        case S.BodyEof:
          this.#h.onBody(buf);
          return;
        case S.ChunkLine:
        case S.Trailers: {
          const all = this.#pending ? Buffer.concat([this.#pending, buf]) : buf;
          const nl = all.indexOf(10);
          if (nl < 0) {
            if (all.length > (this.#state === S.ChunkLine ? MAX_CHUNK_LINE : MAX_TRAILER_BYTES))
              throw new H1ParseError(
                this.#state === S.ChunkLine ? "chunk size line too long" : "trailers too large",
              );
            this.#pending = all;
            return;
          }
          this.#pending = undefined;
          if (nl === 0 || all[nl - 1] !== 13) throw new H1ParseError("bare LF");
          const line = all.toString("latin1", 0, nl - 1);
          buf = all.subarray(nl + 1);
          if (line.includes("\r")) throw new H1ParseError("bare CR");
          if (this.#state === S.ChunkLine) {
            if (line.length > MAX_CHUNK_LINE) throw new H1ParseError("chunk size line too long");
            const m = CHUNK_LINE.exec(line);
            if (!m) throw new H1ParseError("invalid chunk size");
            const size = Number.parseInt(m[1]!, 16);
            if (size === 0) {
              this.#state = S.Trailers;
              this.#trailerBytes = 0;
            } else {
              this.#remaining = size;
              this.#state = S.ChunkData;
            }
          } else {
            this.#trailerBytes += line.length + 2;
            if (this.#trailerBytes > MAX_TRAILER_BYTES) throw new H1ParseError("trailers too large");
            if (line === "") {
              this.#state = S.Done;
              this.#h.onComplete(buf);
              return;
            }
            // validated like a header field, then dropped (trailers are never relayed)
            parseFields([line], 0, {});
          }
          break;
        }
        case S.ChunkData: {
          buf = this.#body(buf);
          if (this.#remaining === 0) {
            this.#state = S.ChunkEnd;
            this.#remaining = 2;
          }
          break;
        }
        case S.ChunkEnd: {
          // exactly CRLF after the chunk's data (possibly split)
          const want = this.#remaining === 2 ? 13 : 10;
          if (buf[0] !== want) throw new H1ParseError("chunk not terminated by CRLF");
          buf = buf.subarray(1);
          this.#remaining -= 1;
          if (this.#remaining === 0) this.#state = S.ChunkLine;
          break;
        }
        case S.Done:
          throw new H1ParseError("data after the response");
      }
    }
  }

  /** Hand out up to `#remaining` bytes of `buf` as body; returns what follows them. */
  #body(buf: Buffer): Buffer {
    const n = Math.min(this.#remaining, buf.length);
    this.#remaining -= n;
    this.#h.onBody(buf.subarray(0, n));
    return buf.subarray(n);
  }

  /** The connection ended (EOF). Throws when the message was not complete. */
  finish(): void {
    if (this.#state === S.BodyEof) {
      this.#state = S.Done;
      this.#h.onComplete(Buffer.alloc(0));
      return;
    }
    if (this.#state !== S.Done) throw new H1ParseError("connection closed before the response was complete");
  }

  #head(text: string): void {
    const lines = text.split("\r\n");
    for (const l of lines) if (l.includes("\n") || l.includes("\r")) throw new H1ParseError("bare CR or LF");
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) throw new H1ParseError("invalid status line");
    const minor = m[1] === "1" ? 1 : 0;
    const statusCode = Number(m[2]);
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i]!.charCodeAt(0);
      if (c === 32 || c === 9) throw new H1ParseError("obsolete line folding");
    }
    const headers: IncomingHttpHeaders = {};
    parseFields(lines, 1, headers);
    if (statusCode < 200) {
      if (statusCode === 101) throw new H1ParseError("unexpected 101 Switching Protocols");
      // interim response: the real one follows on the same connection
      return;
    }
    const connection = String(headers.connection ?? "").toLowerCase();
    const close = connection.split(",").some((t) => t.trim() === "close");
    this.#keepAlive = minor === 1 && !close;
    const te = headers["transfer-encoding"];
    const cl = headers["content-length"];
    if (te !== undefined && cl !== undefined)
      throw new H1ParseError("both Transfer-Encoding and Content-Length");
    if (te !== undefined && String(te).toLowerCase() !== "chunked")
      throw new H1ParseError("unsupported Transfer-Encoding");
    if (te !== undefined && minor === 0) throw new H1ParseError("Transfer-Encoding in HTTP/1.0");
    let length: number | undefined;
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(String(cl))) throw new H1ParseError("invalid Content-Length");
      length = Number(cl);
    }
    const noBody = this.#noBody || statusCode === 204 || statusCode === 304;
    if (noBody) this.#state = S.Done;
    else if (te !== undefined) this.#state = S.ChunkLine;
    else if (length !== undefined) this.#state = length === 0 ? S.Done : S.BodyLength;
    else {
      // no framing: the body runs until the server closes the connection
      this.#state = S.BodyEof;
      this.#keepAlive = false;
    }
    this.#remaining = length ?? 0;
    const statusMessage = m[3] ?? "";
    this.#h.onHead({ statusCode, statusMessage, headers, keepAlive: this.#keepAlive });
  }

  /** after onComplete: whether the connection may be reused */
  get keepAlive(): boolean {
    return this.#keepAlive;
  }
}
