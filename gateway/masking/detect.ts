/**
 * Content detectors compiled for speed. A DetectorSet runs a cheap combined pre-scan (one
 * alternation of every detector's pattern) before the individual detectors, so the common
 * string with no identifier costs one regex test. Matches from all detectors are collected,
 * validated, and resolved to non-overlapping spans (earliest start wins, then the longest),
 * then replaced in one pass: a replacement token is never rescanned.
 *
 * A detector pattern may mark the part to mask with a named group `value`, e.g.
 * `MRN[:# ]*(?<value>\d{6,10})`: the context ("MRN: ") stays, only the number is masked.
 */
import type { Detector, MaskStrategy } from "../../sdk/schema/config.ts";
import { applyStrategy, DROP, type Dropped } from "./strategy.ts";
import { Gate, requirementOf, WordScanner } from "./gate.ts";
import { VALIDATORS, type Validator } from "./validate.ts";

export interface CompiledDetector {
  readonly id: string;
  readonly label: string;
  readonly category: string;
  readonly strategy: MaskStrategy;
  readonly scope: "everywhere" | "masks";
  readonly re: RegExp;
  readonly validate: Validator | null;
  readonly flags: string;
  readonly source: string;
  /** what every match must contain (see gate.ts) */
  readonly gate: Gate;
  /** matches count only on a line where another detector found an identifier */
  readonly context: RegExp | null;
}

/** categories whose matches do not make a line identifying enough for context patterns */
const NOT_ANCHORS = new Set(["ip", "url", "name"]);

export interface Span {
  start: number;
  end: number;
  det: CompiledDetector;
}

function cleanFlags(flags: string): string {
  // "g" is ours; "y" (sticky) and "d" would change exec semantics
  return [...new Set(flags.replace(/[gyd]/g, "").split(""))].sort().join("");
}

export function compileDetector(d: Detector): CompiledDetector {
  const flags = cleanFlags(d.flags);
  return {
    id: d.id,
    label: d.label,
    category: d.category,
    strategy: d.strategy,
    scope: d.scope,
    re: new RegExp(d.pattern, "g" + flags),
    validate: VALIDATORS[d.validate ?? "none"],
    flags,
    source: d.pattern,
    gate: new Gate(requirementOf(d.pattern, flags)),
    context: d.contextPattern === undefined ? null : new RegExp(d.contextPattern, "g" + flags),
  };
}

interface FastGroup {
  run: number;
  digits: number;
  /** bits of the characters the group needs */
  mask: number;
  words: readonly string[] | null;
}

interface GateEntry {
  /** detectors whose gate passes without any word */
  base: CompiledDetector[];
  /** whether finding a word could let more detectors pass */
  needWords: boolean;
  /** the character counts it was evaluated for (to re-evaluate with label words) */
  run: number;
  digits: number;
  mask: number;
}

/** strings up to this length have their detector results cached (per DetectorSet) */
const FIND_CACHE_MAX_LEN = 256;
/** strings per cache generation (two generations per DetectorSet: at most ~50 MB of strings) */
const FIND_CACHE_ENTRIES = 50_000;

export class DetectorSet {
  readonly key: string;
  readonly dets: readonly CompiledDetector[];
  private readonly scanner: WordScanner | null;
  /** char code -> bit index in the mask, or -1 */
  private readonly charBit = new Int8Array(128).fill(-1);
  private readonly maxRun: number;
  private readonly maxDigits: number;
  private readonly groups: FastGroup[][];
  private readonly always: boolean[];
  /** gate verdicts by (run, digits), then by character mask (small integers: fast Map keys) */
  private readonly cache: (Map<number, GateEntry> | undefined)[] = [];
  private cached = 0;

  /**
   * ASCII characters one of which every match of every detector contains (the digits, plus one
   * required character of each digit-free gate alternative); null when some detector has an
   * alternative that needs neither (then no string can be ruled out this cheaply).
   */
  private readonly trigger: Uint8Array | null;

  /** detectors with a context pattern */
  private readonly contextual: readonly CompiledDetector[];

