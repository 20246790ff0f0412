/**
 * LocalApprovalService: the same fingerprints, signature blocks and grant rules as GitHub,
 * in a local git repository. Reviews are written through the same library calls the CLI uses.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ApprovalOutcome } from "../gateway/ports.ts";
import { GrantStore } from "../gitops/approvals/grants.ts";
import { LocalApprovalService } from "../gitops/approvals/local.ts";
import { LocalApprovalRepo } from "../gitops/approvals/local-repo.ts";
import { formatSignatureBlock, type ReviewDecision, signDecision } from "../gitops/approvals/signature.ts";
import { fetchLocalRequest, submitLocalDecision } from "../gitops/approvals/submit.ts";
import {
  group,
  MemorySink,
  operation,
  requirement,
  sshKeygen,
  type TestKey,
  TestClock,
  tempDir,
} from "./github/harness.ts";

let keys: Record<"alice" | "bob" | "mallory", TestKey>;
beforeAll(() => {
  const d = tempDir();
  keys = { alice: sshKeygen(d, "alice"), bob: sshKeygen(d, "bob"), mallory: sshKeygen(d, "mallory") };
});

const ALICE = 101;
const BOB = 102;

let dir: string;
let clock: TestClock;
let sink: MemorySink;

beforeEach(() => {
  dir = join(tempDir(), "approvals");
  clock = new TestClock(Date.now()); // the CLI helpers check expiry against real time in one test
  sink = new MemorySink();
});

function service(grants?: GrantStore): LocalApprovalService {
  return new LocalApprovalService({
    dir,
    approvalGroups: {
      security: group([
        { githubId: ALICE, login: "alice", keys: [keys.alice.publicLine] },
        { githubId: BOB, login: "bob", keys: [keys.bob.publicLine] },
      ]),
      other: group([{ githubId: 999, login: "mallory", keys: [keys.mallory.publicLine] }]),
    },
    evidence: sink,
    clock: clock.now,
    requestTtlSeconds: 600,
    log: () => {},
    ...(grants ? { grants } : {}),
  });
}

async function sign(
  out: ApprovalOutcome,
  key: TestKey,
  decision: ReviewDecision = "approve",
  opts: { githubId?: number } = {},
): Promise<void> {
  clock.advance(1); // reviews at distinct instants keep the verdict order stable
  const req = await fetchLocalRequest(dir, out.requestId, { now: clock.now() });
  await submitLocalDecision(dir, req, key.key, decision, {
    now: clock.now(),
    login: key.key.comment,
    ...opts,
  });
}

function verdicts(): string[] {
  return sink.records
    .filter((r) => r.custos.extra?.event === "review")
    .map((r) => `${r.custos.extra?.login}:${r.custos.extra?.verdict}`);
}

describe("LocalApprovalService", () => {
  it("happy path: request committed, two signed approvals committed, granted, consumed once", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    expect(out.status).toBe("pending");
    if (out.status === "pending")
      expect(out.reviewCommand).toBe(
        `custos approve ${out.requestId} --local ${dir} --key <your ed25519 key>`,
      );
    await sign(out, keys.alice);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    await sign(out, keys.bob);
    const g = await svc.check(operation(), requirement());
    expect(g.status).toBe("granted");
    if (g.status !== "granted") return;
    expect(await svc.consume(g.grantId)).toBe(true);
    expect(await svc.consume(g.grantId)).toBe(false);
    const repo = new LocalApprovalRepo(dir);
    expect(repo.readStatus(out.requestId)?.status).toBe("granted");
    const log = await repo.log();
    expect(log[0]).toMatch(new RegExp(`^custos: request ${out.requestId} granted`));
    expect(log.filter((m) => m.startsWith("custos: approve"))).toHaveLength(2);
    expect(log.at(-1)).toBe("custos: local approvals repository");
    // real git reads the repository isomorphic-git wrote
    const gitLog = execFileSync("git", ["-C", dir, "log", "--format=%s"], { encoding: "utf8" })
      .trim()
      .split("\n");
    expect(gitLog).toHaveLength(log.length);
    expect(verdicts()).toEqual(["alice:ok", "bob:ok"]);
    expect(sink.events()).toEqual(["request-opened", "review", "review", "granted", "used", "used"]);
  });

  it("refuses self-approval", async () => {
    const svc = service();
    const op = operation({}, { github_user_id: String(ALICE) });
    const out = await svc.check(op, requirement());
    await sign(out, keys.alice);
    await sign(out, keys.bob);
    expect((await svc.check(op, requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:self-approval", "bob:ok"]);
  });

  it("refuses a reviewer of another group, and a key registered to no one", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await sign(out, keys.mallory); // registered, but in group "other"
    const stranger = sshKeygen(tempDir(), "stranger");
    await sign(out, stranger);
    await sign(out, keys.alice);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual([
      "mallory:not-in-group",
      expect.stringMatching(/^stranger \(key SHA256:.+\):not-in-group$/),
      "alice:ok",
    ]);
  });

  it("refuses a signature by a key not registered to the declared reviewer", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await sign(out, keys.mallory, "approve", { githubId: BOB }); // claims to be bob
    await sign(out, keys.alice);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["mallory:unregistered-key", "alice:ok"]);
  });

  it("refuses a signature over another operation's fingerprint", async () => {
    const svc = service();
    const other = await svc.check(operation({ purpose: "other" }), requirement());
    const out = await svc.check(operation(), requirement());
    const repo = new LocalApprovalRepo(dir, clock.now);
    const block = signDecision(keys.alice.key, "approve", other.fingerprint, other.requestId);
    clock.advance(1);
    await repo.addReview({
      kind: "custos.dev/ApprovalReview",
      version: 1,
      requestId: out.requestId,
      state: "APPROVED",
      head: await repo.requestHead(out.requestId),
      reviewer: { githubId: null, login: "alice" },
      submittedAt: clock.now().toISOString(),
      body: formatSignatureBlock(block),
    });
    await sign(out, keys.bob);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:fingerprint-mismatch", "bob:ok"]);
  });

  it("refuses reviews made on an earlier version of the request file (outdated head)", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await sign(out, keys.alice);
    await sign(out, keys.bob);
    // the request file is edited after the reviews (whitespace only: the fingerprint still holds)
    const path = join(dir, "requests", `${out.requestId}.json`);
    const repo = new LocalApprovalRepo(dir);
    writeFileSync(path, `${repo.requestText(out.requestId)}\n`);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:stale-head", "bob:stale-head"]);
  });

  it("refuses approvals after expiry; the CLI refuses to sign an expired request", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    clock.advance(601);
    await expect(sign(out, keys.alice)).rejects.toMatchObject({ code: "E_APPROVAL_REQUEST_CLOSED" });
    const next = await svc.check(operation(), requirement());
    expect(next.status).toBe("pending");
    expect(next.requestId).not.toBe(out.requestId);
    expect(new LocalApprovalRepo(dir).readStatus(out.requestId)?.status).toBe("expired");
  });

  it("refuses too few approvals and unsigned reviews", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement({ allowUnsigned: true }));
    await sign(out, keys.alice);
    const repo = new LocalApprovalRepo(dir, clock.now);
    clock.advance(1);
    await repo.addReview({
      kind: "custos.dev/ApprovalReview",
      version: 1,
      requestId: out.requestId,
      state: "APPROVED",
      head: await repo.requestHead(out.requestId),
      reviewer: { githubId: BOB, login: "bob" },
      submittedAt: clock.now().toISOString(),
      body: "LGTM (unsigned)",
    });
    expect((await svc.check(operation(), requirement({ allowUnsigned: true }))).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:ok", "bob:not-in-group"]);
  });

  it("a signed denial denies", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await sign(out, keys.alice);
    await sign(out, keys.bob, "deny");
    expect((await svc.check(operation(), requirement())).status).toBe("denied");
    expect(new LocalApprovalRepo(dir).readStatus(out.requestId)?.status).toBe("denied");
  });

  it("a single-use grant is not reusable after a restart", async () => {
    const state = tempDir();
    const svc = service(new GrantStore({ dir: state }));
    const out = await svc.check(operation(), requirement({ count: 1 }));
    await sign(out, keys.bob);
    const g = await svc.check(operation(), requirement({ count: 1 }));
    if (g.status !== "granted") throw new Error("expected granted");
    expect(await svc.consume(g.grantId)).toBe(true);
    const restarted = service(new GrantStore({ dir: state }));
    expect(await restarted.consume(g.grantId)).toBe(false);
    expect((await restarted.check(operation(), requirement({ count: 1 }))).status).toBe("pending");
  });

  it("polling grants without a check", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement({ count: 1 }));
    await sign(out, keys.alice);
    await svc.poll();
    expect(new LocalApprovalRepo(dir).readStatus(out.requestId)?.status).toBe("granted");
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("granted");
  });
});
