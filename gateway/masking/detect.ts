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
}

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
  };
}

/** `(?<name>` -> `(?:` so many patterns can share one alternation (duplicate group names are a SyntaxError). */
function stripNamedGroups(src: string): string {
  return src.replace(/\(\?<([A-Za-z_$][\w$]*)>/g, "(?:");
}

function buildPrefilters(dets: readonly CompiledDetector[]): RegExp[] | null {
  const byFlags = new Map<string, string[]>();
  for (const d of dets) {
    if (/\\k</.test(d.source)) return null; // back-references to named groups: no combined pre-scan
    const list = byFlags.get(d.flags) ?? [];
    list.push(`(?:${stripNamedGroups(d.source)})`);
    byFlags.set(d.flags, list);
  }
  const out: RegExp[] = [];
  try {
    for (const [flags, parts] of byFlags) out.push(new RegExp(parts.join("|"), flags));
  } catch {
    return null;
  }
  return out;
}

export class DetectorSet {
  readonly key: string;
  readonly dets: readonly CompiledDetector[];
  private readonly prefilters: RegExp[] | null;
  constructor(dets: readonly CompiledDetector[]) {
    this.dets = dets;
    this.key = dets.map((d) => d.id).join(",");
    this.prefilters = dets.length > 0 ? buildPrefilters(dets) : [];
  }

  get empty(): boolean {
    return this.dets.length === 0;
  }

  /** Could any detector match? (false means certainly not) */
  mayMatch(s: string): boolean {
    const pf = this.prefilters;
    if (pf === null) return true;
    for (let i = 0; i < pf.length; i++) if (pf[i]!.test(s)) return true;
    return false;
  }

  /** Non-overlapping validated spans in `s`, in order; null when none. */
  find(s: string): Span[] | null {
    if (this.dets.length === 0 || s.length === 0 || !this.mayMatch(s)) return null;
    let spans: Span[] | null = null;
    for (const det of this.dets) {
      const re = det.re;
      re.lastIndex = 0;
      let m: RegExpExecArray | null = re.exec(s);
      while (m !== null) {
        const whole = m[0];
        if (whole.length === 0) {
          re.lastIndex++;
        } else {
          const value = m.groups?.value ?? whole;
          if (value.length > 0 && (det.validate === null || det.validate(value))) {
            const off = value === whole ? 0 : whole.endsWith(value) ? whole.length - value.length : whole.indexOf(value);
            const start = m.index + (off < 0 ? 0 : off);
            (spans ??= []).push({ start, end: start + (off < 0 ? whole.length : value.length), det });
          }
        }
        m = re.exec(s);
      }
    }
    if (spans === null) return null;
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
