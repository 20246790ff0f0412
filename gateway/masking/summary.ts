import type { MaskSummary } from "../ports.ts";

/** Default cap on the JSON Pointers a summary lists (the counts stay exact). */
export const MAX_SUMMARY_PATHS = 200;

/** RFC 6901: "~" -> "~0", "/" -> "~1". */
export function pointerToken(seg: string | number): string {
  const s = String(seg);
  if (s.indexOf("~") === -1 && s.indexOf("/") === -1) return s;
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}

export function pointer(path: readonly (string | number)[]): string {
  let out = "";
  for (const seg of path) out += "/" + pointerToken(seg);
  return out;
}

export interface SummarySnapshot {
  readonly rules: ReadonlySet<string>;
  readonly counts: ReadonlyMap<string, number>;
  readonly paths: number;
  readonly truncated: boolean;
}

/** Collects what masking did, never the values. */
export class SummaryBuilder {
  readonly rules = new Set<string>();
  readonly paths: string[] = [];
  truncated = false;
  readonly counts = new Map<string, number>();
  constructor(readonly maxPaths: number = MAX_SUMMARY_PATHS) {}

  /** Record one masked value: the rule that fired, its count key, and (lazily) where. */
  hit(ruleId: string, countKey: string, path: readonly (string | number)[] | null): void {
    this.rules.add(ruleId);
    this.counts.set(countKey, (this.counts.get(countKey) ?? 0) + 1);
    if (path !== null) this.addPath(path);
  }

  addPath(path: readonly (string | number)[]): void {
    if (this.paths.length >= this.maxPaths) {
      this.truncated = true;
      return;
    }
    const p = pointer(path);
    // the same pointer is often hit by two detectors in one string: list it once
    if (this.paths[this.paths.length - 1] !== p) this.paths.push(p);
  }

  /** The state to return to if a piece of work is abandoned and redone (see jsontext.ts). */
  snapshot(): SummarySnapshot {
    return {
      rules: new Set(this.rules),
      counts: new Map(this.counts),
      paths: this.paths.length,
      truncated: this.truncated,
    };
  }

  restore(s: SummarySnapshot): void {
    this.rules.clear();
    for (const r of s.rules) this.rules.add(r);
    this.counts.clear();
    for (const [k, v] of s.counts) this.counts.set(k, v);
    this.paths.length = s.paths;
    this.truncated = s.truncated;
  }

  merge(s: MaskSummary): void {
    for (const r of s.rules) this.rules.add(r);
    for (const [k, v] of Object.entries(s.counts)) this.counts.set(k, (this.counts.get(k) ?? 0) + v);
    for (const p of s.paths) {
      if (this.paths.length >= this.maxPaths) {
        this.truncated = true;
        break;
      }
      this.paths.push(p);
    }
    if (s.truncated) this.truncated = true;
  }

  toSummary(): MaskSummary {
    const counts: Record<string, number> = {};
    for (const k of [...this.counts.keys()].sort()) counts[k] = this.counts.get(k)!;
    return { rules: [...this.rules].sort(), paths: [...this.paths], truncated: this.truncated, counts };
  }
}

export function emptySummary(): MaskSummary {
  return { rules: [], paths: [], truncated: false, counts: {} };
}
