/**
 * The segment worker (chained hash, blob id, deflate off the writer's thread): the same bytes as
 * inline, and fail closed when it dies: appends are refused, none acknowledged is lost, and a
 * restart commits every acknowledged record exactly once.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { createSegmentHasher, inlineHasher, sealSegment } from "../gitops/evidence/segment-hasher.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import { nodeSigner } from "../gitops/signer/index.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";

const root = mkdtempSync(join(tmpdir(), "custos-evidence-worker-"));
const signer = nodeSigner(new Uint8Array(32).map((_, i) => i + 3));
const quiet = (): void => undefined;

afterAll(() => rmSync(root, { recursive: true, force: true }));

function seqsOn(dir: string): number[] {
  const files = execFileSync("git", ["-C", dir, "ls-tree", "-r", "--name-only", "HEAD"], { encoding: "utf8" })
    .split("\n")
    .filter((f) => f.startsWith("records/"))
    .sort();
  return files.flatMap((f) =>
    execFileSync("git", ["-C", dir, "show", `HEAD:${f}`], { encoding: "utf8", maxBuffer: 1 << 28 })
      .split("\n")
      .slice(0, -1)
      .map((l) => JSON.parse(l).custos.seq as number),
  );
}

describe("segment worker", () => {
  it("seals a segment exactly as inline (chain, blob id, loose object bytes)", async () => {
    const h = createSegmentHasher();
    try {
      expect(h.threaded).toBe(true);
      const segment = Buffer.from(
        Array.from({ length: 80 }, (_, i) => `${canonicalJson(sampleRecord(i))}\n`).join(""),
        "utf8",
      );
      const chain = new Uint8Array(32).fill(7);
      const [a, b] = [await h.seal(chain, segment), sealSegment(chain, segment)];
      expect(Buffer.from(a.chain).toString("hex")).toBe(Buffer.from(b.chain).toString("hex"));
      expect(a.oid).toBe(b.oid);
      expect(inflateSync(a.deflated).equals(inflateSync(b.deflated))).toBe(true);
      // the default, on the writer's thread (deflate of a large segment on the libuv pool)
      const c = await inlineHasher.seal(chain, segment);
      expect([Buffer.from(c.chain).toString("hex"), c.oid]).toEqual([
        Buffer.from(b.chain).toString("hex"),
        b.oid,
      ]);
      expect(inflateSync(c.deflated).equals(inflateSync(b.deflated))).toBe(true);
      expect(segment.length).toBeGreaterThan(64 * 1024); // over the async-deflate size
      // a view into a larger buffer (a record's bytes inside a WAL write) seals the view only
      const big = Buffer.concat([Buffer.from("R1 "), segment, Buffer.from("R2 x\n")]);
      const view = big.subarray(3, 3 + segment.length);
      expect((await h.seal(chain, view)).oid).toBe(b.oid);
    } finally {
      await h.close();
    }
  });

  it("fails closed when the worker dies: later appends are refused, a restart commits every acknowledged record once", async () => {
    const dir = join(root, "dies");
    const hasher = createSegmentHasher();
    expect(hasher.threaded).toBe(true);
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-w",
      signer,
      batchMaxRecords: 10,
      batchMaxDelayMs: 5,
      segmentWorker: hasher,
      log: quiet,
    });
    const first = await Promise.all(Array.from({ length: 25 }, (_, i) => w.append(sampleRecord(i))));
    await w.flush();
    expect(w.stats().committedSeq).toBe(25);
    await hasher.worker!.terminate(); // the worker is gone (crash, OOM, a bug)
    // appended before the writer notices: acknowledged (they are in the WAL), not committed
    const acked = await Promise.allSettled(
      Array.from({ length: 15 }, (_, i) => w.append(sampleRecord(25 + i))),
    );
    await expect(w.flush()).rejects.toMatchObject({ code: "EVIDENCE_WRITER_FAILED" });
    await expect(w.append(sampleRecord(99))).rejects.toMatchObject({ code: "EVIDENCE_WRITER_FAILED" });
    await expect(w.close()).rejects.toMatchObject({ code: "EVIDENCE_WRITER_FAILED" });
    const ackedSeqs = [
      ...first.map((a) => a.seq),
      ...acked.flatMap((r) => (r.status === "fulfilled" ? [r.value.seq] : [])),
    ];
    expect(ackedSeqs.length).toBeGreaterThan(25);
    // a restart (inline sealing here) replays the WAL: every acknowledged record, once, in order
    const again = await openEvidenceRepo({
      dir,
      gatewayId: "gw-w",
      signer,
      segmentWorker: false,
      log: quiet,
    });
    await again.close();
    const seqs = seqsOn(dir);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    for (const s of ackedSeqs) expect(seqs).toContain(s);
  });
});
