import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeqTracker } from "./sequence.ts";

function verdicts(seqs: number[], last = 0) {
  const t = new SeqTracker(last);
  return seqs.map((s) => t.observe(s));
}

describe("SeqTracker", () => {
  it("passes a sequence iff it is exactly last+1, last+2, ... (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 40 }),
        fc.integer({ min: 0, max: 5 }),
        (seqs, last) => {
          const ok = verdicts(seqs, last).every((v) => v === "next");
          const contiguous = seqs.every((s, i) => s === last + i + 1);
          expect(ok).toBe(contiguous);
        },
      ),
    );
  });

  it("calls a seq a repeat exactly when it arrived (or was verified) before (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 50 }),
        fc.integer({ min: 0, max: 5 }),
        (seqs, last) => {
          const v = verdicts(seqs, last);
          seqs.forEach((s, i) => {
            const before = s <= last || seqs.slice(0, i).includes(s);
            expect(v[i] === "repeat").toBe(before);
          });
        },
      ),
    );
  });

  it("names the failures", () => {
    expect(verdicts([1, 2, 4, 3, 3, 5])).toEqual(["next", "next", "gap", "out-of-order", "repeat", "next"]);
    expect(new SeqTracker(7).last).toBe(7);
  });
});
