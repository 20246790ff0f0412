/**
 * The mutation suite for `custos audit verify`: a valid evidence repository built by real git
 * (commits signed by `git commit -S`, gpg.format=ssh, ssh-keygen keys made here), then one
 * tampering per case; verify must flag each with its own stable code, pass the clean repo,
 * and agree with real `git verify-commit` on every signature.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { auditVerify, type FindingCode, type VerifyResult } from "../gitops/audit/index.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";
import {
  addCommit,
  allowedSignersLine,
  buildRepo,
  type CommitSpec,
  chainOf,
  checkpointText,
  historySpecs,
  jsonl,
  makeKey,
  makeSegments,
  recordsMessage,
  runGit,
  type TestKey,
} from "./audit-fixture.ts";

const exec = promisify(execFile);
const GW = "gw1";

let tmp: string;
let key: TestKey;
let other: TestKey;
let allowed: string;
let allowedFile: string;
/** the valid repository every mutation starts from, and a checkpoint over its first 16 records */
let clean: Built;
let externalCheckpoint: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "custos-audit-verify-"));
  [key, other] = await Promise.all([
    makeKey(tmp, "gw1_key", `${GW}@custos.local`),
    makeKey(tmp, "stranger_key", "stranger@example.org"),
  ]);
  allowed = `${allowedSignersLine(key)}\n`;
  allowedFile = join(tmp, "allowed_signers");
  await writeFile(allowedFile, allowed);
  clean = await build("clean");
  externalCheckpoint = checkpointText(key, GW, clean.all, 16, clean.segOids[3]!);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

type Segment = { path: string; records: EvidenceRecord[] };

interface Built {
  dir: string;
  /** oid of each segment's record commit */
  segOids: string[];
  all: EvidenceRecord[];
}

/**
 * init, segments 0..4 (4 records each), with a checkpoint commit after segment 2 (as the
 * writer does: its own commit, naming the record commit before it).
 */
async function build(
  name: string,
  opts: {
    segments?: Segment[];
    tweak?: (specs: CommitSpec[]) => void;
  } = {},
): Promise<Built> {
  const dir = join(tmp, name);
  const segments = opts.segments ?? makeSegments(GW, 5, 4);
  const specs = historySpecs(GW, segments, key);
  opts.tweak?.(specs);
  const all = segments.flatMap((s) => s.records);
  const oids = await buildRepo(dir, GW, specs.slice(0, 4)); // init + segments 0..2
  const cpText = checkpointText(key, GW, all, 12, oids[3]!);
  const cpOid = await addCommit(dir, {
    files: { [`checkpoints/${GW}/000000000012.txt`]: cpText },
    key,
    message: `evidence ${GW}: checkpoint 12\n`,
    time: specs[3]!.time + 1,
  });
  const rest: string[] = [];
  for (const s of specs.slice(4)) rest.push(await addCommit(dir, s));
  void cpOid;
  return { dir, segOids: [...oids.slice(1), ...rest], all };
}

async function verify(dir: string, checkpoints: string[] = []): Promise<VerifyResult> {
  return auditVerify({
    repo: dir,
    allowedSigners: allowed,
    checkpoints: checkpoints.map((text, i) => ({ source: `cp-${i}.txt`, text })),
  });
}

function codes(r: VerifyResult): FindingCode[] {
  return [...new Set(r.findings.map((f) => f.code))].sort();
}

/** git verify-commit's verdict on each commit of the branch */
async function gitVerdicts(dir: string): Promise<Map<string, boolean>> {
  const list = (await runGit(dir, ["rev-list", `evidence/${GW}`])).split("\n").filter(Boolean);
  const out = new Map<string, boolean>();
  await Promise.all(
    list.map(async (oid) => {
      try {
        await runGit(dir, [
          "-c",
          "gpg.format=ssh",
          "-c",
          `gpg.ssh.allowedSignersFile=${allowedFile}`,
          "verify-commit",
          oid,
        ]);
        out.set(oid, true);
      } catch {
        out.set(oid, false);
      }
    }),
  );
  return out;
}

