/**
 * `custos audit query` and `report` over a two-gateway evidence repository built by real git,
 * and the `custos audit` command itself (spawned as a user would run it).
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { resolveGitDir } from "../gitops/audit/git-objects.ts";
import { compileFilter, queryRecords, type RecordFilter } from "../gitops/audit/query.ts";
import { buildReport, reportMarkdown } from "../gitops/audit/report.ts";
import {
  addCommit,
  allowedSignersLine,
  buildRepo,
  historySpecs,
  makeKey,
  makeRecord,
  runGit,
  type Layout,
  segmentPath,
  type TestKey,
  T0,
} from "./audit-fixture.ts";

const exec = promisify(execFile);
const USERS = ["alice", "bob", "ci-bot"];
const RESOURCES = ["pods", "secrets", "configmaps"];
const NAMESPACES = ["clinic", "billing"];
const NAMES = ["p0", "p1", "p2", "p3"];
const DECISIONS = ["allow", "deny", "requireApproval"] as const;

let tmp: string;
let repo: string;
let gitDir: string;
let allowedFile: string;
const all: EvidenceRecord[] = [];

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** 6 segments x 5 records per gateway, 25 minutes apart, a spread of users/objects/decisions */
function gatewaySegments(gw: string, offsetMin: number, salt: number, layout: (i: number) => Layout) {
  const segments: { path: string; records: EvidenceRecord[] }[] = [];
  let seq = 1;
  for (let i = 0; i < 6; i++) {
    const records: EvidenceRecord[] = [];
    for (let j = 0; j < 5; j++, seq++) {
      const k = Math.imul(seq + salt * 1000, 2654435761) >>> 0; // independent bits for each field
      const decision = DECISIONS[(k >>> 19) % 3]!;
      records.push(
        makeRecord(gw, seq, iso(T0 + (i * 25 + offsetMin) * 60_000 + j * 1000), {
          user: USERS[(k >>> 3) % USERS.length]!,
          resource: RESOURCES[(k >>> 7) % RESOURCES.length]!,
          namespace: NAMESPACES[(k >>> 11) % NAMESPACES.length]!,
          name: NAMES[(k >>> 13) % NAMES.length]!,
          verb: (k >>> 17) % 4 === 0 ? "list" : "get",
          decision,
          ruleId:
            decision === "allow" ? "read" : decision === "deny" ? "default-deny" : "secrets-need-approval",
          ...((k >>> 23) % 5 === 0 ? { masked: { "phi.ssn": 2, "field:/data/notes": 1 } } : {}),
          ...(decision === "requireApproval" && (k >>> 27) % 2 === 0 ? { approval: true } : {}),
        }),
      );
    }
    segments.push({
      path: segmentPath(gw, records[0]!.custos.seq ?? 0, records[0]!.stageTimestamp, layout(i)),
      records,
    });
  }
  return segments;
}

let key1: TestKey;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "custos-audit-query-"));
  const [k1, k2] = await Promise.all([
    makeKey(tmp, "k1", "gw1@custos.local"),
    makeKey(tmp, "k2", "gw2@custos.local"),
  ]);
  key1 = k1;
  allowedFile = join(tmp, "allowed_signers");
  await writeFile(allowedFile, `${allowedSignersLine(k1)}\n${allowedSignersLine(k2)}\n`);
  repo = join(tmp, "repo");
  const other = join(tmp, "gw2");
  // gw1 in the minute layout; gw2 alternates with the older hour layout (files directly in HH/
  // beside minute directories), so every query also reads both layouts, mixed in one hour
  const s1 = gatewaySegments("gw1", 0, 0, () => "minute");
  const s2 = gatewaySegments("gw2", 7, 3, (i) => (i % 2 === 0 ? "hour" : "minute"));
  expect(s2.map((s) => s.path.split("/").length)).toEqual([6, 7, 6, 7, 6, 7]);
  all.push(...s1.flatMap((s) => s.records), ...s2.flatMap((s) => s.records));
  const session = { "sessions/2026/11/25/audit-gw1-3.cast": '{"version":2}\n[0.1,"o","$ "]\n' };
  await Promise.all([
    buildRepo(repo, "gw1", historySpecs("gw1", s1, k1, { 0: session })),
    buildRepo(other, "gw2", historySpecs("gw2", s2, k2)),
  ]);
  await runGit(repo, ["fetch", "-q", other, "evidence/gw2:evidence/gw2"]);
  gitDir = await resolveGitDir(repo);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const byTime = (a: EvidenceRecord, b: EvidenceRecord) =>
  a.stageTimestamp < b.stageTimestamp ? -1 : a.stageTimestamp > b.stageTimestamp ? 1 : 0;

