/**
 * The evidence writer against real git: signatures accepted by `git verify-commit` and
 * `ssh-keygen -Y verify`, exact deterministic commit ids, layout, checkpoints, restart,
 * artefacts, the writer lock.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import nodeFs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { canonicalJson } from "../sdk/lib/canonical.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import {
  CHAIN_ZERO,
  chainStep,
  formatAllowedSigner,
  nodeSigner,
  parseAllowedSigners,
  parseCheckpoint,
  splitSignedCommit,
  verifyCheckpoint,
} from "../gitops/signer/index.ts";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "custos-evidence-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** the fixed test key: derived at test time from a fixed seed phrase, never stored */
const seed = new Uint8Array(createHash("sha256").update("custos deterministic evidence test key").digest());
const signer = nodeSigner(seed);
const FIXED = Date.UTC(2026, 0, 1, 12, 30, 0);
const quiet = (): void => undefined;

function gitOut(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" });
}

function allowedFile(principal: string): string {
  const f = join(root, `allowed-${principal}`);
  writeFileSync(f, `${formatAllowedSigner(principal, signer.publicKeyOpenSsh)}\n`);
  return f;
}

function recordLines(dir: string, ref: string): string[] {
  const files = gitOut(dir, "ls-tree", "-r", "--name-only", ref)
    .split("\n")
    .filter((f) => f.startsWith("records/"))
    .sort();
  return files.flatMap((f) => gitOut(dir, "show", `${ref}:${f}`).split("\n").slice(0, -1));
}