/** verify's verdict on signatures agrees with git's, commit by commit */
async function expectAgreesWithGit(dir: string, r: VerifyResult): Promise<void> {
  const git = await gitVerdicts(dir);
  const sigBad = new Set(r.findings.filter((f) => f.code.startsWith("SIG_")).map((f) => f.commit));
  for (const [oid, ok] of git) expect({ oid, ok: !sigBad.has(oid) }).toEqual({ oid, ok });
}

describe("audit verify on a clean repository", () => {
  it("passes, counts every record and agrees with git verify-commit", async () => {
    const r = await verify(clean.dir, [externalCheckpoint]);
    expect(r.findings).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.stats.records).toBe(20);
    expect(r.stats.commits).toBe(7);
    expect(r.gateways).toHaveLength(1);
    expect(r.gateways[0]!.lastSeq).toBe(20);
    expect(r.checkpoints).toEqual([
      { source: "cp-0.txt", gatewayId: GW, count: 16, commit: clean.segOids[3], status: "consistent" },
    ]);
    await expectAgreesWithGit(clean.dir, r);
  });

  it("verifies a clone (refs/remotes/origin/evidence/*) and a bare mirror the same way", async () => {
    const clone = join(tmp, "clone");
    await exec("git", ["clone", "-q", "--no-checkout", clean.dir, clone]);
    const r = await verify(clone, [externalCheckpoint]);
    expect(r.findings).toEqual([]);
    // the local branch git made at clone time and origin's are the same commit: verified once
    expect(r.gateways.map((g) => g.gatewayId)).toEqual([GW]);
    expect(r.stats.records).toBe(20);
    const mirror = join(tmp, "mirror.git");
    await exec("git", ["clone", "-q", "--mirror", clean.dir, mirror]);
    expect((await verify(mirror, [externalCheckpoint])).ok).toBe(true);
  });

  it("--since verifies only later commits and still checks continuity", async () => {
    const r = await auditVerify({ repo: clean.dir, allowedSigners: allowed, since: clean.segOids[2]! });
    expect(r.findings).toEqual([]);
    expect(r.stats.commits).toBe(3); // checkpoint commit + two record commits
    expect(r.gateways[0]!.records).toBe(8);
    expect(r.gateways[0]!.chainHash).toBeNull(); // nothing to carry the chain from
  });

  it("--since carries the chained hash on from a checkpoint at that commit", async () => {
    const at12 = checkpointText(key, GW, clean.all, 12, clean.segOids[2]!);
    const full = await verify(clean.dir);
    const r = await auditVerify({
      repo: clean.dir,
      allowedSigners: allowed,
      since: clean.segOids[2]!,
      checkpoints: [
        { source: "at12", text: at12 },
        { source: "at16", text: externalCheckpoint },
      ],
    });
    expect(r.findings).toEqual([]);
    expect(r.gateways[0]!.chainHash).toBe(full.gateways[0]!.chainHash);
    expect(r.checkpoints.map((c) => c.status)).toEqual(["consistent", "consistent"]);
  });
});

