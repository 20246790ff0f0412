import { describe, expect, it } from "vitest";
import { ctx, makeConfig, redactFieldMask } from "../../test/masking-fixtures.ts";
import { createMasker } from "./index.ts";
import { createJsonLinesMasker } from "./jsonlines.ts";

const NAME = "Patient Number1";
const config = makeConfig({
  masks: [
    redactFieldMask(
      "patients",
      { apiGroups: ["clinic.example.com"], resources: ["patients"] },
      "spec.patient",
      "patient",
    ),
  ],
  detectors: [],
});
const masker = createMasker(config, { pseudonymKey: new Uint8Array(32).fill(4) });
const c = ctx({ verb: "watch", apiGroup: "clinic.example.com", resource: "patients", apiPrefix: "apis" });

const table = (columns: boolean, cell: string) => ({
  kind: "Table",
  apiVersion: "meta.k8s.io/v1",
  metadata: { resourceVersion: "7" },
  columnDefinitions: columns
    ? [
        { name: "Name", type: "string", format: "name", description: "", priority: 0 },
        { name: "Patient", type: "string", format: "", description: "", priority: 0 },
      ]
    : [],
  rows: [
    {
      cells: ["p-1", cell],
      object: {
        kind: "PartialObjectMetadata",
        apiVersion: "meta.k8s.io/v1",
        metadata: { name: "p-1", namespace: "phi-a" },
      },
    },
  ],
});

function run(lines: string[]): string {
  const w = createJsonLinesMasker(masker, c);
  const out: Buffer[] = [];
  w.push(Buffer.from(lines.map((l) => `${l}\n`).join("")), (b) => out.push(b));
  w.end((b) => out.push(b));
  return Buffer.concat(out).toString("utf8");
}

describe("a Table watch's later events", () => {
  it("keep the first event's column masks, also when the kind is written with escapes", () => {
    const first = JSON.stringify({ type: "ADDED", object: table(true, NAME) });
    const later = JSON.stringify({ type: "MODIFIED", object: table(false, NAME) });
    for (const l of [
      later,
      later.replace('"kind":"Table"', '"kind":"T\\u0061ble"'),
      later.replace('"kind":"Table"', '"kind":"\\u0054able"'),
    ]) {
      const out = run([first, l]);
      expect(out, l).not.toContain(NAME);
      expect(out.split("\n").filter((x) => x !== "")).toHaveLength(2);
    }
  });

  it("an event whose only escapes are what an API server writes (\\u0026, \\u003c) is masked as any event", () => {
    const first = JSON.stringify({ type: "ADDED", object: table(true, NAME) });
    const later = JSON.stringify({ type: "MODIFIED", object: table(false, `${NAME} a&b <c>`) })
      .replaceAll("&", "\\u0026")
      .replaceAll("<", "\\u003c")
      .replaceAll(">", "\\u003e");
    const out = run([first, later]);
    expect(out).not.toContain("Patient Number1");
    expect(out).toContain("[MASKED:patient]");
  });
});
