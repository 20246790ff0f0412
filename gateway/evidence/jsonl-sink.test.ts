import { spawnSync } from "node:child_process";
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { callRecord, rfc3339Micro } from "./record.ts";
import { JsonlEvidenceSink } from "./jsonl-sink.ts";

const rec = (id: string) =>
  callRecord({
    auditID: id,
    requestURI: "/api",
    method: "GET",
    sourceIP: "127.0.0.1",
    received: new Date("2026-01-01T00:00:00.123Z"),
    completed: new Date("2026-01-01T00:00:00.456Z"),
    code: 200,
    decision: "allow",
    effective: "allow",
    enforcement: "enforce",
    ruleId: "r",
    reason: "ok",
    policyHash: "sha256:00",
  });

describe("JSON-lines evidence sink", () => {
  it("writes one line per record with gap-free sequence numbers that continue after reopen", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => s.append(rec(`a${i}`))));
      expect(seqs.map((x) => x.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      await s.close();
      await expect(s.append(rec("late"))).rejects.toMatchObject({ code: "EVIDENCE_WRITE_FAILED" });
      const s2 = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      expect((await s2.append(rec("b"))).seq).toBe(51);
      await s2.close();
      const lines = (await readFile(file, "utf8"))
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.length).toBe(51);
      expect(lines[0]).toMatchObject({
        kind: "Event",
        apiVersion: "audit.k8s.io/v1",
        requestReceivedTimestamp: "2026-01-01T00:00:00.123000Z",
        custos: { gatewayId: "gw-a", seq: 1 },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writes single records with multi-byte text completely (one write per record when calls are sequential)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-ü" });
      for (let i = 0; i < 5; i++)
        await s.append({ ...rec(`é${i}`), requestURI: `/api/ünïcödé/${"ß".repeat(i * 1000)}` });
      await s.close();
      const lines = (await readFile(file, "utf8"))
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.auditID)).toEqual(["é0", "é1", "é2", "é3", "é4"]);
      expect(lines[4].requestURI).toBe(`/api/ünïcödé/${"ß".repeat(4000)}`);
      expect(lines[4].custos).toMatchObject({ gatewayId: "gw-ü", seq: 5 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("JSON-lines evidence sink after a torn write", () => {
  it("cuts a torn last line (never acknowledged) at open and goes on with the next sequence number", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      await s.append(rec("a1"));
      await s.append(rec("a2"));
      await s.close();
      // a crash or a full disk mid-write: part of a third line
      const whole = await readFile(file, "utf8");
      await appendFile(file, whole.split("\n")[1]!.slice(0, 40));
      const s2 = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      expect((await s2.append(rec("b"))).seq).toBe(3);
      await s2.close();
      const lines = (await readFile(file, "utf8"))
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => [l.auditID, l.custos.seq])).toEqual([
        ["a1", 1],
        ["a2", 2],
        ["b", 3],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("JSON-lines evidence sink whose file was deleted", () => {
  it("refuses records instead of acknowledging them into the deleted file", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      expect((await s.append(rec("a1"))).seq).toBe(1);
      await rm(dir, { recursive: true, force: true });
      expect(s.health()).toEqual({ ok: true, reason: "ok" });
      await expect(s.append(rec("a2"))).rejects.toMatchObject({ code: "EVIDENCE_WRITE_FAILED" });
      // /readyz says so
      expect(s.health()).toEqual({
        ok: false,
        reason: "the last evidence write failed (EVIDENCE_FILE_DELETED); the next record tries again",
      });
      await s.close();
      expect(s.health()).toEqual({ ok: false, reason: "the evidence sink is closed" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("JSON-lines evidence sink with more than one gateway", () => {
  it("refuses a second writer on the same file, in this process or another; a stale lock is taken over", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const s = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      await expect(JsonlEvidenceSink.open({ file, gatewayId: "gw-b" })).rejects.toMatchObject({
        code: "EVIDENCE_FILE_LOCKED",
      });
      // another gateway process on the same file
      const child = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          `import { JsonlEvidenceSink } from "./gateway/evidence/jsonl-sink.ts";
           await JsonlEvidenceSink.open({ file: ${JSON.stringify(file)}, gatewayId: "gw-c" }).then(
             () => console.log("OPENED"), (e) => console.log(e.code));`,
        ],
        { encoding: "utf8", cwd: path.join(import.meta.dirname, "..", "..") },
      );
      expect(child.stdout.trim(), child.stderr).toBe("EVIDENCE_FILE_LOCKED");
      expect((await s.append(rec("a1"))).seq).toBe(1);
      await s.close();
      // what a killed gateway leaves: a lock naming a process that is gone
      await writeFile(`${file}.lock`, `${spawnSync("true").pid} ${os.hostname()} x\n`);
      const s2 = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      expect((await s2.append(rec("a2"))).seq).toBe(2);
      await s2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("continues from this gateway's last record, not from another gateway's last line", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "custos-sink-"));
    try {
      const file = path.join(dir, "e.jsonl");
      const a = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      for (let i = 0; i < 3; i++) await a.append(rec(`a${i}`));
      await a.close();
      const b = await JsonlEvidenceSink.open({ file, gatewayId: "gw-b" });
      expect((await b.append(rec("b0"))).seq).toBe(1);
      await b.close();
      const a2 = await JsonlEvidenceSink.open({ file, gatewayId: "gw-a" });
      expect((await a2.append(rec("a3"))).seq).toBe(4);
      await a2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("rfc3339Micro", () => {
  it("writes audit timestamps with microseconds", () => {
    expect(rfc3339Micro(new Date("2026-01-01T01:02:03.045Z"))).toBe("2026-01-01T01:02:03.045000Z");
    expect(rfc3339Micro(new Date("1999-12-31T23:59:59.999Z"))).toBe("1999-12-31T23:59:59.999000Z");
    expect(rfc3339Micro(new Date(Date.UTC(12345, 0, 1)))).toBe("+012345-01-01T00:00:00.000000Z");
  });
});