  constructor(dets: readonly CompiledDetector[]) {
    this.dets = dets;
    this.contextual = dets.filter((d) => d.context !== null);
    let trigger: Uint8Array | null = new Uint8Array(128);
    for (let c = 48; c <= 57; c++) trigger[c] = 1;
    for (const d of dets) {
      if (d.gate.always) trigger = null;
      for (const g of d.gate.groups) {
        if (trigger === null) break;
        if (g.digits > 0 || g.run > 0) continue;
        const c = g.chars.length > 0 ? g.chars.charCodeAt(0) : 128;
        if (c >= 128) trigger = null;
        else trigger[c] = 1;
      }
    }
    this.trigger = trigger;
    this.key = dets.map((d) => d.id).join(",");
    const words = dets.flatMap((d) => d.gate.words);
    this.scanner = words.length > 0 ? new WordScanner(words) : null;
    let bits = 0;
    let maxRun = 0;
    let maxDigits = 0;
    for (const d of dets) {
      for (const g of d.gate.groups) {
        maxRun = Math.max(maxRun, g.run);
        maxDigits = Math.max(maxDigits, g.digits);
        for (const ch of g.chars) {
          const c = ch.charCodeAt(0);
          if (c < 128 && this.charBit[c] === -1 && bits < 30) this.charBit[c] = bits++;
        }
      }
    }
    this.maxRun = maxRun;
    this.maxDigits = maxDigits;
    this.always = dets.map((d) => d.gate.always);
    this.groups = dets.map((d) =>
      d.gate.groups.map((g) => {
        let mask = 0;
        for (const ch of g.chars) {
          const c = ch.charCodeAt(0);
          const b = c < 128 ? this.charBit[c]! : -1;
          // a character without a bit cannot be tested cheaply: require nothing (sound)
          if (b >= 0) mask |= 1 << b;
        }
        return { run: g.run, digits: g.digits, mask, words: g.words };
      }),
    );
  }

  get empty(): boolean {
    return this.dets.length === 0;
  }

  private evaluate(run: number, digits: number, mask: number, words: Set<string> | null): GateEntry {
    const base: CompiledDetector[] = [];
    let needWords = false;
    for (let i = 0; i < this.dets.length; i++) {
      let pass = this.always[i]!;
      for (const g of this.groups[i]!) {
        if (pass) break;
        if (g.run > run || g.digits > digits || (g.mask & mask) !== g.mask) continue;
        if (g.words === null) pass = true;
        else if (words === null) needWords = true;
        else for (const w of g.words) if (words.has(w)) pass = true;
      }
      if (pass) base.push(this.dets[i]!);
    }
    return { base, needWords, run, digits, mask };
  }

  /** The detectors whose cheap gate lets `s` through (see gate.ts). */
  candidates(s: string): readonly CompiledDetector[] {
    const e = this.gateEntry(s, 0, s.length);
    if (!e.needWords || this.scanner === null) return e.base;
    const words = this.scanner.scan(s);
    if (words === null) return e.base;
    return this.evaluate(e.run, e.digits, e.mask, words).base;
  }

  /** The gate's verdict without label words for `text.slice(from, to)` (not sliced). */
  private gateEntry(text: string, from: number, to: number): GateEntry {
    let run = 0;
    let cur = 0;
    let mask = 0;
    let digits = 0;
    const charBit = this.charBit;
    for (let i = from; i < to; i++) {
      const c = text.charCodeAt(i);
      if (c >= 48 && c <= 57) {
        digits++;
        cur++;
        if (cur > run) run = cur;
      } else {
        cur = 0;
        if (c < 128) {
          const b = charBit[c]!;
          if (b >= 0) mask |= 1 << b;
        }
      }
    }
    if (run > this.maxRun) run = this.maxRun;
    if (digits > this.maxDigits) digits = this.maxDigits;
    const slot = run * (this.maxDigits + 1) + digits;
    let byMask = this.cache[slot];
    if (byMask === undefined) {
      byMask = new Map();
      this.cache[slot] = byMask;
    }
    let e = byMask.get(mask);
    if (e === undefined) {
      e = this.evaluate(run, digits, mask, null);
      if (++this.cached > 65536) {
        this.cache.length = 0;
        this.cached = 0;
      }
      byMask.set(mask, e);
    }
    return e;
  }

  /** Whether the gate can let `text.slice(from, to)` through (false: find would return null). */
  private gatePasses(text: string, from: number, to: number): boolean {
    const e = this.gateEntry(text, from, to);
    return e.base.length > 0 || (e.needWords && this.scanner !== null);
  }

  /**
   * Whether `findCached` could find anything in `text.slice(from, to)` (the same character
   * trigger, run over a range of a larger text without slicing it): false means it returns null.
   */
  mayMatch(text: string, from: number, to: number): boolean {
    if (this.dets.length === 0 || to <= from) return false;
    const t = this.trigger;
    if (t !== null) {
      let i = from;
      for (; i < to; i++) {
        const c = text.charCodeAt(i);
        if (c >= 128 || t[c] === 1) break;
      }
      if (i === to) return false;
    }
    return this.gatePasses(text, from, to);
  }

