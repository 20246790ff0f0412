/**
 * Per-gateway sequence numbers must run 1, 2, 3, ... with no gap, repeat or reordering. The
 * tracker says, for each seq in arrival order, whether it is the next one or what is wrong.
 * Seen numbers are kept as sorted disjoint intervals: normally exactly one, [1, last].
 */
export type SeqVerdict = "next" | "gap" | "repeat" | "out-of-order";

export class SeqTracker {
  /** the seq that should arrive next */
  expected: number;
  private readonly seen: [number, number][] = [];

  /** `last`: the last seq already verified (0 when starting from the first record) */
  constructor(last = 0) {
    this.expected = last + 1;
    if (last > 0) this.seen.push([1, last]);
  }

  /** the highest seq seen */
  get last(): number {
    return this.expected - 1;
  }

  observe(seq: number): SeqVerdict {
    if (seq === this.expected) {
      this.add(seq);
      this.expected = seq + 1;
      return "next";
    }
    if (seq > this.expected) {
      this.add(seq);
      this.expected = seq + 1;
      return "gap";
    }
    if (this.has(seq)) return "repeat";
    this.add(seq);
    return "out-of-order";
  }

  private has(s: number): boolean {
    for (const [lo, hi] of this.seen) if (s >= lo && s <= hi) return true;
    return false;
  }

  private add(s: number): void {
    const last = this.seen[this.seen.length - 1];
    if (last && s === last[1] + 1) {
      last[1] = s;
      return;
    }
    this.seen.push([s, s]);
    this.seen.sort((x, y) => x[0] - y[0]);
    for (let i = this.seen.length - 1; i > 0; i--) {
      const prev = this.seen[i - 1]!;
      const cur = this.seen[i]!;
      if (cur[0] <= prev[1] + 1) {
        prev[1] = Math.max(prev[1], cur[1]);
        this.seen.splice(i, 1);
      }
    }
  }
}
