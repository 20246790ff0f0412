/**
 * Content detectors compiled for speed. A DetectorSet runs a cheap combined pre-scan (one
 * alternation of every detector's pattern) before the individual detectors, so the common
 * string with no identifier costs one regex test. Matches from all detectors are collected,
 * validated, and resolved to non-overlapping spans (earliest start wins, then the longest),
 * then replaced in one pass: a replacement token is never rescanned.
 *
 * A detector pattern may mark the part to mask with a named group `value`, e.g.
 * `MRN[:# ]*(?<value>\d{6,10})`: the context ("MRN: ") stays, only the number is masked.
 *
 * A string holding a non-ASCII character is also read through its look-alike view (see
 * lookalike.ts: `１２３－４５－６７８９` reads `123-45-6789`), and what matches there masks the
 * original characters it was read from; an ASCII string takes no other step.
 */
import type { Detector, MaskStrategy } from "../../sdk/schema/config.ts";
import { Gate, requirementOf, WordScanner } from "./gate.ts";
import { type LookalikeView, lookalikeView } from "./lookalike.ts";
import { applyStrategy, DROP, type Dropped } from "./strategy.ts";
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
/** DetectorSet.cls: a digit; a trigger character; the mask bits (bits 0-28) */
const CLS_DIGIT = 1 << 30;
const CLS_TRIGGER = 1 << 29;
const CLS_MASK = CLS_TRIGGER - 1;
/**
 * A copy of `s` that shares no memory with a longer string. A slice of a long string may be a
 * view of it (V8's sliced strings): kept in a cache that outlives the request, it would keep the
 * whole response text alive.
 */
