import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkRecordShape, parseRecordPath, parseTimestampMicros } from "./records.ts";

/** reference: Date for the seconds, the fraction read as digits */
function reference(ts: string): number {
  const m = /^(.{19})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(ts)!;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return ms * 1000 + Number((m[2] ?? "").padEnd(6, "0").slice(0, 6));
}

describe("parseTimestampMicros", () => {
  it("agrees with Date on every RFC 3339 timestamp, microseconds kept (property)", () => {
    const arb = fc.tuple(
      fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
      fc.integer({ min: 0, max: 999_999 }),
      fc.constantFrom("Z", "+02:00", "-05:30"),
      fc.constantFrom(6, 3, 9, 0),
    );
    fc.assert(
      fc.property(arb, ([d, us, zone, digits]) => {
        const frac = digits === 0 ? "" : `.${String(us).padStart(6, "0").padEnd(9, "7").slice(0, digits)}`;
        const ts = `${d.toISOString().slice(0, 19)}${frac}${zone}`;
        expect(parseTimestampMicros(ts)).toBe(reference(ts));
      }),
      { numRuns: 3000 },
    );
  });

  it("rejects what is not RFC 3339", () => {
    for (const bad of [
      "2026-11-25 10:00:00Z",
      "2026-11-25T10:00:0x.000000Z",
      "2026-11-25T10:61:00.000000Z",
      "yesterday",
      "",
    ])
      expect(parseTimestampMicros(bad)).toBeNaN();
  });
});

describe("record paths and shape", () => {
  it("parses segment paths, gateway ids with dashes included", () => {
    expect(parseRecordPath("records/2026/11/25/10/gw-a-1-000000000042.jsonl")).toMatchObject({
      gatewayId: "gw-a-1",
      firstSeq: 42,
      hour: 10,
    });
    expect(parseRecordPath("records/2026/11/25/10/gw-a-1-000000000042.jsonl")).toMatchObject({
      minute: null,
      partition: "2026/11/25/10",
    });
    // the minute level (current writers)
    expect(parseRecordPath("records/2026/11/25/10/07/gw-a-1-000000000042.jsonl")).toMatchObject({
      gatewayId: "gw-a-1",
      firstSeq: 42,
      hour: 10,
      minute: 7,
      partition: "2026/11/25/10/07",
    });
    expect(parseRecordPath("records/2026/11/25/10/07/08/gw-000000000042.jsonl")).toBeNull();
    expect(parseRecordPath("records/2026/11/25/10/7/gw-000000000042.jsonl")).toBeNull();
    expect(parseRecordPath("records/2026/11/25/gw-000000000042.jsonl")).toBeNull();
    expect(parseRecordPath("records/2026/11/25/10/gw-42.jsonl")).toBeNull();
  });

  it("names the first missing field", () => {
    expect(checkRecordShape({ apiVersion: "audit.k8s.io/v1", kind: "Event" })).toMatch(/level/);
    expect(checkRecordShape([])).toMatch(/object/);
  });
});
