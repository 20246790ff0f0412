import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createParsePool } from "./parse-pool.ts";
import { parseLines } from "./records.ts";

describe("parse pool", () => {
  it("parses in worker threads exactly as inline", async () => {
    const pool = createParsePool(2);
    try {
      expect(pool.threads).toBe(2);
      const text = `${JSON.stringify({ apiVersion: "audit.k8s.io/v1" })}\nnot json\n{"a":1}`;
      const bytes = Buffer.from(text);
      const [a, b] = await Promise.all([pool.parse(bytes), pool.parse(bytes.subarray(0, 10))]);
      expect(a).toEqual(parseLines(bytes));
      expect(b).toEqual(parseLines(bytes.subarray(0, 10)));
      // still 2: a worker that failed to start would have dropped the pool to inline parsing
      expect(pool.threads).toBe(2);
      expect(a.infos).toHaveLength(3);
      expect(a.leaves).toHaveLength(3 * 32);
      expect(Buffer.from(a.leaves.subarray(32, 64)).toString("hex")).toBe(
        createHash("sha256").update("not json").digest("hex"),
      );
    } finally {
      await pool.close();
    }
  });
});
