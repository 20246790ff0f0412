/**
 * Watch streams: newline-delimited JSON WatchEvents, each masked and emitted as soon as its
 * line is complete (never buffered to the end). Memory is bounded by the largest event.
 */
import type { Json } from "../../sdk/schema/config.ts";
import type { MaskContext, Masker, MaskSummary } from "../ports.ts";
import { parseJsonBody } from "./encoding.ts";
import { eventTooLarge, malformedJson } from "./errors.ts";
import { SummaryBuilder } from "./summary.ts";

export interface JsonLinesMasker {
  /** returns complete masked lines (each ending in "\n"); throws MASK_MALFORMED_JSON / MASK_EVENT_TOO_LARGE */
  push(chunk: string): string;
  end(): string;
  summary(): MaskSummary;
}

/** Default bound on one watch event: above the 3 MiB etcd request limit with room for JSON escaping. */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;

export function createJsonLinesMasker(
  masker: Masker,
  ctx: MaskContext,
  opts: { maxEventBytes?: number; maxSummaryPaths?: number } = {},
): JsonLinesMasker {
  const limit = opts.maxEventBytes ?? MAX_EVENT_BYTES;
  const sum = new SummaryBuilder(opts.maxSummaryPaths);
  let buf = "";
  const one = (line: string): string => {
    if (line.trim() === "") return line + "\n";
    if (masker.maskJsonText !== undefined) {
      // masked in place; an event with a duplicate key is re-serialised (the shadowed value,
      // which no mask looked at, is never emitted)
      let r: { text: string; summary: MaskSummary };
      try {
        r = masker.maskJsonText(line, ctx);
      } catch (e) {
        if (e instanceof SyntaxError) throw malformedJson(e.message, Buffer.byteLength(line));
        throw e;
      }
      sum.merge(r.summary);
      return r.text + "\n";
    }
    const value = parseJsonBody(line);
    const r = masker.maskJson(value, ctx);
    sum.merge(r.summary);
    // always re-serialised, for the same reason
    return JSON.stringify(r.value satisfies Json) + "\n";
  };
  return {
    push(chunk) {
      buf += chunk;
      let out = "";
      let start = 0;
      let nl = buf.indexOf("\n", start);
      while (nl !== -1) {
        out += one(buf.slice(start, nl));
        start = nl + 1;
        nl = buf.indexOf("\n", start);
      }
      buf = buf.slice(start);
      if (buf.length > limit) {
        buf = "";
        throw eventTooLarge(limit);
      }
      return out;
    },
    end() {
      const rest = buf;
      buf = "";
      if (rest.trim() === "") return rest;
      return one(rest).slice(0, -1);
    },
    summary: () => sum.toSummary(),
  };
}