describe("audit verify reads both directory layouts", () => {
  it("an hour-level repository (records/YYYY/MM/DD/HH/, before the minute level) passes", async () => {
    const segments = makeSegments(GW, 5, 4, "hour");
    expect(segments[0]!.path).toBe("records/2026/11/25/10/gw1-000000000001.jsonl");
    const b = await build("layout-hour", { segments });
    const r = await verify(b.dir);
    expect(r.findings).toEqual([]);
    expect(r.stats.records).toBe(20);
    await expectAgreesWithGit(b.dir, r);
  });

  it("a repository that moved from the hour to the minute level mid-history passes, --since too", async () => {
    const segments = makeSegments(GW, 5, 4, (i) => (i < 3 ? "hour" : "minute"));
    expect(segments[3]!.path).toBe("records/2026/11/25/12/00/gw1-000000000013.jsonl");
    const b = await build("layout-mixed", { segments });
    const r = await verify(b.dir);
    expect(r.findings).toEqual([]);
    expect(r.stats.records).toBe(20);
    const since = await auditVerify({ repo: b.dir, allowedSigners: allowed, since: b.segOids[3]! });
    expect(since.findings).toEqual([]);
    expect(since.gateways[0]!.records).toBe(4);
  });

  it("--since finds the last record in an hour directory holding both layouts", async () => {
    // segments 0 (10:00) and 1 (10:40) share hour 10: segment 0 sits in the hour itself (older
    // layout), segment 1 in its minute directory 40; the newer one must win, else SEQ_GAP
    const segments = makeSegments(GW, 5, 4, (i) => (i === 0 ? "hour" : "minute"));
    expect(segments[0]!.path).toBe("records/2026/11/25/10/gw1-000000000001.jsonl");
    expect(segments[1]!.path).toBe("records/2026/11/25/10/40/gw1-000000000005.jsonl");
    const b = await build("layout-same-hour", { segments });
    expect((await verify(b.dir)).findings).toEqual([]);
    const r = await auditVerify({ repo: b.dir, allowedSigners: allowed, since: b.segOids[1]! });
    expect(r.findings).toEqual([]);
    expect(r.gateways[0]!.records).toBe(12);
    expect(r.gateways[0]!.lastSeq).toBe(20);
  });

  it("a segment filed under the wrong minute -> RECORD_PATH", async () => {
    const segments = makeSegments(GW, 5, 4);
    const s = segments[4]!;
    expect(s.path).toBe("records/2026/11/25/12/40/gw1-000000000017.jsonl");
    s.path = "records/2026/11/25/12/41/gw1-000000000017.jsonl";
    const r = await verify((await build("layout-wrong-minute", { segments })).dir);
    expect(codes(r)).toEqual(["RECORD_PATH"]);
    expect(r.findings[0]!.message).toMatch(/minute 2026\/11\/25\/12\/41 .* minute 2026\/11\/25\/12\/40/);
  });

  it("a segment nested deeper than the minute -> RECORD_PATH", async () => {
    const segments = makeSegments(GW, 5, 4);
    segments[4]!.path = "records/2026/11/25/12/40/00/gw1-000000000017.jsonl";
    const r = await verify((await build("layout-too-deep", { segments })).dir);
    expect(codes(r)).toContain("RECORD_PATH");
  });
});

/** append one more commit by the key holder to a copy of the clean repo */
async function withExtraCommit(
  name: string,
  files: Record<string, string | null>,
  k: TestKey | null = key,
): Promise<string> {
  const dir = join(tmp, name);
  await cp(clean.dir, dir, { recursive: true });
  await addCommit(dir, { files, key: k, message: `evidence ${GW}: tamper\n`, time: 1_800_000_000 });
  return dir;
}

function seg(i: number): Segment {
  return makeSegments(GW, 5, 4)[i]!;
}

