import type { MaskSummary } from "../ports.ts";

/** journal marker: the entry before it is a rule id that was added */
const RULE = -1;

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

/** A point to roll back to (see SummaryBuilder.snapshot). */
export interface SummarySnapshot {
  readonly journal: number;
  readonly paths: number;
  readonly truncated: boolean;
}

/** Collects what masking did, never the values. */
export class SummaryBuilder {
  readonly #rules = new Set<string>();
  readonly paths: string[] = [];
  truncated = false;
  readonly #counts = new Map<string, number>();
  /**
   * While a snapshot is open: what each change replaced (rule ids added; count keys with their
   * previous value), so a rollback undoes exactly those instead of every item copying the sets.
   */
  #journal: (string | number | undefined)[] | null = null;
  #open = 0;
  /** how many times count() ran (never goes back): whether a piece of work counted anything */
  counted = 0;
  constructor(readonly maxPaths: number = MAX_SUMMARY_PATHS) {}

  get rules(): ReadonlySet<string> {
    return this.#rules;
  }

  get counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  addRule(id: string): void {
    if (this.#rules.has(id)) return;
    this.#rules.add(id);
    this.#journal?.push(id, RULE);
  }

  count(key: string, n = 1): void {
    this.counted++;
    const old = this.#counts.get(key);
    this.#counts.set(key, (old ?? 0) + n);
    this.#journal?.push(key, old);
  }

  /** Record one masked value: the rule that fired, its count key, and (lazily) where. */
  hit(ruleId: string, countKey: string, path: readonly (string | number)[] | null): void {
    this.addRule(ruleId);
    this.count(countKey);
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

  /** Add what another builder collected (rules, counts; not its paths). */
  absorb(other: SummaryBuilder): void {
    for (const r of other.rules) this.addRule(r);
    for (const [k, v] of other.counts) this.count(k, v);
  }

  /**
   * The state to return to if a piece of work is abandoned and redone (see jsontext.ts); every
   * snapshot is ended by `restore` or `release`, innermost first.
   */
  snapshot(): SummarySnapshot {
    this.#journal ??= [];
    this.#open++;
    return { journal: this.#journal.length, paths: this.paths.length, truncated: this.truncated };
  }

  restore(s: SummarySnapshot): void {
    const j = this.#journal!;
    for (let i = j.length - 2; i >= s.journal; i -= 2) {
      const key = j[i] as string;
      const old = j[i + 1];
      if (old === RULE) this.#rules.delete(key);
      else if (old === undefined) this.#counts.delete(key);
      else this.#counts.set(key, old as number);
    }
    j.length = s.journal;
    this.paths.length = s.paths;
    this.truncated = s.truncated;
    this.release();
  }

  /** The work since the innermost open snapshot stays. */
  release(): void {
    if (--this.#open > 0) return;
    this.#journal = null;
  }

  merge(s: MaskSummary): void {
    for (const r of s.rules) this.addRule(r);
    for (const [k, v] of Object.entries(s.counts)) this.count(k, v);
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
