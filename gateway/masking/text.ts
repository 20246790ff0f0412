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
import { renderSpans } from "./detect.ts";
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
   * Emit everything held now (e.g. after ~50 ms without output on an interactive TTY).
   * Trades protection against an identifier split exactly across the idle gap for
   * interactivity; never needed for correctness of complete lines.
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
 * "Member ID ", "March 12, ".
 */
const TAIL_RE = new RegExp(
  "(?:\\S+" +
    "|(?<![A-Za-z0-9_-])[0-9+(][0-9A-Za-z ()\\-./,:#]*" +
    `|(?<![A-Za-z0-9])(?:${KEYWORDS.join("|")})[A-Za-z0-9 .,:#'()-]{0,48}` +
    ")$",
  "i",
);

function lastBreak(s: string): number {
  const n = s.lastIndexOf("\n");
  const r = s.lastIndexOf("\r");
  return Math.max(n, r) + 1;
}

export class StreamMasker implements FlushableTextStreamMasker {
  private buf = "";
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
    return this.emit(this.buf.length);
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
    const s = this.buf;
    if (this.a.detectors.empty) {
      this.buf = s.slice(cut);
      return s.slice(0, cut);
    }
    const spans = this.a.detectors.find(s);
    if (spans !== null) {
      // never split an identifier: move the cut before a match that crosses it
      for (let i = spans.length - 1; i >= 0; i--) {
        const sp = spans[i]!;
        if (sp.start < cut && sp.end > cut) cut = sp.start;
      }
    }
    if (cut <= 0) return "";
    this.buf = s.slice(cut);
    if (spans === null) return s.slice(0, cut);
    let used = false;
    for (const sp of spans) {
      if (sp.end <= cut) {
        this.sum.hit(sp.det.id, sp.det.id, null);
        used = true;
      }
    }
    if (!used) return s.slice(0, cut);
    const out = renderSpans(s, spans, this.key, false, 0, cut);
    return out === DROP ? "" : out;
  }
}