describe("audit verify catches each mutation with its own code", () => {
  it("edit a line of an earlier record file -> LINE_CHANGED", async () => {
    const s = seg(0);
    const edited = [...s.records];
    edited[2] = { ...edited[2]!, user: { username: "someone-else", groups: [] } };
    const r = await verify(await withExtraCommit("edit-line", { [s.path]: jsonl(edited) }));
    expect(codes(r)).toEqual(["LINE_CHANGED"]);
    expect(r.findings[0]).toMatchObject({ path: s.path, line: 3 });
    expect(r.ok).toBe(false);
  });

  it("drop a line -> LINE_REMOVED", async () => {
    const s = seg(1);
    const r = await verify(
      await withExtraCommit("drop-line", { [s.path]: jsonl(s.records.filter((_, i) => i !== 1)) }),
    );
    expect(codes(r)).toEqual(["LINE_REMOVED"]);
    expect(r.findings[0]).toMatchObject({ path: s.path, line: 2 });
  });

  it("delete a file -> FILE_DELETED", async () => {
    const s = seg(1);
    const r = await verify(await withExtraCommit("delete-file", { [s.path]: null }));
    expect(codes(r)).toEqual(["FILE_DELETED"]);
    expect(r.findings[0]!.path).toBe(s.path);
  });

  it("rewrite a non-record file (README) -> FILE_MODIFIED; appending to it is allowed", async () => {
    expect(
      codes(await verify(await withExtraCommit("readme-rewrite", { "README.md": "# nothing to see\n" }))),
    ).toEqual(["FILE_MODIFIED"]);
    const ok = await verify(
      await withExtraCommit("readme-append", { "README.md": "# evidence\nmore notes\n" }),
    );
    expect(ok.findings).toEqual([]);
  });

  it("drop a commit and re-sign the rest (key holder) -> SEQ_GAP", async () => {
    const segments = makeSegments(GW, 5, 4);
    segments.splice(3, 1); // records 13..16 and their commit vanish; trailers recomputed as an attacker would
    const b = await build("drop-commit", { segments });
    const r = await verify(b.dir);
    expect(codes(r)).toEqual(["SEQ_GAP"]);
    expect(r.findings[0]!.message).toContain("13..16");
  });

  it("drop a commit without the key (re-parent, keep old signature) -> SIG_INVALID, as git says", async () => {
    const dir = join(tmp, "drop-commit-nokey");
    await cp(clean.dir, dir, { recursive: true });
    // make the last commit's parent the one before its real parent, keeping its signature
    const last = clean.segOids[4]!;
    const raw = await runGit(dir, ["cat-file", "commit", last]);
    const grand = await runGit(dir, ["rev-parse", `${last}~2`]);
    const forged = `${raw.replace(/^parent [0-9a-f]{40}$/m, `parent ${grand}`)}\n`;
    const file = join(tmp, "forged-commit");
    await writeFile(file, forged);
    const oid = await runGit(dir, ["hash-object", "-t", "commit", "-w", file]);
    await runGit(dir, ["update-ref", `refs/heads/evidence/${GW}`, oid]);
    const r = await verify(dir);
    expect(codes(r)).toEqual(["SIG_INVALID"]);
    await expectAgreesWithGit(dir, r);
  });

  it("reorder commits -> SEQ_OUT_OF_ORDER", async () => {
    const b = await build("reorder", {
      tweak: (specs) => {
        const [a, c] = [specs[4]!, specs[5]!];
        specs[4] = { ...c, time: a.time };
        specs[5] = { ...a, time: c.time };
      },
    });
    const r = await verify(b.dir);
    expect(codes(r)).toContain("SEQ_OUT_OF_ORDER");
    expect(r.ok).toBe(false);
  });

  it("re-sign with an unknown key -> SIG_UNKNOWN_KEY, as git says", async () => {
    const b = await build("unknown-key", {
      tweak: (specs) => (specs[5] = { ...specs[5]!, key: other, committerEmail: key.principal }),
    });
    const r = await verify(b.dir);
    expect(codes(r)).toEqual(["SIG_UNKNOWN_KEY"]);
    expect(r.findings[0]!.commit).toBe(b.segOids[4]);
    await expectAgreesWithGit(b.dir, r);
  });

  it("a key retired in allowed_signers (valid-before) signs a later commit -> SIG_KEY_EXPIRED, as git says", async () => {
    // the operator retires a leaked gateway key: valid-before its retirement; commits made
    // after it are refused by git verify-commit (verify time = committer time), and must be by verify
    const dir = join(tmp, "retired-key");
    await cp(clean.dir, dir, { recursive: true });
    const late = await addCommit(dir, {
      files: { "notes/after-retirement.txt": "x\n" },
      key,
      message: `evidence ${GW}: after retirement\n`,
      time: Date.UTC(2027, 0, 2) / 1000,
    });
    const retired = `${key.principal} namespaces="git",valid-before="20270101" ${key.publicKey}\n`;
    const retiredFile = join(tmp, "allowed_signers.retired");
    await writeFile(retiredFile, retired);
    const r = await auditVerify({ repo: dir, allowedSigners: retired });
    expect(codes(r)).toEqual(["SIG_KEY_EXPIRED"]);
    expect(r.findings[0]!.commit).toBe(late);
    // git agrees, commit by commit
    const list = (await runGit(dir, ["rev-list", `evidence/${GW}`])).split("\n").filter(Boolean);
    for (const oid of list) {
      const ok = await runGit(dir, [
        "-c",
        "gpg.format=ssh",
        "-c",
        `gpg.ssh.allowedSignersFile=${retiredFile}`,
        "verify-commit",
        oid,
      ]).then(
        () => true,
        () => false,
      );
      expect({ oid, ok }).toEqual({ oid, ok: oid !== late });
    }
    // a key not yet valid (valid-after) is refused the same way
    const early = `${key.principal} namespaces="git",valid-after="20300101" ${key.publicKey}\n`;
    const r2 = await auditVerify({ repo: dir, allowedSigners: early });
    expect(new Set(r2.findings.map((f) => f.code))).toEqual(new Set(["SIG_KEY_EXPIRED"]));
    expect(r2.findings.length).toBe(list.length);
  });

  it("unsigned commit -> SIG_MISSING, as git says", async () => {
    const b = await build("unsigned", {
      tweak: (specs) => (specs[4] = { ...specs[4]!, key: null, committerEmail: key.principal }),
    });
    const r = await verify(b.dir);
    expect(codes(r)).toEqual(["SIG_MISSING"]);
    await expectAgreesWithGit(b.dir, r);
  });

  it("committer is not the key's principal -> COMMITTER_MISMATCH (git verify-commit does not check this)", async () => {
    const b = await build("committer", {
      tweak: (specs) => (specs[2] = { ...specs[2]!, committerEmail: "gw2@custos.local" }),
    });
    const r = await verify(b.dir);
    expect(codes(r)).toEqual(["COMMITTER_MISMATCH"]);
    await expectAgreesWithGit(b.dir, r);
  });

  it("re-sign by the known key after rewriting history -> passes alone, caught by an earlier checkpoint", async () => {
    const segments = makeSegments(GW, 5, 4);
    const s3 = segments[3]!;
    s3.records[1] = { ...s3.records[1]!, verb: "list" }; // record 14 rewritten
    const b = await build("rewrite", { segments });
    expect((await verify(b.dir)).findings).toEqual([]); // signatures alone cannot catch the key holder
    const r = await verify(b.dir, [externalCheckpoint]);
    expect(codes(r)).toEqual(["CHECKPOINT_HASH_MISMATCH", "CHECKPOINT_NOT_IN_HISTORY"]);
    expect(r.checkpoints[0]!.status).toBe("inconsistent");
  });

  it("force-push / roll back to an older head -> passes alone, caught by an earlier checkpoint", async () => {
    const dir = join(tmp, "rollback");
    await cp(clean.dir, dir, { recursive: true });
    await runGit(dir, ["update-ref", `refs/heads/evidence/${GW}`, clean.segOids[2]!]);
    expect((await verify(dir)).findings).toEqual([]);
    const r = await verify(dir, [externalCheckpoint]);
    expect(codes(r)).toEqual(["CHECKPOINT_NOT_IN_HISTORY", "CHECKPOINT_ROLLBACK"]);
  });

  it("backdate a record -> TIME_BACKWARDS", async () => {
    const segments = makeSegments(GW, 5, 4);
    const r4 = segments[4]!.records;
    r4[2] = { ...r4[2]!, stageTimestamp: segments[3]!.records[0]!.stageTimestamp };
    const r = await verify((await build("backdate", { segments })).dir);
    expect(codes(r)).toEqual(["TIME_BACKWARDS"]);
    expect(r.findings[0]).toMatchObject({ path: segments[4]!.path, line: 3 });
  });

  it("seq gap inside a segment -> SEQ_GAP", async () => {
    const segments = makeSegments(GW, 5, 4);
    const last = segments[4]!.records;
    for (const rec of last.slice(2)) rec.custos.seq = (rec.custos.seq ?? 0) + 1; // 17 18 20 21
    const r = await verify((await build("seq-gap", { segments })).dir);
    expect(codes(r)).toEqual(["SEQ_GAP"]);
    expect(r.findings[0]).toMatchObject({ line: 3 });
  });

  it("seq repeat -> SEQ_REPEAT", async () => {
    const segments = makeSegments(GW, 5, 4);
    const last = segments[4]!.records;
    last[2]!.custos.seq = 18;
    last[3]!.custos.seq = 19; // 17 18 18 19
    const r = await verify((await build("seq-repeat", { segments })).dir);
    expect(codes(r)).toEqual(["SEQ_REPEAT"]);
    expect(r.findings[0]).toMatchObject({ line: 3 });
  });

  it("a line that is not an EvidenceRecord -> RECORD_INVALID", async () => {
    const s = seg(4);
    const dir = join(tmp, "invalid-record");
    const segments = makeSegments(GW, 4, 4);
    const b = await build("invalid-record-base", { segments });
    await cp(b.dir, dir, { recursive: true });
    const bad = `${canonicalJson({ apiVersion: "audit.k8s.io/v1", kind: "Event" })}\n`;
    await addCommit(dir, { files: { [s.path]: bad }, key, message: "x\n", time: 1_800_000_000 });
    expect(codes(await verify(dir))).toEqual(["RECORD_INVALID"]);
  });

  it("a merge commit -> MERGE_COMMIT", async () => {
    const dir = join(tmp, "merge");
    await cp(clean.dir, dir, { recursive: true });
    const head = clean.segOids[4]!;
    const tree = await runGit(dir, ["rev-parse", `${head}^{tree}`]);
    const oid = await runGit(
      dir,
      [
        "-c",
        "gpg.format=ssh",
        "-c",
        `user.signingkey=${key.path}`,
        "commit-tree",
        "-S",
        "-p",
        head,
        "-p",
        clean.segOids[1]!,
        "-m",
        "merge",
        tree,
      ],
      {
        GIT_COMMITTER_EMAIL: key.principal,
        GIT_COMMITTER_NAME: "gw",
        GIT_AUTHOR_EMAIL: key.principal,
        GIT_AUTHOR_NAME: "gw",
      },
    );
    await runGit(dir, ["update-ref", `refs/heads/evidence/${GW}`, oid]);
    expect(codes(await verify(dir))).toEqual(["MERGE_COMMIT"]);
  });

  it("a second `tree` header after the committer (git ignores it) does not hide what git shows -> FILE_DELETED", async () => {
    // the key holder signs a commit whose real tree (the first header, what git checks out, greps
    // and diffs) drops an earlier, checkpointed segment, with an extra `tree` header naming an
    // honest append: verify must check the tree git uses, not the last header
    const segments = makeSegments(GW, 5, 4);
    const b = await build("extra-tree-header-base", { segments: segments.slice(0, 4) });
    const dir = join(tmp, "extra-tree-header");
    await cp(b.dir, dir, { recursive: true });
    const s4 = segments[4]!;
    await mkdir(join(dir, dirname(s4.path)), { recursive: true });
    await writeFile(join(dir, s4.path), jsonl(s4.records));
    await runGit(dir, ["add", "-A"]);
    const honest = await runGit(dir, ["write-tree"]);
    await runGit(dir, ["rm", "-q", "--cached", segments[0]!.path]);
    const shown = await runGit(dir, ["write-tree"]);
    const head = await runGit(dir, ["rev-parse", "HEAD"]);
    const all = segments.flatMap((x) => x.records);
    const who = `custos gateway <${key.principal}> 1800000000 +0000`;
    const payload = `tree ${shown}\nparent ${head}\nauthor ${who}\ncommitter ${who}\ntree ${honest}\n\n${recordsMessage(GW, s4.records, chainOf(all.map((r) => canonicalJson(r))))}`;
    const file = join(tmp, "extra-tree-header.payload");
    await writeFile(file, payload);
    await rm(`${file}.sig`, { force: true });
    await exec("ssh-keygen", ["-q", "-Y", "sign", "-f", key.path, "-n", "git", file]);
    const sig = (await readFile(`${file}.sig`, "utf8")).trimEnd().split("\n").join("\n ");
    const eoh = payload.indexOf("\n\n") + 1;
    await writeFile(file, `${payload.slice(0, eoh)}gpgsig ${sig}\n${payload.slice(eoh)}`);
    const oid = await runGit(dir, ["hash-object", "-t", "commit", "-w", file]);
    await runGit(dir, ["update-ref", `refs/heads/evidence/${GW}`, oid]);
    // git: a good signature, and segment 0 is gone from the branch head
    expect(await runGit(dir, ["ls-tree", "-r", "--name-only", oid])).not.toContain(segments[0]!.path);
    const cpText = checkpointText(key, GW, all, 16, b.segOids[3]!);
    const r = await verify(dir, [cpText]);
    await expectAgreesWithGit(dir, r);
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain("FILE_DELETED");
    expect(r.findings.find((f) => f.code === "FILE_DELETED")).toMatchObject({
      commit: oid,
      path: segments[0]!.path,
    });
  });

  it("a checkpoint with a forged signature -> CHECKPOINT_INVALID", async () => {
    const forged = externalCheckpoint.replace("\n16\n", "\n17\n");
    expect(codes(await verify(clean.dir, [forged]))).toEqual(["CHECKPOINT_INVALID"]);
  });

  it("a checkpoint for a gateway whose branch is gone -> CHECKPOINT_NO_BRANCH", async () => {
    const gw7 = checkpointText(key, "gw7", clean.all, 16, clean.segOids[3]!);
    const r = await verify(clean.dir, [gw7]);
    expect(codes(r)).toEqual(["CHECKPOINT_NO_BRANCH"]);
  });

  it("an object whose bytes do not match its id -> OBJECT_CORRUPT", async () => {
    const dir = join(tmp, "corrupt");
    await cp(clean.dir, dir, { recursive: true });
    const s = seg(4);
    const blob = await runGit(dir, ["rev-parse", `${clean.segOids[4]}:${s.path}`]);
    const edited = jsonl(s.records).replace("agent-", "agenT-");
    const path = join(dir, ".git", "objects", blob.slice(0, 2), blob.slice(2));
    await rm(path, { force: true });
    await writeFile(path, deflateSync(Buffer.from(`blob ${Buffer.byteLength(edited)}\0${edited}`)));
    const r = await verify(dir);
    expect(codes(r)).toEqual(["OBJECT_CORRUPT"]);
    expect(await readFile(path)).toBeTruthy();
  });

  it("worker-thread parsing finds exactly what inline parsing finds", async () => {
    for (const name of ["edit-line", "backdate", "seq-gap", "invalid-record", "clean"]) {
      const dir = join(tmp, name);
      const inline = await auditVerify({ repo: dir, allowedSigners: allowed, workers: 0 });
      const threaded = await auditVerify({ repo: dir, allowedSigners: allowed, workers: 2 });
      expect(threaded.findings).toEqual(inline.findings);
      expect(threaded.gateways).toEqual(inline.gateways);
    }
  });
});
