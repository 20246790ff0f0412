/**
 * Sealing segments (chained hash, blob id, deflate): the same chain as hashing line by line, git's
 * own blob id and loose-object bytes; and a sealing failure fails closed: appends are refused,
 * none acknowledged is lost, and a restart commits every acknowledged record exactly once.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { inlineHasher, type SegmentHasher } from "../gitops/evidence/segment-hasher.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import { chainStep, nodeSigner } from "../gitops/signer/index.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";

const root = mkdtempSync(join(tmpdir(), "custos-evidence-seal-"));
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

describe("segment sealing", () => {
  it("seals a segment: the line-by-line chain, git's blob id and loose-object bytes", async () => {
    const lines = Array.from({ length: 80 }, (_, i) => canonicalJson(sampleRecord(i)));
    const segment = Buffer.from(lines.map((l) => `${l}\n`).join(""), "utf8");
    const chain = new Uint8Array(32).fill(7);
    for (const s of [Buffer.from(`${lines[0]}\n`), segment]) {
      // one small segment (deflated inline) and one over the async-deflate size
      const c = await inlineHasher.seal(chain, s);
      const n = s === segment ? lines.length : 1;
      const want = lines.slice(0, n).reduce<Uint8Array>((h, l) => chainStep(h, l), chain);
      expect(Buffer.from(c.chain).toString("hex")).toBe(Buffer.from(want).toString("hex"));
      expect(c.oid).toBe(
        execFileSync("git", ["hash-object", "--stdin"], { input: s, encoding: "utf8" }).trim(),
      );
      expect(inflateSync(c.deflated).equals(Buffer.concat([Buffer.from(`blob ${s.length}\0`), s]))).toBe(
        true,
      );
    }
    expect(segment.length).toBeGreaterThan(64 * 1024);
    // a view into a larger buffer (a record's bytes inside a WAL write) seals the view only
    const big = Buffer.concat([Buffer.from("R1 "), segment, Buffer.from("R2 x\n")]);
    const view = await inlineHasher.seal(chain, big.subarray(3, 3 + segment.length));
    expect(view.oid).toBe((await inlineHasher.seal(chain, segment)).oid);
  });

  it("fails closed when sealing fails: later appends are refused, a restart commits every acknowledged record once", async () => {
    const dir = join(root, "fails");
    let broken = false;
    const hasher: SegmentHasher = {
      seal: (chain, segment) =>
        broken ? Promise.reject(new Error("sealing failed (injected)")) : inlineHasher.seal(chain, segment),
      close: () => Promise.resolve(),
    };
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-w",
      signer,
      batchMaxRecords: 10,
      batchMaxDelayMs: 5,
      segmentHasher: hasher,
      log: quiet,
    });
    const first = await Promise.all(Array.from({ length: 25 }, (_, i) => w.append(sampleRecord(i))));
    await w.flush();
    expect(w.stats().committedSeq).toBe(25);
    broken = true; // the commit side fails (a bug, memory, the disk)
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
    // a restart replays the WAL: every acknowledged record, once, in order
    const again = await openEvidenceRepo({ dir, gatewayId: "gw-w", signer, log: quiet });
    await again.close();
    const seqs = seqsOn(dir);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    for (const s of ackedSeqs) expect(seqs).toContain(s);
  });
});
