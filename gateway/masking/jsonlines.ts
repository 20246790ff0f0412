/**
 * Watch streams: newline-delimited JSON WatchEvents, each masked and emitted as soon as its
 * line is complete (never buffered to the end). Memory is bounded by the largest event.
 *
 * The stream is read as bytes: lines are cut at the newline byte (which no multi-byte UTF-8
 * sequence contains, so a character split between chunks is whole in its line), each event is
 * masked bytes in, bytes out (maskJsonBytes), and the events completed by one chunk leave in
 * one write.
 */
import type { Json } from "../../sdk/schema/config.ts";
import type { MaskContext, Masker, MaskSummary } from "../ports.ts";
import { parseJsonBody } from "./encoding.ts";
import { eventTooLarge, isStackOverflow, malformedJson, nestedTooDeep } from "./errors.ts";
import { SummaryBuilder } from "./summary.ts";

export interface JsonLinesMasker {
  /**
   * Mask the events this chunk completes. Their masked lines (each ending in "\n") go to
   * `write` in one Buffer, at most once per call; when an event cannot be masked, the events
   * before it are written first and then the error is thrown (MASK_MALFORMED_JSON,
   * MASK_EVENT_TOO_LARGE). A string chunk is taken as its UTF-8 bytes.
   */
  push(chunk: Uint8Array | string, write: (out: Buffer) => void): void;
  /** the last event, when the stream ended without its newline (written without one) */
  end(write: (out: Buffer) => void): void;
  summary(): MaskSummary;
}

/** Default bound on one watch event: above the 3 MiB etcd request limit with room for JSON escaping. */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;

const NL = Buffer.from("\n");

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** hex digit values of a \\u escape's last two digits that spell a letter of "Table" */
const TABLE_LETTERS = new Set([0x54, 0x61, 0x62, 0x6c, 0x65]);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * A line could name "Table" only through escapes when one of its `\\u00XX` escapes is a letter
 * of "Table"; the escapes an API server writes (`\\u0026`, `\\u003c`, `\\u003e`) are not, so
 * such lines are not parsed a second time.
 */
function escapesTableLetter(line: Buffer): boolean {
  for (let i = line.indexOf("\\u00"); i !== -1; i = line.indexOf("\\u00", i + 1)) {
    const hi = hexValue(line[i + 4] ?? 0);
    const lo = hexValue(line[i + 5] ?? 0);
    if (hi >= 0 && lo >= 0 && TABLE_LETTERS.has(hi * 16 + lo)) return true;
  }
  return false;
}

/** only JSON whitespace (space, tab, CR, LF), or nothing */
function blank(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) return false;
  }
  return true;
}

export function createJsonLinesMasker(
  masker: Masker,
  ctx: MaskContext,
  opts: { maxEventBytes?: number; maxSummaryPaths?: number } = {},
): JsonLinesMasker {
  const limit = opts.maxEventBytes ?? MAX_EVENT_BYTES;
  const sum = new SummaryBuilder(opts.maxSummaryPaths);
  /** the start of the event not yet complete */
  let rest: Buffer[] = [];
  let restBytes = 0;

  /** a Table watch's column definitions: kube-apiserver sends them with the first event only */
  let columns: Json[] | undefined;
  /**
   * A Table event after the first (no column definitions of its own): masked as if it carried
   * the first one's, so a mask naming a column holds for every event; sent without them, as it
   * came. Undefined for any other event (and for a line that is not JSON: the masker says so).
   */
  const laterTable = (line: Buffer): Buffer | undefined => {
    // (an escape can spell "Table" too)
    if (line.indexOf("Table") < 0 && !escapesTableLetter(line)) return undefined;
    let ev: unknown;
    try {
      ev = JSON.parse(line.toString("utf8"));
    } catch {
      return undefined;
    }
    const obj = isObject(ev) ? ev.object : undefined;
    if (!isObject(ev) || !isObject(obj) || obj.kind !== "Table") return undefined;
    const defs = obj.columnDefinitions;
    if (Array.isArray(defs) && defs.length > 0) {
      columns = defs;
      return undefined;
    }
    if (columns === undefined) return undefined;
    let r: { value: Json; summary: MaskSummary };
    try {
      r = masker.maskJson({ ...ev, object: { ...obj, columnDefinitions: columns } } as Json, ctx);
    } catch (e) {
      if (isStackOverflow(e)) throw nestedTooDeep();
      throw e;
    }
    sum.merge(r.summary);
    const out = r.value as { object?: Record<string, Json | undefined> };
    if (isObject(out.object)) {
      const o: Record<string, Json | undefined> = { ...out.object };
      if (defs === undefined) delete o.columnDefinitions;
      else o.columnDefinitions = defs as Json;
      return Buffer.from(JSON.stringify({ ...out, object: o }));
    }
    return Buffer.from(JSON.stringify(out));
  };

  /** one event's masked bytes (without its newline) */
  const one = (line: Buffer): Buffer => {
    if (blank(line)) return line;
    const table = laterTable(line);
    if (table !== undefined) return table;
    if (masker.maskJsonBytes !== undefined) {
      // masked in place; an event with a duplicate key is re-serialised (the shadowed value,
      // which no mask looked at, is never emitted)
      let r: { body: Buffer; summary: MaskSummary };
      try {
        r = masker.maskJsonBytes(line, ctx);
      } catch (e) {
        if (e instanceof SyntaxError) throw malformedJson(e.message, line.length);
        throw e;
      }
      sum.merge(r.summary);
      return r.body;
    }
    const r = masker.maskJson(parseJsonBody(line), ctx);
    sum.merge(r.summary);
    // always re-serialised, for the same reason
    return Buffer.from(JSON.stringify(r.value satisfies Json));
  };

  return {
    push(input, write) {
      const chunk =
        typeof input === "string"
          ? Buffer.from(input)
          : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
      const out: Buffer[] = [];
      try {
        let start = 0;
        let nl = chunk.indexOf(10);
        while (nl !== -1) {
          let line = chunk.subarray(start, nl);
          if (restBytes > 0) {
            rest.push(line);
            line = Buffer.concat(rest, restBytes + line.length);
            rest = [];
            restBytes = 0;
          }
          if (line.length > limit) throw eventTooLarge(limit);
          out.push(one(line), NL);
          start = nl + 1;
          nl = chunk.indexOf(10, start);
        }
        if (start < chunk.length) {
          // (a copy: the caller may reuse its chunk)
          rest.push(Buffer.from(chunk.subarray(start)));
          restBytes += chunk.length - start;
          if (restBytes > limit) {
            rest = [];
            restBytes = 0;
            throw eventTooLarge(limit);
          }
        }
      } finally {
        if (out.length > 0) write(Buffer.concat(out));
      }
    },
    end(write) {
      if (restBytes === 0) return;
      const line = Buffer.concat(rest, restBytes);
      rest = [];
      restBytes = 0;
      write(one(line));
    },
    summary: () => sum.toSummary(),
  };
}
