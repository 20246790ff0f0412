import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hipaaSafeHarbor } from "../../sdk/detectors/index.ts";
import { compileDetector, DetectorSet } from "./detect.ts";
import { requirementOf, WordScanner } from "./gate.ts";

describe("detector gates", () => {
  it("derive digit runs, characters and words from patterns", () => {
    expect(requirementOf("\\d{3}-\\d{2}-\\d{4}", "")).toEqual([{ run: 4, digits: 9, chars: "-", words: [] }]);
    expect(requirementOf("(?:1[89]|20)\\d{2}", "")).toEqual([{ run: 4, digits: 4, chars: "", words: [] }]);
    expect(requirementOf("\\bMRN[:# ]*\\d{6,10}", "i")).toEqual([
      { run: 6, digits: 6, chars: "", words: ["mrn"] },
    ]);
    expect(requirementOf("a|\\d+", "")).toEqual([
      { run: 0, digits: 0, chars: "", words: [] },
      { run: 1, digits: 1, chars: "", words: [] },
    ]);
    // anything it does not understand claims nothing
    expect(requirementOf("(?<x>", "")).toEqual([{ run: 0, digits: 0, chars: "", words: [] }]);
  });

  it("the word scanner finds every occurrence, overlapping ones included", () => {
    const s = new WordScanner(["plan", "lane", "planet"]);
    expect([...(s.scan("a PLANE here") ?? [])].sort()).toEqual(["lane", "plan"]);
    expect(s.scan("nothing")).toBeNull();
  });

  it("are sound: a string a default detector matches always passes its gate", () => {
    const dets = hipaaSafeHarbor().map((d) =>
      compileDetector({ ...d, source: { file: "", line: 0, column: 0 } }),
    );
    const set = new DetectorSet(dets);
    const hits = new Set<string>();
    const fragments = [
      ..."0123456789-/.:@# ()+,abxyz".split(""),
      "123-45-6789",
      "MRN: 12345678",
      "(617) 555-0123",
      "+1 617 555 0123",
      "Fax: ",
      "Fax: (617) 555-0123",
      'name="Jane Roe"',
      "Patient: ",
      "Mei Fictional",
      "jane.roe@example.org",
      "1984-03-12",
      "03/12/1984",
      "March 12, 1984",
      "221 Baker Street",
      "ZIP: 02139",
      "MA 02139",
      "https://portal.example.org/p/12345",
      "VIN 1HGCM82633A004352",
      "Member ID: AB123456",
      "Account #: 44556677",
      "4111 1111 1111 1111",
      "Serial No: SN00412345",
      "License: D1234567",
      "10.1.2.3",
      "MRN-00481516",
      "7 Sample Court, Springfield 99903",
      "900-12-3456",
    ];
    const alphabet = fc.constantFrom(...fragments);
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 12 }).map((a) => a.join("")),
        (s) => {
          const gated = new Set(set.candidates(s).map((d) => d.id));
          // the cached path (with its one-pass character trigger) finds exactly what find does
          expect(set.findCached(s)).toEqual(set.find(s));
          for (const d of dets) {
            d.re.lastIndex = 0;
            if (d.re.test(s)) {
              hits.add(d.id);
              expect(gated.has(d.id)).toBe(true);
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
    // the test is only worth something if every detector actually matched sometimes
    expect([...hits].sort()).toEqual(dets.map((d) => d.id).sort());
  });

  it("findIn on a range of a longer text finds what find finds on the slice: cache hits, misses and collisions", () => {
    const dets = hipaaSafeHarbor().map((d) =>
      compileDetector({ ...d, source: { file: "", line: 0, column: 0 } }),
    );
    // four slots: most strings share a slot with another, so entries are replaced and compared
    const set = new DetectorSet(dets, 4);
    const fragment = fc.constantFrom(
      "123-45-6789",
      "MRN: 12345678",
      "(617) 555-0123",
      "jane.roe@example.org",
      "1984-03-12",
      "10.1.2.3",
      "web-7d9f8b6c5",
      "value-1-2",
      "plain",
      " ",
      "-",
      "0",
      "é",
      "x".repeat(300),
    );
    const piece = fc.array(fragment, { maxLength: 5 }).map((a) => a.join(""));
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 8 }), fc.nat(3), (pieces, reps) => {
        const text = `{"${pieces.join('","')}"}`;
        for (let r = 0; r <= reps; r++) {
          let from = 2;
          for (const p of pieces) {
            expect(set.findIn(text, from, from + p.length)).toEqual(set.find(p));
            from += p.length + 3;
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
