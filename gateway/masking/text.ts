/**
 * Streaming text masker for pod logs and exec/attach channels.
 *
 * - "lines" (logs, `logs -f`): every complete line is masked and emitted at once; only an
 *   unterminated tail is held. A tail longer than `maxHold` (16 KiB) is masked and emitted
 *   anyway, except for a short suffix that could be the start of an identifier.
 * - "chunks" (exec/attach stdout, stderr, stdin): emitted as it arrives, except a short suffix
 *   (at most `tailWindow` characters) that could be the start of an identifier split across
 *   frames, e.g. `123-45-67` | `89`. A shell prompt or a finished word followed by a space is
 *   not held, so interactive sessions stay usable.
 *
 * In both modes matches are found on the whole buffer (emitted part + held part), and the cut
 * is moved back before any match that crosses it, so an identifier is never split in two.
 * Memory is bounded by maxHold + one chunk.
 */
import type { MaskSummary, TextStreamMasker } from "../ports.ts";
import type { Applied } from "./compile.ts";
import { renderSpans, type Span } from "./detect.ts";
import { LOOKALIKE_CHARS } from "./lookalike.ts";
import { DROP } from "./strategy.ts";
import { SummaryBuilder } from "./summary.ts";

export interface TextStreamOptions {
  mode: "lines" | "chunks";
  /** longest unterminated line held back in "lines" mode (default 16 KiB) */
  maxHold?: number;
  /** longest suffix held back because it could start an identifier (default 256) */
  tailWindow?: number;
}

/** A text stream masker that can also be flushed when the stream goes idle. */
export interface FlushableTextStreamMasker extends TextStreamMasker {
  /**
   * Emit what is held now (e.g. after ~50 ms without output on an interactive TTY), except a
   * number in progress (digits, dashes, parentheses: the start of an SSN, phone, MRN, date),
   * which stays held until a non-digit arrives. Trades protection against a word-shaped
   * identifier (an e-mail) split exactly across the idle gap for interactivity; never needed
   * for correctness of complete lines.
   */
  flush(): string;
}

const KEYWORDS = [
  "mrn",
  "medical",
  "record",
  "patient",
  "ssn",
  "social",
  "dob",
  "birth",
  "born",
  "member",
  "subscriber",
  "beneficiary",
  "plan",
  "policy",
  "group",
  "account",
  "acct",
  "zip",
  "postal",
  "phone",
  "tel",
  "mobile",
  "cell",
  "fax",
  "vin",
  "serial",
  "device",
  "licen",
  "jan",
  "feb",
  "mar",
  "apr",
  "may",
  "jun",
  "jul",
  "aug",
  "sep",
  "oct",
  "nov",
  "dec",
];

/**
 * Suffixes that could be the start of an identifier the default detectors match: a run of
 * non-blank characters (an email, URL or number in progress), a digit-led run with the words
 * that may follow (phones, SSNs, dates, street addresses), or a label such as "MRN: ",
 * "Member ID ", "March 12, ". Digits, dashes and punctuation may be look-alikes (fullwidth,
 * other scripts' digits, Unicode dashes, zero-width characters: see lookalike.ts), and a
 * BOM, which `\\s` counts as a blank, does not end a run.
 */
const TAIL_RE = new RegExp(
  "(?:(?:\\S|\\ufeff)+" +
    `|(?<![A-Za-z0-9_-])[0-9+(${LOOKALIKE_CHARS}][0-9A-Za-z ()\\-./,:#${LOOKALIKE_CHARS}]*` +
    `|(?<![A-Za-z0-9])(?:${KEYWORDS.join("|")})[A-Za-z0-9 .,:#'()\\-${LOOKALIKE_CHARS}]{0,48}` +
    ")$",
  "iu",
);

/** a number that may still be growing into an identifier (SSN, phone, MRN, date, card) */
const NUMBER_TAIL = new RegExp(
  `(?<![A-Za-z0-9_])(?:MRN-?[0-9${LOOKALIKE_CHARS}]*|[0-9(+${LOOKALIKE_CHARS}][0-9()+\\- ./${LOOKALIKE_CHARS}]*)$`,
  "iu",
);

/** characters of already-emitted text kept as context (labels such as "Medical Record Number: ") */
const CONTEXT = 64;