async function query(f: RecordFilter): Promise<EvidenceRecord[]> {
  const out: EvidenceRecord[] = [];
  for await (const r of queryRecords(gitDir, f)) out.push(r.record);
  return out;
}

describe("audit query", () => {
  it("finds who accessed a given object, across gateways, in time order", async () => {
    // an object both gateways served
    const key = (r: EvidenceRecord) =>
      `${r.objectRef?.resource}|${r.objectRef?.namespace}|${r.objectRef?.name}`;
    const gw2Objects = new Set(all.filter((r) => r.custos.gatewayId === "gw2").map(key));
    const target = all.find((r) => r.custos.gatewayId === "gw1" && gw2Objects.has(key(r)))!.objectRef!;
    const got = await query({ resource: target.resource!, namespace: target.namespace!, name: target.name! });
    const want = all
      .filter((r) => key(r) === `${target.resource}|${target.namespace}|${target.name}`)
      .sort(byTime);
    expect(want.length).toBeGreaterThan(0);
    expect(got).toEqual(want);
    expect(new Set(got.map((r) => r.custos.gatewayId)).size).toBe(2);
  });

  it("returns exactly the records a brute-force filter selects (property)", async () => {
    const t = (min: number) => new Date(T0 + min * 60_000).toISOString();
    const arb = fc.record(
      {
        resource: fc.constantFrom(...RESOURCES, "s*"),
        namespace: fc.constantFrom(...NAMESPACES),
        name: fc.constantFrom(...NAMES),
        user: fc.constantFrom(...USERS),
        verb: fc.constantFrom("get", "list"),
        decision: fc.constantFrom(...DECISIONS),
        since: fc.integer({ min: -30, max: 200 }).map(t),
        until: fc.integer({ min: 0, max: 260 }).map(t),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(arb, async (f) => {
        const want = all.filter(compileFilter(f)).sort(byTime);
        expect(await query(f)).toEqual(want);
      }),
      { numRuns: 60 },
    );
  });

  it("reports progress per hour partition: hours in order, records read growing to the total", async () => {
    const seen: { hour: string; records: number }[] = [];
    const got: EvidenceRecord[] = [];
    for await (const r of queryRecords(gitDir, { verb: "get" }, (p) => seen.push(p))) got.push(r.record);
    expect(got.length).toBeGreaterThan(0);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.map((p) => p.hour)).toEqual([...seen.map((p) => p.hour)].sort());
    for (const p of seen) expect(p.hour).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}$/);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.records).toBeGreaterThan(seen[i - 1]!.records);
    // every record of every gateway was read once, the filter only chose among them
    expect(seen.at(-1)!.records).toBe(all.length);
    const report: { hour: string; records: number }[] = [];
    await buildReport({ gitDir, onProgress: (p) => report.push(p) });
    expect(report).toEqual(seen);
  });

  it("prunes by time partition but keeps segments that spill over an hour boundary", async () => {
    // gw2's segment 4 starts at 10:07+100min = 11:47 and is filed under hour 11; a query from 12:00 still finds nothing lost
    const since = new Date(T0 + 110 * 60_000).toISOString();
    const got = await query({ since });
    expect(got).toEqual(all.filter((r) => r.stageTimestamp >= since.replace("Z", "000Z")).sort(byTime));
  });
});