export function ownString(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** slots of the result cache per DetectorSet (at most 64 Ki strings of up to 256 characters) */
const FIND_CACHE_SLOTS = 1 << 16;

export class DetectorSet {
  readonly key: string;
  readonly dets: readonly CompiledDetector[];
  private readonly scanner: WordScanner | null;
  /** char code -> bit index in the mask, or -1 */
  private readonly charBit = new Int8Array(128).fill(-1);
  /**
   * char code -> its class for findIn's one pass: CLS_DIGIT for a digit, else its mask bit
   * (if any) and CLS_TRIGGER (if it is a trigger character)
   */
  private readonly cls = new Int32Array(128);
  /**
   * No character trigger: some detector has a gate alternative that needs neither a digit nor an
   * ASCII character (else every match of every detector contains a digit or one required
   * character of a digit-free alternative — CLS_TRIGGER — and a string with none is ruled out).
   */
  private readonly untriggered: boolean;
  private readonly maxRun: number;
  private readonly maxDigits: number;
  private readonly groups: FastGroup[][];
  private readonly always: boolean[];
  /** gate verdicts by (run, digits), then by character mask (small integers: fast Map keys) */
  private readonly cache: (Map<number, GateEntry> | undefined)[] = [];
  private cached = 0;

  /** detectors with a context pattern */
  private readonly contextual: readonly CompiledDetector[];

  /** `cacheSlots`: a power of two (tests use a tiny cache to make entries collide) */
  constructor(
    dets: readonly CompiledDetector[],
    private readonly cacheSlots = FIND_CACHE_SLOTS,
  ) {
    this.dets = dets;
    this.cachedStr = new Array<string | undefined>(cacheSlots);
    this.cachedRes = new Array<readonly Span[] | null>(cacheSlots).fill(null);
    this.sighted = new Int32Array(cacheSlots);
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
          if (c < 128 && this.charBit[c] === -1 && bits < 29) this.charBit[c] = bits++;
        }
      }
    }
    this.maxRun = maxRun;
    this.maxDigits = maxDigits;
    this.untriggered = trigger === null;
    for (let c = 0; c < 128; c++) {
      if (c >= 48 && c <= 57) this.cls[c] = CLS_DIGIT;
      else {
        const b = this.charBit[c]!;
        this.cls[c] = (b >= 0 ? 1 << b : 0) | (trigger !== null && trigger[c] === 1 ? CLS_TRIGGER : 0);
      }
    }
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
    return this.candidatesFor(s, this.gateEntry(s, 0, s.length));
  }

  /** `candidates` with the gate's verdict for `s` already computed */
  private candidatesFor(s: string, e: GateEntry): readonly CompiledDetector[] {
    if (!e.needWords || this.scanner === null) return e.base;
    const words = this.scanner.scan(s);
    if (words === null) return e.base;
    return this.evaluate(e.run, e.digits, e.mask, words).base;
  }

  /**
   * The gate's verdict without label words for `text.slice(from, to)` (not sliced); sets
   * `wide` when the text holds a non-ASCII character.
   */
  private gateEntry(text: string, from: number, to: number): GateEntry {
    let run = 0;
    let cur = 0;
    let mask = 0;
    let digits = 0;
    let wide = false;
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
        } else wide = true;
      }
    }
    this.wide = wide;
    return this.gateFor(run, digits, mask);
  }

  /** whether the text the last `gateEntry` saw holds a non-ASCII character */
  private wide = false;

  /** The gate's verdict for a string's longest digit run, digit count and character mask. */
  private gateFor(run: number, digits: number, mask: number): GateEntry {
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

  /**
   * `find`, with results for short strings cached: a list repeats the same names, labels, env
   * names and images in every item (and last-applied-configuration repeats the object), so
   * most lookups are hits. The returned spans are shared: callers must not mutate them.
   */
  findCached(s: string): readonly Span[] | null {
    return this.findIn(s, 0, s.length);
  }

  /**
   * `findCached(text.slice(from, to))` without slicing unless needed. One pass over the
   * characters computes the cheap checks — the character trigger (most strings of an object,
   * names, labels, enum values, hold no digit and none of the characters a digit-free match
   * needs: no detector can match), the gate's statistics (which rule out most strings with
   * digits: names, ports, quantities) — and a hash for the result cache, whose entries are
   * compared with the text in place: a repeated string costs no new string. `bytes`, when
   * given, are the text's own, one per character (an ASCII body): read instead of the text,
   * which Node hands over as an external string.
   */
  findIn(text: string, from: number, to: number, bytes: Uint8Array | null = null): readonly Span[] | null {
    if (this.dets.length === 0 || to <= from) return null;
    const cls = this.cls;
    let wide = false;
    let run = 0;
    let cur = 0;
    let acc = 0;
    let digits = 0;
    let h = 0x811c9dc5;
    for (let i = from; i < to; i++) {
      const c = bytes !== null ? bytes[i]! : text.charCodeAt(i);
      h = Math.imul(h ^ c, 0x01000193);
      if (c >= 128) {
        wide = true;
        cur = 0;
        continue;
      }
      const k = cls[c]!;
      if (k === CLS_DIGIT) {
        digits++;
        if (++cur > run) run = cur;
      } else {
        cur = 0;
        acc |= k;
      }
    }
    if (digits === 0 && (acc & CLS_TRIGGER) === 0 && !this.untriggered && !wide) return null;
    const mask = acc & CLS_MASK;
    const e = this.gateFor(run, digits, mask);
    // (a string with a non-ASCII character may hold a look-alike identifier the gate cannot see)
    if (!wide && e.base.length === 0 && !(e.needWords && this.scanner !== null)) return null;
    const len = to - from;
    const slot = (h ^ (h >>> 15)) & (this.cacheSlots - 1);
    if (len <= FIND_CACHE_MAX_LEN) {
      const cs = this.cachedStr[slot];
      if (cs !== undefined && cs.length === len) {
        let i = 0;
        if (bytes !== null) while (i < len && bytes[from + i] === cs.charCodeAt(i)) i++;
        else while (i < len && text.charCodeAt(from + i) === cs.charCodeAt(i)) i++;
        if (i === len) return this.cachedRes[slot]!;
      }
    }
    const str = from === 0 && to === text.length ? text : text.slice(from, to);
    // (the gate already ran)
    const r = wide ? this.findWide(str, e) : this.findAmong(str, this.candidatesFor(str, e));
    if (len > FIND_CACHE_MAX_LEN) return r;
    // Kept from its second sighting on: a string seen once (a uid, a name with a hash, a
    // message) costs no copy; one that repeats (a list's labels, images, env names) is kept.
    if (this.sighted[slot] !== h) {
      this.sighted[slot] = h;
      return r;
    }
    // a copy, not a slice: the cache outlives this text, which a slice would keep alive
    this.cachedStr[slot] = str === text ? str : ownString(str);
    this.cachedRes[slot] = r;
    return r;
  }

  /** the result cache: direct-mapped by the string's hash (a collision replaces the entry) */
  private readonly cachedStr: (string | undefined)[];
  private readonly cachedRes: (readonly Span[] | null)[];
  /** the hash of the last string not yet cached, per slot */
  private readonly sighted: Int32Array;

  /** Non-overlapping validated spans in `s`, in order; null when none (uncached: streams). */
  find(s: string): Span[] | null {
    if (this.dets.length === 0 || s.length === 0) return null;
    const e = this.gateEntry(s, 0, s.length);
    return this.wide ? this.findWide(s, e) : this.findAmong(s, this.candidatesFor(s, e));
  }

  /**
   * find on a string with a non-ASCII character (`e`: the gate's verdict on it): the matches in
   * `s`, and those in its look-alike view mapped back to the characters they were read from.
   * The view alone could miss what `s` holds (a removed zero-width space joins `x` to a number
   * the detector needs on its own), so both count; spans that overlap are joined.
   */
  private findWide(s: string, e: GateEntry): Span[] | null {
    const raw = this.findAmong(s, this.candidatesFor(s, e));
    const v = lookalikeView(s);
    if (v === null) return raw;
    const seen = this.findAmong(v.text, this.candidates(v.text));
    if (seen === null) return raw;
    return joinSpans(raw, fromView(seen, v));
  }

  /** find, over the detectors the gate let through */
  private findAmong(s: string, dets: readonly CompiledDetector[]): Span[] | null {
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

/** spans in a look-alike view as spans of the original string */
function fromView(spans: readonly Span[], v: LookalikeView): Span[] {
  return spans.map((sp) => ({ start: v.start[sp.start]!, end: v.end[sp.end - 1]!, det: sp.det }));
}

/** ordered non-overlapping spans covering both lists (an overlap: the earlier span, extended) */
function joinSpans(a: readonly Span[] | null, b: readonly Span[]): Span[] {
  const all = a === null ? [...b] : [...a, ...b];
  all.sort((x, y) => x.start - y.start || y.end - x.end);
  const out: Span[] = [];
  for (const sp of all) {
    const last = out[out.length - 1];
    if (last === undefined || sp.start >= last.end) out.push(sp);
    else if (sp.end > last.end) out[out.length - 1] = { start: last.start, end: sp.end, det: last.det };
  }
  return out;
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