  /**
   * `find`, with results for short
   * strings are cached: a list repeats the same names, labels, env names and images in every
   * item (and last-applied-configuration repeats the object), so most lookups are hits. The
   * returned spans are shared: callers must not mutate them.
   */
  findCached(s: string): readonly Span[] | null {
    if (this.dets.length === 0 || s.length === 0) return null;
    if (this.trigger !== null) {
      // most strings of an object (names, labels, enum values) hold no digit and none of the
      // characters a digit-free match needs ("@" of an e-mail, ":" of a URL): no detector can match
      const t = this.trigger;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128 || t[c] === 1) break;
      }
      if (i === s.length) return null;
    }
    if (s.length > FIND_CACHE_MAX_LEN) return this.find(s);
    // the gate rules out most strings with digits (names, ports, quantities) more cheaply than
    // a lookup of the string in the cache
    if (!this.gatePasses(s, 0, s.length)) return null;
    return this.findPassed(s);
  }

  /** `findCached` for a string `mayMatch` let through (the cheap checks are not repeated). */
  findPassed(s: string): readonly Span[] | null {
    if (s.length > FIND_CACHE_MAX_LEN) return this.find(s);
    let r = this.found.get(s);
    if (r !== undefined) return r;
    r = this.older.get(s);
    if (r === undefined) r = this.find(s);
    // two generations: when the young one is full it becomes the old one, so strings still in
    // use survive (a cheap LRU) and a list larger than the cache does not thrash it
    if (this.found.size >= FIND_CACHE_ENTRIES) {
      this.older = this.found;
      this.found = new Map();
    }
    this.found.set(s, r);
    return r;
  }

  private found = new Map<string, readonly Span[] | null>();
  private older = new Map<string, readonly Span[] | null>();

  /** Non-overlapping validated spans in `s`, in order; null when none (uncached: streams). */
  find(s: string): Span[] | null {
    if (this.dets.length === 0 || s.length === 0) return null;
    const dets = this.candidates(s);
    if (dets.length === 0) return null;

    let spans: Span[] | null = null;
    for (const det of dets) spans = collect(det.re, det, det.validate, s, 0, spans);
    if (spans === null) return null;
    if (this.contextual.length > 0) this.addContext(s, spans);
    if (spans.length === 1) return spans;
    spans.sort((a, b) => a.start - b.start || b.end - a.end);
    const out: Span[] = [];
    let lastEnd = -1;
    for (const sp of spans) {
      if (sp.start >= lastEnd) {
        out.push(sp);
        lastEnd = sp.end;
      }
    }
    return out;
  }

  /**
   * Context patterns: on each line holding an identifier (an anchor: any match but an IP, a URL
   * or a name), what a detector's context pattern matches is masked too — a name next to an
   * SSN or a date of birth. Only runs when something was found, so the gates stay sound.
   */
  private addContext(s: string, spans: Span[]): void {
    const lines = new Map<number, number>(); // line start -> line end
    for (const sp of spans) {
      if (NOT_ANCHORS.has(sp.det.category)) continue;
      const from = s.lastIndexOf("\n", sp.start - 1) + 1;
      if (lines.has(from)) continue;
      const nl = s.indexOf("\n", sp.end);
      lines.set(from, nl < 0 ? s.length : nl);
    }
    if (lines.size === 0) return;
    for (const det of this.contextual)
      for (const [from, to] of lines) collect(det.context!, det, null, s.slice(from, to), from, spans);
  }
}

/**
 * The matches of `re` in `text` as spans of `det` (offset by `base`), appended to `spans`: the
 * named group `value` when the pattern has one, else the whole match; `validate` (if any) must
 * accept the value.
 */
function collect(
  re: RegExp,
  det: CompiledDetector,
  validate: Validator | null,
  text: string,
  base: number,
  spans: Span[] | null,
): Span[] | null {
  re.lastIndex = 0;
  let m: RegExpExecArray | null = re.exec(text);
  while (m !== null) {
    const whole = m[0];
    if (whole.length === 0) {
      re.lastIndex++;
    } else {
      const value = m.groups?.value ?? whole;
      if (value.length > 0 && (validate === null || validate(value))) {
        const off =
          value === whole ? 0 : whole.endsWith(value) ? whole.length - value.length : whole.indexOf(value);
        const start = base + m.index + Math.max(off, 0);
        spans ??= [];
        spans.push({ start, end: start + (off < 0 ? whole.length : value.length), det });
      }
    }
    m = re.exec(text);
  }
  return spans;
}

/**
 * Replace the spans in `s`. If any span's strategy is drop and the caller can drop the whole
 * field, returns DROP; otherwise drop degrades to redact inside the string.
 */
export function renderSpans(
  s: string,
  spans: readonly Span[],
  key: Uint8Array,
  canDrop: boolean,
  from = 0,
  to = s.length,
): string | Dropped {
  let out = "";
  let pos = from;
  for (const sp of spans) {
    if (sp.start < from || sp.end > to) continue;
    const rep = applyStrategy(sp.det.strategy, sp.det.label, s.slice(sp.start, sp.end), key, canDrop);
    if (rep === DROP) return DROP;
    out += s.slice(pos, sp.start) + rep;
    pos = sp.end;
  }
  return out + s.slice(pos, to);
}