describe("audit report", () => {
  it("counts decisions, rules, users, denials, approvals, masking and sessions", async () => {
    const r = await buildReport({ gitDir });
    expect(r.totals.records).toBe(60);
    const count = (p: (x: EvidenceRecord) => boolean) => all.filter(p).length;
    expect(r.totals.byDecision).toEqual({
      allow: count((x) => x.custos.decision === "allow"),
      deny: count((x) => x.custos.decision === "deny"),
      requireApproval: count((x) => x.custos.decision === "requireApproval"),
    });
    expect(r.denials).toHaveLength(count((x) => x.custos.decision === "deny"));
    expect(r.approvals).toHaveLength(count((x) => x.custos.approval !== undefined));
    expect(r.masking.recordsMasked).toBe(count((x) => x.custos.masking !== undefined));
    expect(r.masking.byRule["phi.ssn"]).toBe(2 * r.masking.recordsMasked);
    expect(r.sessions.files).toEqual(["sessions/2026/11/25/audit-gw1-3.cast"]);
    expect(r.gateways.map((g) => [g.gatewayId, g.records, g.firstSeq, g.lastSeq])).toEqual([
      ["gw1", 30, 1, 30],
      ["gw2", 30, 1, 30],
    ]);
    const md = reportMarkdown(r, { repo: "x", generatedAt: "2026-11-25T00:00:00Z" });
    expect(md).toContain("## Denials");
    expect(md).toContain("| default-deny |");
  });

  it("limits to a period", async () => {
    const since = "2026-11-25T11:00:00Z";
    const r = await buildReport({ gitDir, since });
    expect(r.totals.records).toBe(
      all.filter((x) => x.stageTimestamp >= "2026-11-25T11:00:00.000000Z").length,
    );
  });
});

describe("custos audit (the command)", () => {
  const cli = (args: string[]) =>
    exec("node", ["bin/custos.mjs", "audit", ...args], { cwd: join(import.meta.dirname, "..") }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        stdout: e.stdout,
        stderr: e.stderr,
      }),
    );

  it("verify exits 0 on the clean repo, 1 with --json findings after tampering, 2 on bad input", async () => {
    const ok = await cli(["verify", repo, "--allowed-signers", allowedFile]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^OK: \d+ commits and 60 records on 2 branch/m);

    const tampered = join(tmp, "tampered");
    await cp(repo, tampered, { recursive: true });
    await addCommit(tampered, {
      files: { [segmentPath("gw1", 1, all[0]!.stageTimestamp)]: null },
      key: key1,
      message: "tamper\n",
      time: 1_800_000_000,
    });
    const bad = await cli(["verify", tampered, "--allowed-signers", allowedFile, "--json"]);
    expect(bad.code).toBe(1);
    const res = JSON.parse(bad.stdout) as { ok: boolean; findings: { code: string; path: string }[] };
    expect(res.ok).toBe(false);
    expect(res.findings.map((f) => f.code)).toEqual(["FILE_DELETED"]);

    const usage = await cli(["verify", repo, "--allowed-signers", join(tmp, "missing")]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/cannot read allowed_signers file/);
    expect((await cli(["verify", join(tmp, "nope"), "--allowed-signers", allowedFile])).code).toBe(2);
  });

  it("query --json streams JSON lines; report prints markdown", async () => {
    const q = await cli(["query", repo, "--user", "alice", "--decision", "deny", "--json"]);
    expect(q.code).toBe(0);
    expect(all.some((r) => r.user.username === "alice" && r.custos.decision === "deny")).toBe(true);
    const lines = q.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EvidenceRecord);
    expect(lines.length).toBe(
      all.filter((r) => r.user.username === "alice" && r.custos.decision === "deny").length,
    );
    const rep = await cli(["report", repo, "--format", "md"]);
    expect(rep.code).toBe(0);
    expect(rep.stdout).toContain("# custos evidence report");
    expect((await cli(["query", repo, "--since", "yesterday"])).code).toBe(2);
  });
});