function lastBreak(s: string): number {
  const n = s.lastIndexOf("\n");
  const r = s.lastIndexOf("\r");
  return Math.max(n, r) + 1;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?[ \t]/;

/** Length of an RFC 3339 / ISO 8601 timestamp (and one blank) at s[start], or 0. */
function timestampPrefix(s: string, start: number, end: number): number {
  // cheap shape check first: "dddd-dd-ddTdd:"
  if (
    end - start < 20 ||
    s.charCodeAt(start + 4) !== 45 ||
    s.charCodeAt(start + 7) !== 45 ||
    s.charCodeAt(start + 13) !== 58
  ) {
    return 0;
  }
  const m = TIMESTAMP.exec(s.slice(start, Math.min(end, start + 40)));
  return m === null ? 0 : m[0].length;
}

/**
 * Detectors run line by line: each line is gated on its own, so one line holding "MRN" does
 * not make every detector scan the whole chunk. (A match never spans a line break.)
 */
function findByLine(a: Applied, s: string): Span[] | null {
  let out: Span[] | null = null;
  let start = 0;
  while (start < s.length) {
    let nl = s.indexOf("\n", start);
    if (nl === -1) nl = s.length;
    // a leading log timestamp (kubectl logs --timestamps, most loggers) is an event time, not
    // PHI (the date detector leaves dates with a time of day alone): scan the rest of the line
    const from = nl > start ? start + timestampPrefix(s, start, nl) : nl;
    if (nl > from) {
      const line = from === 0 && nl === s.length ? s : s.slice(from, nl);
      const spans = a.detectors.find(line);
      if (spans !== null) {
        out ??= [];
        for (const sp of spans)
          out.push(from === 0 ? sp : { start: sp.start + from, end: sp.end + from, det: sp.det });
      }
    }
    start = nl + 1;
  }
  return out;
}

export class StreamMasker implements FlushableTextStreamMasker {
  private buf = "";
  /** the raw tail of what was already emitted: context for the next scan, never re-emitted */
  private prev = "";
  private readonly sum = new SummaryBuilder();
  private readonly maxHold: number;
  private readonly tailWindow: number;

  constructor(
    private readonly a: Applied,
    private readonly key: Uint8Array,
    private readonly opts: TextStreamOptions,
  ) {
    this.maxHold = opts.maxHold ?? 16 * 1024;
    this.tailWindow = opts.tailWindow ?? 256;
  }

  push(chunk: string): string {
    if (chunk.length === 0) return "";
    this.buf += chunk;
    const s = this.buf;
    const nl = lastBreak(s);
    let cut: number;
    if (this.opts.mode === "lines") cut = s.length - nl > this.maxHold ? this.suspiciousCut(s, nl) : nl;
    else cut = this.suspiciousCut(s, nl);
    return this.emit(cut);
  }

  end(): string {
    return this.emit(this.buf.length);
  }

  flush(): string {
    // an idle gap is no proof an identifier is complete ("SSN 987-6" | pause | "5-4320"): a
    // number in progress stays held (typed digits show with the next non-digit); the rest goes
    const m = NUMBER_TAIL.exec(
      this.buf.length > this.tailWindow ? this.buf.slice(-this.tailWindow) : this.buf,
    );
    return this.emit(m === null ? this.buf.length : this.buf.length - m[0].length);
  }

  summary(): MaskSummary {
    return this.sum.toSummary();
  }

  /** Where to cut so that a suffix which could start an identifier stays held. */
  private suspiciousCut(s: string, from: number): number {
    const scanFrom = Math.max(from, s.length - 2 * this.tailWindow);
    const tail = s.slice(scanFrom);
    const m = TAIL_RE.exec(tail);
    if (m === null) return s.length;
    const hold = Math.min(tail.length - m.index, this.tailWindow);
    return s.length - hold;
  }

  private emit(cut: number): string {
    if (cut <= 0) return "";
    if (this.a.detectors.empty) {
      const raw = this.buf;
      this.buf = raw.slice(cut);
      return raw.slice(0, cut);
    }
    // Scan with the tail of what was already emitted as context, so a label that went out
    // ("MRN: ") still marks the number that arrives in the next frame.
    const base = this.prev.length;
    const s = this.prev + this.buf;
    cut += base;
    let spans = findByLine(this.a, s);
    if (spans !== null) {
      const kept: Span[] = [];
      for (const sp of spans) {
        if (sp.end <= base) continue; // inside text already emitted
        kept.push(sp.start < base ? { start: base, end: sp.end, det: sp.det } : sp);
      }
      spans = kept.length > 0 ? kept : null;
    }
    if (spans !== null) {
      // never split an identifier: move the cut before a match that crosses it
      for (let i = spans.length - 1; i >= 0; i--) {
        const sp = spans[i]!;
        if (sp.start < cut && sp.end > cut) cut = sp.start;
      }
    }
    if (cut <= base) return "";
    this.buf = s.slice(cut);
    this.prev = s.slice(Math.max(0, cut - CONTEXT), cut);
    if (spans === null) return s.slice(base, cut);
    let used = false;
    for (const sp of spans) {
      if (sp.end <= cut) {
        this.sum.hit(sp.det.id, sp.det.id, null);
        used = true;
      }
    }
    if (!used) return s.slice(base, cut);
    const out = renderSpans(s, spans, this.key, false, base, cut);
    return out === DROP ? "" : out;
  }
}