describe("evidence writer", () => {
  it("is deterministic: fixed clock + fixed key give the exact same commit ids", async () => {
    const heads: string[] = [];
    for (const name of ["det-a", "det-b"]) {
      const dir = join(root, name);
      const w = await openEvidenceRepo({
        dir,
        gatewayId: "gw-det",
        signer,
        clock: () => FIXED,
        batchMaxRecords: 2,
        batchMaxDelayMs: 600_000,
        log: quiet,
      });
      for (let i = 0; i < 5; i++) await w.append(sampleRecord(i));
      await w.close();
      heads.push(gitOut(dir, "rev-parse", "refs/heads/evidence/gw-det").trim());
      expect(gitOut(dir, "symbolic-ref", "HEAD").trim()).toBe("refs/heads/evidence/gw-det");
    }
    expect(heads[0]).toBe(heads[1]);
    // golden: changes only if the format (layout, message, README, signing) changes — then update
    // docs/auditor-guide.md ("What the repository holds") too.
    expect(heads[0]).toBe(DETERMINISTIC_HEAD);
  });

  it("every commit passes real git verify-commit and ssh-keygen -Y verify; fsck is clean", async () => {
    const dir = join(root, "verify");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-1",
      signer,
      clock: () => FIXED,
      batchMaxRecords: 3,
      log: quiet,
    });
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.append(sampleRecord(i))));
    await w.close();
    const allowed = allowedFile("gw-1@custos.local");
    const commits = gitOut(dir, "rev-list", "HEAD").trim().split("\n");
    expect(commits.length).toBeGreaterThanOrEqual(1 + 4 + 1); // init, 4 batches, checkpoint
    for (const c of commits) {
      const r = spawnSync(
        "git",
        [
          "-C",
          dir,
          "-c",
          "gpg.format=ssh",
          "-c",
          `gpg.ssh.allowedSignersFile=${allowed}`,
          "verify-commit",
          c,
        ],
        {
          encoding: "utf8",
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('Good "git" signature for gw-1@custos.local');
    }
    const log = spawnSync(
      "git",
      [
        "-C",
        dir,
        "-c",
        "gpg.format=ssh",
        "-c",
        `gpg.ssh.allowedSignersFile=${allowed}`,
        "log",
        "--show-signature",
        "-1",
      ],
      {
        encoding: "utf8",
      },
    );
    expect(log.stdout).toContain('Good "git" signature');
    // ssh-keygen alone, on the payload split out of the raw commit object
    const raw = execFileSync("git", ["-C", dir, "cat-file", "commit", commits[1]!]);
    const { payload, signature } = splitSignedCommit(raw);
    const sigFile = join(root, "commit.sig");
    writeFileSync(sigFile, signature!);
    const v = spawnSync(
      "ssh-keygen",
      ["-Y", "verify", "-f", allowed, "-I", "gw-1@custos.local", "-n", "git", "-s", sigFile],
      { input: payload },
    );
    expect(v.status, v.stderr.toString()).toBe(0);
    // a changed byte fails
    const bad = spawnSync(
      "ssh-keygen",
      ["-Y", "verify", "-f", allowed, "-I", "gw-1@custos.local", "-n", "git", "-s", sigFile],
      {
        input: payload.replace("records", "recordz"),
      },
    );
    expect(bad.status).not.toBe(0);
    execFileSync("git", ["-C", dir, "fsck", "--strict", "--no-dangling"], { stdio: "pipe" });
    const author = gitOut(dir, "log", "-1", "--format=%an <%ae> %at %cn <%ce>", commits[1]!).trim();
    expect(author).toBe(
      `custos gateway gw-1 <gw-1@custos.local> ${FIXED / 1000} custos gateway gw-1 <gw-1@custos.local>`,
    );
  });

  it("lays out records, sequence numbers, chain and checkpoints as the format says", async () => {
    const dir = join(root, "layout");
    const seen: string[] = [];
    let clock = FIXED;
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-2",
      signer,
      clock: () => clock,
      batchMaxRecords: 4,
      checkpointEvery: 8,
      onCheckpoint: (text) => seen.push(text),
      log: quiet,
    });
    const acks = await Promise.all(
      Array.from({ length: 10 }, (_, i) => w.append(sampleRecord(i * 3_600_000))),
    );
    expect(acks.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    clock += 1000;
    await w.close();
    const files = gitOut(dir, "ls-tree", "-r", "--name-only", "HEAD").trim().split("\n");
    const segs = files.filter((f) => f.startsWith("records/"));
    // a new segment per commit, in the minute (under its hour) of the batch's first record
    expect(segs).toEqual([
      "records/2026/01/01/12/00/gw-2-000000000001.jsonl",
      "records/2026/01/01/16/00/gw-2-000000000005.jsonl",
      "records/2026/01/01/20/00/gw-2-000000000009.jsonl",
    ]);
    expect(files).toContain("README.md");
    const lines = recordLines(dir, "HEAD");
    expect(lines.map((l) => JSON.parse(l).custos.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(lines.every((l) => JSON.parse(l).custos.gatewayId === "gw-2")).toBe(true);
    // checkpoints: one after 8 records, one on close (10)
    expect(files.filter((f) => f.startsWith("checkpoints/"))).toEqual([
      "checkpoints/gw-2/000000000008.txt",
      "checkpoints/gw-2/000000000010.txt",
    ]);
    expect(seen).toHaveLength(2);
    const allowed = parseAllowedSigners(formatAllowedSigner("gw-2@custos.local", signer.publicKeyOpenSsh));
    let h: Uint8Array = CHAIN_ZERO;
    for (const l of lines) h = chainStep(h, l);
    const last = parseCheckpoint(seen[1]!);
    expect(verifyCheckpoint(seen[1]!, allowed).ok).toBe(true);
    expect(last.count).toBe(10);
    expect(last.chain).toBe(Buffer.from(h).toString("hex"));
    expect(gitOut(dir, "show", "HEAD:checkpoints/gw-2/000000000010.txt")).toBe(seen[1]);
    // the checkpoint names the record commit holding seq 10, which is the checkpoint commit's parent
    expect(last.commit).toBe(gitOut(dir, "rev-parse", "HEAD~1").trim());
    expect(gitOut(dir, "log", "-1", "--format=%B", last.commit)).toContain("Custos-Last-Seq: 10");
    expect(gitOut(dir, "log", "-1", "--format=%B", last.commit)).toContain(`Custos-Chain: ${last.chain}`);
    // append-only: no commit modifies or deletes a file
    const changes = gitOut(dir, "log", "--format=", "--name-status", "HEAD")
      .trim()
      .split("\n")
      .filter(Boolean);
    expect(changes.every((c) => c.startsWith("A\t"))).toBe(true);
  });

  it("continues the sequence after a restart, never repeating one", async () => {
    const dir = join(root, "restart");
    for (let round = 0; round < 3; round++) {
      const w = await openEvidenceRepo({ dir, gatewayId: "gw-3", signer, batchMaxRecords: 5, log: quiet });
      const acks = await Promise.all(
        Array.from({ length: 7 }, (_, i) => w.append(sampleRecord(round * 100 + i))),
      );
      expect(acks[0]!.seq).toBe(round * 7 + 1);
      await w.close();
    }
    const seqs = recordLines(dir, "HEAD").map((l) => JSON.parse(l).custos.seq);
    expect(seqs).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  });

  it("stores sessions and policies beside the records, once each", async () => {
    const dir = join(root, "artefacts");
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-4", signer, clock: () => FIXED, log: quiet });
    const policy = JSON.stringify({
      schema: "custos.dev/v1alpha1",
      policyHash: `sha256:${"12".repeat(32)}`,
      rules: [],
    });
    await w.recordPolicy(policy);
    await w.appendArtifact({
      kind: "session",
      name: "exec",
      content: '{"version":2}\n[0.1,"o","$ "]\n',
      auditID: "audit-1",
    });
    await w.append(sampleRecord(1));
    await w.flush();
    const before = w.stats().commits;
    await w.recordPolicy(policy); // the same policy again: no new file, no new commit
    await w.flush();
    expect(w.stats().commits).toBe(before);
    await expect(w.recordPolicy("{}")).rejects.toMatchObject({ code: "EVIDENCE_POLICY_HASH" });
    await expect(
      w.appendArtifact({ kind: "session", name: "x", content: "", auditID: "../etc" }),
    ).rejects.toMatchObject({
      code: "EVIDENCE_ARTIFACT_NAME",
    });
    await w.close();
    expect(gitOut(dir, "show", `HEAD:policies/${"12".repeat(32)}.json`)).toBe(`${policy}\n`);
    expect(gitOut(dir, "show", "HEAD:sessions/2026/01/01/audit-1.cast")).toContain('"o"');
  });

  it("machine durability acknowledges after a shared fsync and commits the same way", async () => {
    const dir = join(root, "machine");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-5",
      signer,
      durability: "machine",
      batchMaxRecords: 50,
      log: quiet,
    });
    const acks = await Promise.all(Array.from({ length: 120 }, (_, i) => w.append(sampleRecord(i))));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(120);
    await w.close();
    expect(recordLines(dir, "HEAD")).toHaveLength(120);
    // committed WAL files are removed
    expect(readdirSync(join(dir, "custos", "wal")).length).toBe(1);
  });

  it("machine durability: a ref never names an object that is not yet fsync'd (power loss)", async () => {
    // an fs that watches which object files were renamed into place, which were fsync'd, and
    // what the branch ref pointed at each time it moved
    const watch = () => {
      const written = new Set<string>();
      const synced = new Set<string>();
      const fdPath = new Map<number, string>();
      const ev = { refMoves: 0, unsyncedAtMove: 0, refUnsynced: 0 };
      const promises = new Proxy(nodeFs.promises, {
        get(t, k) {
          if (k !== "open") return Reflect.get(t, k);
          return async (p: string, flags?: string) => {
            const fh = await t.open(p, flags);
            const datasync = fh.datasync.bind(fh);
            fh.datasync = async () => {
              await datasync();
              synced.add(String(p));
            };
            return fh;
          };
        },
      });
      const fs = new Proxy(nodeFs, {
        get(t, k) {
          if (k === "promises") return promises;
          if (k === "openSync")
            return (p: string, f: string) => {
              const fd = t.openSync(p, f);
              fdPath.set(fd, p);
              return fd;
            };
          if (k === "fdatasync")
            return (fd: number, cb: (e: Error | null) => void) =>
              t.fdatasync(fd, (e) => {
                if (!e) synced.add(fdPath.get(fd) ?? "");
                cb(e);
              });
          if (k === "renameSync")
            return (a: string, b: string) => {
              t.renameSync(a, b);
              if (b.includes("/objects/")) written.add(b);
              else if (b.endsWith("refs/heads/evidence/gw-pl")) {
                ev.refMoves++;
                for (const o of written) if (!synced.has(o)) ev.unsyncedAtMove++;
                if (!synced.has(a)) ev.refUnsynced++;
              }
            };
          return Reflect.get(t, k);
        },
      }) as typeof nodeFs;
      return { fs, ev };
    };
    const run = async (durability: "process" | "machine") => {
      const { fs, ev } = watch();
      const dir = join(root, `power-${durability}`);
      const w = await openEvidenceRepo({
        dir,
        gatewayId: "gw-pl",
        signer,
        durability,
        batchMaxRecords: 5,
        fs,
        log: quiet,
      });
      for (let i = 0; i < 3; i++)
        await Promise.all(Array.from({ length: 7 }, (_, j) => w.append(sampleRecord(i * 7 + j))));
      await w.close();
      expect(recordLines(dir, "HEAD")).toHaveLength(21);
      return ev;
    };
    const machine = await run("machine");
    expect(machine.refMoves).toBeGreaterThan(3);
    expect(machine).toMatchObject({ unsyncedAtMove: 0, refUnsynced: 0 });
    // the same watch sees process durability move the ref over page-cache-only objects
    expect((await run("process")).unsyncedAtMove).toBeGreaterThan(0);
  });

  it("rotates the write-ahead log and deletes only files whose records are committed", async () => {
    const dir = join(root, "rotate");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-8",
      signer,
      walRotateBytes: 4000,
      batchMaxRecords: 7,
      log: quiet,
    });
    for (let i = 0; i < 40; i++) await w.append(sampleRecord(i));
    await w.flush();
    // every record is committed, so at most the current file (and one not yet cleaned) remain
    expect(readdirSync(join(dir, "custos", "wal")).length).toBeLessThanOrEqual(2);
    await w.close();
    const w2 = await openEvidenceRepo({ dir, gatewayId: "gw-8", signer, walRotateBytes: 4000, log: quiet });
    expect(w2.stats().replayed).toBe(0);
    expect((await w2.append(sampleRecord(99))).seq).toBe(41);
    await w2.close();
    expect(recordLines(dir, "HEAD").map((l) => JSON.parse(l).custos.seq)).toEqual(
      Array.from({ length: 41 }, (_, i) => i + 1),
    );
  });

  it("rotates the log under sustained machine-durability load (fsync always in flight)", async () => {
    const dir = join(root, "rotate-machine");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-10",
      signer,
      durability: "machine",
      walRotateBytes: 3000,
      log: quiet,
    });
    const acks: Promise<{ seq: number }>[] = [];
    for (let i = 0; i < 60; i++) {
      acks.push(w.append(sampleRecord(i)));
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    expect((await Promise.all(acks)).map((a) => a.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    await w.flush();
    await w.close();
    expect(readdirSync(join(dir, "custos", "wal")).length).toBeLessThanOrEqual(2);
    expect(recordLines(dir, "HEAD")).toHaveLength(60);
  });

  it("holds appends back (in order, none dropped) while too many records await their commit", async () => {
    const dir = join(root, "backpressure");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-11",
      signer,
      batchMaxRecords: 5,
      maxQueuedRecords: 5,
      log: quiet,
    });
    const acks = Array.from({ length: 10 }, (_, i) => w.append(sampleRecord(i)));
    await Promise.resolve(); // the first ten reach the log: 10 records now await their commit
    for (let i = 10; i < 60; i++) acks.push(w.append(sampleRecord(i)));
    expect(w.stats().held).toBe(50); // the rest wait for room, in order
    expect((await Promise.all(acks)).map((a) => a.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    await w.flush();
    expect(w.stats().committedSeq).toBe(60);
    await w.close();
    await w.close(); // idempotent
    expect(recordLines(dir, "HEAD")).toHaveLength(60);
  });

  it("rejects a record that cannot be serialised without failing the writer or using a seq", async () => {
    const dir = join(root, "invalid");
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-12", signer, log: quiet });
    const bad = { ...sampleRecord(1), requestObject: { n: 1n } } as unknown as Parameters<typeof w.append>[0];
    const results = await Promise.allSettled([
      w.append(sampleRecord(0)),
      w.append(bad),
      w.append(sampleRecord(2)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: "EVIDENCE_RECORD_INVALID" });
    expect(results.flatMap((r) => (r.status === "fulfilled" ? [r.value.seq] : []))).toEqual([1, 2]);
    expect((await w.append(sampleRecord(3))).seq).toBe(3);
    await w.close();
    expect(recordLines(dir, "HEAD")).toHaveLength(3);
  });

  it("one log write carrying records, artefacts and a refused record keeps every line's bytes exact", async () => {
    // all appends of one tick share one WAL write; each record's segment bytes are a view into it
    const dir = join(root, "one-write");
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-13", signer, clock: () => FIXED, log: quiet });
    const wide = (i: number) => {
      const r = sampleRecord(i);
      return { ...r, user: { ...r.user, username: `ärzt-${i}-患者-😀\u2028"q"\\n\n\r\t` } };
    };
    const bad = { ...sampleRecord(2), requestObject: { n: 1n } } as unknown as Parameters<typeof w.append>[0];
    const results = await Promise.allSettled([
      w.append(wide(0)),
      w.appendArtifact({ kind: "session", name: "s", content: 'line 1\nline "2" é\n', auditID: "a-1" }),
      w.append(wide(1)),
      w.append(bad),
      w.append(wide(3)),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    await w.close();
    const want = [0, 1, 3].map((i, k) =>
      canonicalJson({ ...wide(i), custos: { ...wide(i).custos, gatewayId: "gw-13", seq: k + 1 } }),
    );
    expect(recordLines(dir, "HEAD")).toEqual(want);
    expect(gitOut(dir, "show", "HEAD:sessions/2026/01/01/a-1.cast")).toBe('line 1\nline "2" é\n');
  });

  it("commits a trickle of records within the batch delay, long after an earlier delay expired", async () => {
    const dir = join(root, "trickle");
    const w = await openEvidenceRepo({
      dir,
      gatewayId: "gw-9",
      signer,
      batchMaxRecords: 1000,
      batchMaxDelayMs: 30,
      log: quiet,
    });
    for (let i = 0; i < 5; i++) {
      const { seq } = await w.append(sampleRecord(i));
      const t0 = Date.now();
      while (w.stats().committedSeq < seq) {
        expect(Date.now() - t0).toBeLessThan(3000);
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await w.close();
  });

  it("lets one writer per repository hold the lock; a stale lock is taken over", async () => {
    const dir = join(root, "lock");
    const w = await openEvidenceRepo({ dir, gatewayId: "gw-6", signer, log: quiet });
    await expect(openEvidenceRepo({ dir, gatewayId: "gw-6", signer, log: quiet })).rejects.toMatchObject({
      code: "EVIDENCE_REPO_LOCKED",
    });
    await w.close();
    // a lock left by a process that no longer exists
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    const { hostname } = await import("node:os");
    writeFileSync(join(dir, "custos", "writer.lock"), `${dead} ${hostname()}\n`);
    const w2 = await openEvidenceRepo({ dir, gatewayId: "gw-6", signer, log: quiet });
    await w2.append(sampleRecord(1));
    await w2.close();
    expect(existsSync(join(dir, "custos", "writer.lock"))).toBe(false);
  });

  it("refuses a directory that is not a repo and a branch it did not write", async () => {
    const junk = join(root, "junk");
    mkdirSync(junk);
    writeFileSync(join(junk, "file"), "x");
    await expect(openEvidenceRepo({ dir: junk, gatewayId: "gw", signer, log: quiet })).rejects.toMatchObject({
      code: "EVIDENCE_NOT_A_REPO",
    });
    await expect(
      openEvidenceRepo({ dir: join(root, "x"), gatewayId: "bad id", signer, log: quiet }),
    ).rejects.toMatchObject({
      code: "EVIDENCE_GATEWAY_ID",
    });
    const foreign = join(root, "foreign");
    execFileSync("git", ["init", "-q", "--bare", foreign]);
    const tree = execFileSync("git", ["-C", foreign, "hash-object", "-t", "tree", "-w", "--stdin"], {
      input: "",
    })
      .toString()
      .trim();
    const c = execFileSync("git", ["-C", foreign, "commit-tree", tree, "-m", "not custos"], {
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: "a",
        GIT_AUTHOR_EMAIL: "a@b",
        GIT_COMMITTER_NAME: "a",
        GIT_COMMITTER_EMAIL: "a@b",
      },
    })
      .toString()
      .trim();
    execFileSync("git", ["-C", foreign, "update-ref", "refs/heads/evidence/gw-7", c]);
    await expect(
      openEvidenceRepo({ dir: foreign, gatewayId: "gw-7", signer, log: quiet }),
    ).rejects.toMatchObject({
      code: "EVIDENCE_FOREIGN_HEAD",
    });
  });
});

// records/YYYY/MM/DD/HH/MM/ (the minute level) since 2026-11-26; the hour-level layout gave 5146e6d6a1c7…
const DETERMINISTIC_HEAD = "ba86faebf77fce4354c629cf36c3b3dd82928b03";

describe("a write-ahead log of another gateway", () => {
  it("is refused, naming both ids; once its gateway committed it and stopped cleanly, the new id starts", async () => {
    const live = join(root, "foreign-live");
    const dir = join(root, "foreign");
    const w = await openEvidenceRepo({
      dir: live,
      gatewayId: "gw-a",
      signer,
      batchMaxDelayMs: 60_000,
      log: quiet,
    });
    for (let i = 0; i < 3; i++) await w.append(sampleRecord(i)); // in the WAL, not yet committed
    // what a killed gw-a leaves behind: the repo, its WAL, a lock of a process that is gone
    nodeFs.cpSync(live, dir, { recursive: true });
    rmSync(join(dir, "custos", "writer.lock"));
    await w.close();
    const err = await openEvidenceRepo({ dir, gatewayId: "gw-b", signer, log: quiet }).then(
      (b) => b.close().then(() => null),
      (e: Error & { code?: string }) => e,
    );
    expect(err).toMatchObject({ code: "EVIDENCE_WAL_FOREIGN" });
    expect(err!.message).toContain("gateway gw-a, not gw-b");
    expect(err!.message.split("\n")).toHaveLength(1);
    expect(gitOut(dir, "branch", "--list", "evidence/gw-b").trim()).toBe("");
    // the fix the message names: start gw-a once, then gw-b
    const a = await openEvidenceRepo({ dir, gatewayId: "gw-a", signer, log: quiet });
    await a.close();
    expect(recordLines(dir, "evidence/gw-a")).toHaveLength(3);
    const b = await openEvidenceRepo({ dir, gatewayId: "gw-b", signer, log: quiet });
    expect(b.stats().replayed).toBe(0);
    expect((await b.append(sampleRecord(7))).seq).toBe(1);
    await b.close();
    expect(recordLines(dir, "evidence/gw-b").map((l) => JSON.parse(l).custos.gatewayId)).toEqual(["gw-b"]);
  });
});
