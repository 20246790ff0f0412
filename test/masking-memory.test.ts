/**
 * A masker outlives the responses it masks (one per policy): the caches it keeps between calls
 * (keys, detector results, trie steps) must not keep a response's text alive. A slice of a long
 * string may be a view of it (V8's sliced strings), so one cached slice would hold the whole
 * body: this measures the heap after masking several large bodies and dropping them.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import { ctx, makeConfig, patient, pod, rng } from "./masking-fixtures.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** `bodies` list texts of ~17 MB, mostly long free text (no identifier, longer than any cached string) */
function bodies(n: number, each: (text: string) => void): number {
  let size = 0;
  for (let b = 0; b < n; b++) {
    const r = rng(100 + b);
    const items = Array.from({ length: 80 }, (_, i) => {
      const p = pod(i + b * 1000, patient(r, i), "phi-a", { envCount: 20 }) as {
        metadata: { annotations: Record<string, string> };
      };
      p.metadata.annotations["example.com/description"] = `routine notes ${"lorem ipsum ".repeat(18_000)}`;
      return p;
    });
    const text = JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: {}, items });
    size = text.length;
    each(text);
  }
  return size;
}

describe("masking memory", () => {
  it("keeps no response text alive after the call", () => {
    const masker = createMasker(makeConfig(), { pseudonymKey: new Uint8Array(32).fill(5) });
    const c = ctx({ verb: "list", namespace: "" });
    masker.maskJsonText(JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: {}, items: [] }), c);
    // the same work without masking: what the engine and the test keep anyway
    const start = heapAfterGc();
    bodies(3, (text) => expect(text.length).toBeGreaterThan(0));
    const control = heapAfterGc() - start;
    const before = heapAfterGc();
    const size = bodies(3, (text) => expect(masker.maskJsonText(text, c).text.length).toBeGreaterThan(0));
    const grown = heapAfterGc() - before - control;
    expect(size).toBeGreaterThan(15_000_000);
    // the caches are bounded (a few MB); one retained body would be `size`
    expect(grown).toBeLessThan(size / 2);
  });
});
