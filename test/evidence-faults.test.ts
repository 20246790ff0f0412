/**
 * Evidence sinks on a disk that refuses a write half-way (a real short write, then EFBIG, from
 * a child process under `ulimit -f`: what a full disk does to an append). A refused call must
 * leave no record behind, an acknowledged one must stay readable, and the sequence must go on
 * without a gap or a repeat.
 */
import { execFileSync, spawnSync } from "node:child_process";
import nodeFs, { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JsonlEvidenceSink } from "../gateway/evidence/jsonl-sink.ts";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import { nodeSigner } from "../gitops/signer/index.ts";

const CHILD = join(import.meta.dirname, "evidence-fault-child.ts");
const root = mkdtempSync(join(tmpdir(), "custos-faults-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** run the child under a file-size limit of `kib` KiB; its acknowledgements and refusals */
function runLimited(
  kind: "git" | "git-recover" | "jsonl",
  where: string,
  kib: number,
): { acked: [string, number][]; refused: string[]; other: string[] } {
  const r = spawnSync(
    "bash",
    ["-c", `ulimit -f ${kib}; exec "$0" --import tsx "$@"`, process.execPath, CHILD, kind, where, "3"],
    { encoding: "utf8", cwd: join(import.meta.dirname, "..") },
  );
  expect(r.stdout, r.stderr).toContain("DONE");
  const acked: [string, number][] = [];
  const refused: string[] = [];
  const other: string[] = [];
  for (const line of r.stdout.trim().split("\n").slice(0, -1)) {
    if (/^(LOG|READY|HEALTH) /.test(line)) {
      other.push(line);
      continue;
    }
    const [id, seq] = line.split(" ");
    if (seq === "ERR") refused.push(id!);
    else acked.push([id!, Number(seq)]);
  }
  return { acked, refused, other };
}

/** every record on the branch, in order: [auditID, seq] */
function committedRecords(dir: string): [string, number][] {
  const files = execFileSync("git", ["-C", dir, "ls-tree", "-r", "--name-only", "evidence/gw-fault"], {
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => f.startsWith("records/"))
    .sort((a, b) => a.slice(-17).localeCompare(b.slice(-17)));
  return files.flatMap((f) =>
    execFileSync("git", ["-C", dir, "show", `evidence/gw-fault:${f}`], { encoding: "utf8" })
      .split("\n")
      .slice(0, -1)
      .map((l) => JSON.parse(l) as { auditID: string; custos: { seq: number } })
      .map((r): [string, number] => [r.auditID, r.custos.seq]),
  );
}

describe("a write cut short by a full disk", () => {
  it("git writer: a record refused with its call is never committed later", async () => {
    const dir = join(root, "git");
    const { acked, refused } = runLimited("git", dir, 8);
    expect(acked.map(([id]) => id)).toEqual(["small-0", "small-1", "small-2"]);
    expect(refused).toContain("pair-small");
    // restart without the limit: the log is replayed
    const signer = nodeSigner(new Uint8Array(32).fill(7));
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-fault", signer, log: () => undefined });
    const next = await w.append(sampleRecord(9));
    await w.close();
    const files = execFileSync("git", ["-C", dir, "ls-tree", "-r", "--name-only", "evidence/gw-fault"], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((f) => f.startsWith("records/"))
      .sort();
    const committed = files.flatMap((f) =>
      execFileSync("git", ["-C", dir, "show", `evidence/gw-fault:${f}`], { encoding: "utf8" })
        .split("\n")
        .slice(0, -1)
        .map((l) => JSON.parse(l) as { auditID: string; custos: { seq: number } }),
    );
    expect(committed.map((r) => [r.auditID, r.custos.seq])).toEqual([...acked, [sampleRecord(9).auditID, 4]]);
    expect(next.seq).toBe(4);
  });

  it("JSON-lines sink: no torn line, no lost acknowledged record, no gap in the sequence", async () => {
    const file = join(root, "e.jsonl");
    const { acked, refused, other } = runLimited("jsonl", file, 6);
    expect(refused).toEqual(["pair-big"]);
    // not ready (/readyz) while its last write failed, ready again once one succeeds
    expect(other).toEqual([
      `HEALTH ${JSON.stringify({ ok: false, reason: "the last evidence write failed (EFBIG); the next record tries again" })}`,
      `HEALTH ${JSON.stringify({ ok: true, reason: "ok" })}`,
    ]);
    // the sink goes on once the write that failed is undone, with the next sequence number
    expect(acked).toEqual([
      ["small-0", 1],
      ["small-1", 2],
      ["small-2", 3],
      ["pair-small", 4],
      ["after", 5],
    ]);
    const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-fault" });
    expect((await s.append(sampleRecord(9))).seq).toBe(6);
    await s.close();
    const lines = readFileSync(file, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { auditID: string; custos: { seq: number } });
    expect(lines.map((r) => [r.auditID, r.custos.seq])).toEqual([...acked, [sampleRecord(9).auditID, 6]]);
  });
});

describe("a disk that takes writes again", () => {
  it("git writer: recovers by itself, gap-free, and nothing it refused is ever committed", async () => {
    const dir = join(root, "git-recover");
    const { acked, refused, other } = runLimited("git-recover", dir, 8);
    expect(refused).toEqual(expect.arrayContaining(["pair-small", "pair-big", "after"]));
    // refused while failed, then accepted again without a restart
    expect(other).toContain("READY false");
    expect(other[other.length - 1]).toBe("READY true");
    expect(acked.slice(0, 3).map(([id]) => id)).toEqual(["small-0", "small-1", "small-2"]);
    expect(acked.slice(-3).map(([id]) => id)).toEqual(["post-0", "post-1", "post-2"]);
    expect(acked.map(([, seq]) => seq)).toEqual(acked.map((_, i) => i + 1));
    const logs = other
      .filter((l) => l.startsWith("LOG "))
      .map((l) => JSON.parse(l.slice(4)) as { msg: string });
    expect(logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(["evidence writer failed", "evidence writer recovered"]),
    );
    // exactly what was acknowledged is on the branch, in order; nothing refused
    expect(committedRecords(dir)).toEqual(acked);
    // and a restart (no limit) goes on from there
    const signer = nodeSigner(new Uint8Array(32).fill(7));
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-fault", signer, log: () => undefined });
    expect((await w.append(sampleRecord(9))).seq).toBe(acked.length + 1);
    await w.close();
    expect(committedRecords(dir)).toEqual([...acked, [sampleRecord(9).auditID, acked.length + 1]]);
  });
});

describe("the writer lock after a crash", () => {
  it("a lock naming this process's pid, left by an earlier process (a container restart reuses the pid), is stale", async () => {
    const dir = join(root, "same-pid");
    const signer = nodeSigner(new Uint8Array(32).fill(7));
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-pid", signer, log: () => undefined });
    await w.append(sampleRecord(1));
    // in this process, a second writer is still refused
    await expect(
      openEvidenceRepo({ dir, gatewayId: "gw-pid", signer, log: () => undefined }),
    ).rejects.toMatchObject({ code: "EVIDENCE_REPO_LOCKED" });
    await w.close();
    // what kill -9 leaves of a gateway that ran as pid 1 in its container, found by its successor, pid 1 again
    writeFileSync(join(dir, "custos", "writer.lock"), `${process.pid} ${hostname()}\n`);
    const w2 = await openEvidenceRepo({ dir, gatewayId: "gw-pid", signer, log: () => undefined });
    expect((await w2.append(sampleRecord(2))).seq).toBe(2);
    await w2.close();
  });
});

describe("an evidence directory deleted under a running writer", () => {
  for (const durability of ["process", "machine"] as const) {
    it(`refuses every later record instead of acknowledging it into a deleted log (${durability})`, async () => {
      const dir = join(root, `deleted-${durability}`);
      const signer = nodeSigner(new Uint8Array(32).fill(7));
      const w = await openEvidenceRepo({
        dir,
        gatewayId: "gw-del",
        signer,
        durability,
        log: () => undefined,
      });
      expect((await w.append(sampleRecord(1))).seq).toBe(1);
      await w.flush();
      rmSync(dir, { recursive: true, force: true });
      // the log file is gone with its directory: what it holds after this is held nowhere
      await expect(w.append(sampleRecord(2))).rejects.toMatchObject({ code: "EVIDENCE_WRITER_FAILED" });
      await expect(w.append(sampleRecord(3))).rejects.toMatchObject({ code: "EVIDENCE_WRITER_FAILED" });
      await w.close().catch(() => undefined);
    });
  }
});

describe("a new write-ahead log file that cannot be created", () => {
  for (const durability of ["process", "machine"] as const) {
    it(`refuses while it cannot, keeps the current file, and recovers (${durability})`, async () => {
      const dir = join(root, `rotate-fail-${durability}`);
      let refuse = true;
      const fs = new Proxy(nodeFs, {
        get(t, k) {
          if (k === "openSync")
            return (p: string, f: string, m?: number) => {
              // the disk has no room for the next WAL file (ENOSPC from open(2))
              if (refuse && /0000000002\.wal$/.test(p))
                throw Object.assign(new Error(`ENOSPC: no space left on device, open '${p}'`), {
                  code: "ENOSPC",
                });
              return t.openSync(p, f, m);
            };
          return Reflect.get(t, k);
        },
      });
      const logs: Record<string, unknown>[] = [];
      const signer = nodeSigner(new Uint8Array(32).fill(7));
      const w = await openEvidenceRepo({
        dir,
        gatewayId: "gw-rot",
        signer,
        durability,
        fs,
        walRotateBytes: 2000,
        batchMaxDelayMs: 5,
        log: (e) => logs.push(e),
      });
      const acked: number[] = [];
      let i = 0;
      for (; i < 50; i++) {
        const r = await w.append(sampleRecord(i)).catch(() => null);
        if (r === null) break;
        acked.push(r.seq);
      }
      expect(i).toBeLessThan(50); // the rotation failed
      expect(w.health().ok).toBe(false);
      refuse = false;
      let back: { seq: number } | null = null;
      for (let n = 0; n < 200 && back === null; n++) {
        await new Promise((r) => setTimeout(r, 25));
        back = await w.append(sampleRecord(100 + n)).catch(() => null);
      }
      expect(back?.seq).toBe(acked.length + 1);
      expect(w.health().ok).toBe(true);
      expect(logs.map((l) => l.msg)).toContain("evidence writer recovered");
      await w.close();
      const seqs = execFileSync("git", ["-C", dir, "log", "-1", "--format=%B", "evidence/gw-rot"], {
        encoding: "utf8",
      });
      expect(seqs).toContain(`Custos-Last-Seq: ${acked.length + 1}`);
    });
  }
});
