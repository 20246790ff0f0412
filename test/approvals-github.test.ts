/**
 * GitHubApprovalService against the GitHub API stand-in, driven by the real @octokit/rest.
 * Each forgery the grant rules must refuse has its own test.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeyPairSync } from "node:crypto";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Octokit } from "@octokit/rest";
import type { ApprovalOutcome } from "../gateway/ports.ts";
import { WebhookSignatureError } from "../gitops/approvals/errors.ts";
import { computeFingerprint, type RequestFile } from "../gitops/approvals/fingerprint.ts";
import {
  createOctokit,
  GitHubApprovalService,
  LABEL_EXPIRED,
  LABEL_GRANTED,
} from "../gitops/approvals/github.ts";
import { GrantStore } from "../gitops/approvals/grants.ts";
import { formatSignatureBlock, type ReviewDecision, signDecision } from "../gitops/approvals/signature.ts";
import { GitHubStandIn } from "./github/server.ts";
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

const OWNER = "acme";
const quiet = () => {};
const quietLog = { debug: quiet, info: quiet, warn: quiet, error: quiet };
const REPO = "approvals";
const SECRET = "webhook-secret-for-tests";

let keys: Record<"alice" | "bob" | "carol" | "mallory" | "spare", TestKey>;
beforeAll(() => {
  const dir = tempDir();
  keys = {
    alice: sshKeygen(dir, "alice"),
    bob: sshKeygen(dir, "bob"),
    carol: sshKeygen(dir, "carol"),
    mallory: sshKeygen(dir, "mallory"),
    spare: sshKeygen(dir, "spare"),
  };
});

interface Person {
  id: number;
  login: string;
  token: string;
  gh: Octokit;
}

let gh: GitHubStandIn;
let clock: TestClock;
let sink: MemorySink;
let people: Record<"bot" | "alice" | "bob" | "carol" | "mallory" | "admin", Person>;
let services: GitHubApprovalService[];

beforeEach(async () => {
  gh = await new GitHubStandIn().start();
  clock = new TestClock();
  gh.clock = clock.now;
  sink = new MemorySink();
  services = [];
  const mk = (login: string, type: "User" | "Bot" = "User"): Person => {
    const u = gh.addUser(login, type);
    return {
      id: u.id,
      login: u.login,
      token: u.token,
      gh: createOctokit({ baseUrl: gh.baseUrl, token: u.token, log: quietLog }),
    };
  };
  people = {
    bot: mk("custos-gateway[bot]", "Bot"),
    alice: mk("alice"),
    bob: mk("bob"),
    carol: mk("carol"),
    mallory: mk("mallory"),
    admin: mk("repo-admin"),
  };
  gh.addRepo(OWNER, REPO);
});

afterEach(async () => {
  for (const s of services) await s.close();
  await gh.stop();
});

function securityGroup() {
  return group([
    { githubId: people.alice.id, login: "alice", keys: [keys.alice.publicLine] },
    { githubId: people.bob.id, login: "bob", keys: [keys.bob.publicLine] },
    { githubId: people.carol.id, login: "carol", keys: [keys.carol.publicLine] },
  ]);
}

function service(
  extra: { grants?: GrantStore; pollIntervalMs?: number; enterprise?: boolean } = {},
): GitHubApprovalService {
  const s = new GitHubApprovalService({
    // the gateway's client talks to the Enterprise-style base URL, reviewers to the root one
    octokit: createOctokit({
      log: quietLog,
      baseUrl: extra.enterprise === false ? gh.baseUrl : gh.enterpriseUrl,
      token: people.bot.token,
    }),
    owner: OWNER,
    repo: REPO,
    approvalGroups: { security: securityGroup() },
    evidence: sink,
    clock: clock.now,
    webhookSecret: SECRET,
    requestTtlSeconds: 3600,
    log: () => {},
    ...(extra.grants ? { grants: extra.grants } : {}),
    ...(extra.pollIntervalMs ? { pollIntervalMs: extra.pollIntervalMs } : {}),
  });
  services.push(s);
  return s;
}

function prNumber(out: ApprovalOutcome): number {
  return Number(out.url?.split("/").pop());
}

async function headSha(n: number): Promise<string> {
  const pr = await people.bot.gh.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: n });
  return pr.data.head.sha;
}

async function review(
  who: Person,
  out: ApprovalOutcome,
  opts: {
    key?: TestKey | null;
    decision?: ReviewDecision;
    fingerprint?: string;
    requestId?: string;
    commitId?: string;
    event?: "APPROVE" | "REQUEST_CHANGES";
  } = {},
): Promise<number> {
  const decision = opts.decision ?? "approve";
  const key = opts.key === undefined ? keys[who.login as "alice"] : opts.key;
  const body = key
    ? `Looks right.\n\n${formatSignatureBlock(signDecision(key.key, decision, opts.fingerprint ?? out.fingerprint, opts.requestId ?? out.requestId))}`
    : "LGTM";
  const r = await who.gh.rest.pulls.createReview({
    owner: OWNER,
    repo: REPO,
    pull_number: prNumber(out),
    event: opts.event ?? (decision === "approve" ? "APPROVE" : "REQUEST_CHANGES"),
    body,
    ...(opts.commitId ? { commit_id: opts.commitId } : {}),
  });
  return r.data.id as number;
}

function verdicts(): string[] {
  return sink.records
    .filter((r) => r.custos.extra?.event === "review")
    .map((r) => `${r.custos.extra?.login}:${r.custos.extra?.verdict}`);
}

describe("GitHubApprovalService", () => {
  it("opens a readable pull request with the request file and requests the group's reviewers", async () => {
    const svc = service();
    const op = operation();
    const out = await svc.check(op, requirement());
    expect(out.status).toBe("pending");
    if (out.status !== "pending") return;
    expect(out.fingerprint).toBe(computeFingerprint(op));
    expect(out.reviewCommand).toBe(`custos approve ${out.url}`);
    const pr = gh.pull(OWNER, REPO, prNumber(out));
    expect(pr.headRef).toBe(`custos/request-${out.requestId}`);
    expect(pr.body).toContain("rolebindings");
    expect(pr.body).toContain("phi-records");
    expect(pr.body).toContain("system:serviceaccount:ci:deployer");
    expect(pr.body).toContain("incident-response");
    expect(pr.body).toContain("rbac-needs-approval");
    expect(pr.body).toContain("[MASKED:email]");
    expect(pr.body).toContain(`custos approve ${out.url}`);
    expect(pr.requested.sort()).toEqual([people.alice.id, people.bob.id, people.carol.id].sort());
    const content = await people.alice.gh.rest.repos.getContent({
      owner: OWNER,
      repo: REPO,
      path: `requests/${out.requestId}.json`,
      ref: pr.headRef,
    });
    const file = JSON.parse(
      Buffer.from((content.data as { content: string }).content, "base64").toString(),
    ) as RequestFile;
    expect(file.fingerprint).toBe(out.fingerprint);
    expect(file.rule).toMatchObject({ id: "rbac-needs-approval", count: 2, group: "security" });
    // asking again finds the same request, no second pull request
    const again = await svc.check(op, requirement());
    expect(again.requestId).toBe(out.requestId);
    expect(gh.requests.filter((r) => r === "POST /repos/acme/approvals/pulls")).toHaveLength(1);
    expect(sink.events()).toEqual(["request-opened"]);
  });

  it("happy path: 2 of 3 signed approvals -> granted -> consumed exactly once; evidence links every step", async () => {
    const svc = service();
    const op = operation();
    const out = await svc.check(op, requirement());
    await review(people.alice, out);
    expect((await svc.check(op, requirement())).status).toBe("pending");
    await review(people.bob, out);
    const granted = await svc.check(op, requirement());
    expect(granted.status).toBe("granted");
    if (granted.status !== "granted") return;
    expect(granted.requestId).toBe(out.requestId);
    const pr = gh.pull(OWNER, REPO, prNumber(out));
    expect(pr.state).toBe("closed");
    expect(pr.labels).toContain(LABEL_GRANTED);
    expect(pr.comments.at(-1)?.body).toMatch(
      /granted with 2 of 2 signed approvals.*Evidence: evidence record seq \d+/s,
    );
    expect(await svc.consume(granted.grantId)).toBe(true);
    expect(await svc.consume(granted.grantId)).toBe(false);
    // a consumed single-use grant is gone: the same operation needs a new request
    const next = await svc.check(op, requirement());
    expect(next.status).toBe("pending");
    expect(next.requestId).not.toBe(out.requestId);
    expect(sink.events()).toEqual([
      "request-opened",
      "review",
      "review",
      "granted",
      "used",
      "used",
      "request-opened",
    ]);
    const reviewRecords = sink.records.filter((r) => r.custos.extra?.event === "review");
    for (const r of reviewRecords) {
      expect(r.custos.approval).toMatchObject({ requestId: out.requestId, fingerprint: out.fingerprint });
      expect(r.custos.extra?.signature).toMatch(/^[A-Za-z0-9+/]{86}==$/);
      expect(r.custos.extra?.keyFingerprint).toMatch(/^SHA256:/);
      expect([people.alice.id, people.bob.id]).toContain(r.custos.extra?.reviewerId);
    }
    const used = sink.records.filter((r) => r.custos.extra?.event === "used");
    expect(used.map((r) => r.custos.extra?.accepted)).toEqual([true, false]);
    expect(used[0]?.custos.approval?.grantId).toBe(granted.grantId);
    expect(
      sink.records.every((r) => r.custos.type === "approval" && r.custos.ruleId === "rbac-needs-approval"),
    ).toBe(true);
  });

  it("refuses self-approval: the requester's GitHub id (claim) never counts", async () => {
    const svc = service();
    const op = operation({}, { github_user_id: String(people.alice.id) });
    const out = await svc.check(op, requirement());
    await review(people.alice, out);
    await review(people.bob, out);
    expect((await svc.check(op, requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:self-approval", "bob:ok"]);
  });

  it("refuses self-approval by the requester's id in any of the id claims, not only the first one", async () => {
    // a GitHub Actions identity carries actor_id (the human who ran the workflow); another claim
    // (github_user_id, e.g. mapped from the token's owner) names someone else: both requested it
    const op = operation({}, { github_user_id: String(people.carol.id), actor_id: String(people.alice.id) });
    const svc = service();
    const out = await svc.check(op, requirement());
    await review(people.alice, out);
    await review(people.bob, out);
    expect((await svc.check(op, requirement())).status).toBe("pending");
    expect(verdicts()).toContain("alice:self-approval");
  });

  it("refuses the pull request's human author (gateway running with a personal token)", async () => {
    const svc = new GitHubApprovalService({
      octokit: createOctokit({ baseUrl: gh.baseUrl, token: people.carol.token, log: quietLog }),
      owner: OWNER,
      repo: REPO,
      approvalGroups: { security: securityGroup() },
      evidence: sink,
      clock: clock.now,
      log: () => {},
    });
    services.push(svc);
    const out = await svc.check(operation(), requirement({ count: 1 }));
    // GitHub itself refuses an author's approval; a comment-signed one is not an approval either
    await expect(review(people.carol, out)).rejects.toMatchObject({ status: 422 });
    await review(people.alice, out);
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("granted");
  });

  it("refuses a reviewer not in the rule's group", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.mallory, out);
    await review(people.alice, out);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["mallory:not-in-group", "alice:ok"]);
  });

  it("refuses a login renamed to a listed one: matching is by numeric id", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    gh.renameUser(people.bob.id, "bob-old");
    gh.renameUser(people.mallory.id, "bob"); // mallory now holds the login the policy lists
    await review(people.mallory, out, { key: keys.mallory });
    await review(people.alice, out);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["bob:not-in-group", "alice:ok"]);
    // while the real bob, renamed, still counts
    await review(people.bob, out);
    expect((await svc.check(operation(), requirement())).status).toBe("granted");
  });

  it("refuses a signature by a key not registered for that reviewer (even one registered to another reviewer)", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out, { key: keys.carol });
    await review(people.bob, out, { key: keys.spare });
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:unregistered-key", "bob:unregistered-key"]);
  });

  it("refuses a signature over a different fingerprint (an approval replayed from another operation)", async () => {
    const svc = service();
    const other = await svc.check(operation({ bodySha256: "0".repeat(64) }), requirement());
    const out = await svc.check(operation(), requirement());
    expect(other.fingerprint).not.toBe(out.fingerprint);
    // alice's genuine signature for the OTHER operation, pasted onto this one
    await review(people.alice, out, { fingerprint: other.fingerprint, requestId: other.requestId });
    // bob signs this fingerprint but another request id
    await review(people.bob, out, { requestId: other.requestId });
    // carol signs a denial and submits it as an approval
    await review(people.carol, out, { decision: "deny", event: "APPROVE" });
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual([
      "alice:fingerprint-mismatch",
      "bob:request-mismatch",
      "carol:decision-mismatch",
    ]);
  });

  it("refuses a tampered signature", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement({ count: 1 }));
    const block = signDecision(keys.alice.key, "approve", out.fingerprint, out.requestId);
    const bad = Buffer.from(block.signature, "base64");
    bad[0] = (bad[0] ?? 0) ^ 1;
    await people.alice.gh.rest.pulls.createReview({
      owner: OWNER,
      repo: REPO,
      pull_number: prNumber(out),
      event: "APPROVE",
      body: formatSignatureBlock({ ...block, signature: bad.toString("base64") }),
    });
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:bad-signature"]);
  });

  it("refuses reviews on an outdated head commit", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    const before = await headSha(prNumber(out));
    await review(people.alice, out);
    gh.pushCommit(OWNER, REPO, `custos/request-${out.requestId}`, "requests/note.txt", "sneaky change\n");
    await review(people.bob, out, { commitId: before }); // explicitly on the old head
    expect(await headSha(prNumber(out))).not.toBe(before);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:stale-head", "bob:stale-head"]);
    // approving again on the new head counts
    await review(people.alice, out);
    await review(people.bob, out);
    expect((await svc.check(operation(), requirement())).status).toBe("granted");
  });

  it("refuses a dismissed review", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    const bobReview = await review(people.bob, out);
    await people.admin.gh.rest.pulls.dismissReview({
      owner: OWNER,
      repo: REPO,
      pull_number: prNumber(out),
      review_id: bobReview,
      message: "not on call",
    });
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:ok", "bob:dismissed"]);
  });

  it("a later changes-requested review withdraws the reviewer's approval", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    await review(people.bob, out);
    await people.bob.gh.rest.pulls.createReview({
      owner: OWNER,
      repo: REPO,
      pull_number: prNumber(out),
      event: "REQUEST_CHANGES",
      body: "wait, wrong namespace",
    });
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:ok", "bob:superseded", "bob:changes-requested"]);
  });

  it("refuses approvals after the request expired, and opens a fresh request", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    clock.advance(3601);
    await review(people.alice, out);
    await review(people.bob, out);
    const after = await svc.check(operation(), requirement());
    expect(after.status).toBe("pending");
    expect(after.requestId).not.toBe(out.requestId);
    const old = gh.pull(OWNER, REPO, prNumber(out));
    expect(old.state).toBe("closed");
    expect(old.labels).toContain(LABEL_EXPIRED);
    expect(verdicts()).toEqual(["alice:expired", "bob:expired"]);
    expect(sink.events()).toContain("expired");
  });

  it("refuses too few approvals (1 of 2)", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    await review(people.alice, out); // the same reviewer twice is still one
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:superseded", "alice:ok"]);
  });

  it("refuses unsigned approvals by default, counts them only with allowUnsigned", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out, { key: null });
    await review(people.bob, out, { key: null });
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:unsigned", "bob:unsigned"]);
    const lax = await svc.check(operation(), requirement({ allowUnsigned: true }));
    expect(lax.status).toBe("granted");
  });

  it("a signed denial by a group reviewer denies the request, and the denial sticks", async () => {
    const svc = service();
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    await review(people.bob, out, { decision: "deny" });
    const denied = await svc.check(operation(), requirement());
    expect(denied.status).toBe("denied");
    if (denied.status === "denied") expect(denied.reason).toMatch(/denied by bob/);
    expect((await svc.check(operation(), requirement())).status).toBe("denied");
    expect(gh.pull(OWNER, REPO, prNumber(out)).state).toBe("closed");
    expect(sink.events()).toContain("denied");
  });

  it("a single-use grant cannot be reused after its use, even across a restart", async () => {
    const dir = tempDir();
    const svc = service({ grants: new GrantStore({ dir }) });
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    await review(people.bob, out);
    const g = await svc.check(operation(), requirement());
    if (g.status !== "granted") throw new Error(`expected granted, got ${g.status}`);
    // a restarted gateway still knows the grant (persisted) ...
    const restarted = service({ grants: new GrantStore({ dir }) });
    expect((await restarted.check(operation(), requirement())).status).toBe("granted");
    expect(await restarted.consume(g.grantId)).toBe(true);
    // ... and once used, no instance can use it again
    expect(await svc.consume(g.grantId)).toBe(false);
    expect(await service({ grants: new GrantStore({ dir }) }).consume(g.grantId)).toBe(false);

    expect(await restarted.consume("grant-unknown")).toBe(false);
  });

  it("a single-use grant is granted to one gateway only, when two gateways (own state dirs) evaluate it at once", async () => {
    // two replicas share the approvals repository, each with its own grant store: both see the
    // approved, still open pull request; only one may come away with the grant
    const a = service({ grants: new GrantStore({ dir: tempDir() }) });
    const b = service({ grants: new GrantStore({ dir: tempDir() }) });
    const out = await a.check(operation(), requirement());
    expect((await b.check(operation(), requirement())).requestId).toBe(out.requestId);
    await review(people.alice, out);
    await review(people.bob, out);
    const [ga, gb] = await Promise.all([
      a.check(operation(), requirement()),
      b.check(operation(), requirement()),
    ]);
    const uses = await Promise.all(
      [
        [a, ga],
        [b, gb],
      ].map(async ([svc, g]) =>
        (g as ApprovalOutcome).status === "granted"
          ? (svc as GitHubApprovalService).consume((g as { grantId: string }).grantId)
          : false,
      ),
    );
    expect(uses.filter(Boolean)).toHaveLength(1);
    expect(sink.events().filter((e) => e === "granted")).toHaveLength(1);
  });

  it("a ttl grant is reusable until it expires", async () => {
    const svc = service();
    const req = requirement({ use: "ttl", ttlSeconds: 60, count: 1 });
    const out = await svc.check(operation(), req);
    await review(people.carol, out);
    const g = await svc.check(operation(), req);
    if (g.status !== "granted") throw new Error("expected granted");
    expect(await svc.consume(g.grantId)).toBe(true);
    expect(await svc.consume(g.grantId)).toBe(true);
    clock.advance(61);
    expect(await svc.consume(g.grantId)).toBe(false);
    expect((await svc.check(operation(), req)).status).toBe("pending");
  });

  it("finds its open request after a restart instead of opening a second one, without re-recording reviews", async () => {
    const dir = tempDir();
    const out = await service({ grants: new GrantStore({ dir }) }).check(operation(), requirement());
    await review(people.alice, out);
    await service({ grants: new GrantStore({ dir }) }).check(operation(), requirement());
    const again = await service({ grants: new GrantStore({ dir }) }).check(operation(), requirement());
    expect(again.requestId).toBe(out.requestId);
    expect(gh.requests.filter((r) => r === "POST /repos/acme/approvals/pulls")).toHaveLength(1);
    expect(sink.events()).toEqual(["request-opened", "review"]);
  });

  describe("webhooks", () => {
    let hookServer: Server;
    let hookUrl: string;
    let svc: GitHubApprovalService;
    beforeEach(async () => {
      svc = service();
      hookServer = createServer(svc.webhookListener());
      await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
      hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/webhook`;
    });
    afterEach(async () => {
      await gh.flushWebhooks();
      await new Promise<void>((r) => hookServer.close(() => r()));
    });

    it("a genuine delivery re-evaluates at once: granted, labelled and closed without another check", async () => {
      gh.addHook({ url: hookUrl, secret: SECRET });
      const out = await svc.check(operation(), requirement());
      await review(people.alice, out);
      await review(people.bob, out);
      await gh.flushWebhooks();
      expect(gh.deliveryStatuses.every((s) => s === 202)).toBe(true);
      const pr = gh.pull(OWNER, REPO, prNumber(out));
      expect(pr.state).toBe("closed");
      expect(pr.labels).toContain(LABEL_GRANTED);
      expect(sink.events()).toContain("granted");
    });

    it("a forged delivery (wrong secret) is refused with 401 and evaluates nothing", async () => {
      gh.addHook({ url: hookUrl, secret: "not-the-secret" });
      const out = await svc.check(operation(), requirement());
      await review(people.alice, out);
      await review(people.bob, out);
      await gh.flushWebhooks();
      expect(gh.deliveryStatuses.length).toBeGreaterThan(0);
      expect(gh.deliveryStatuses.every((s) => s === 401)).toBe(true);
      expect(gh.pull(OWNER, REPO, prNumber(out)).state).toBe("open");
      expect(sink.events()).toEqual(["request-opened"]);
    });

    it("handleWebhook rejects a missing or altered signature with WebhookSignatureError", async () => {
      const body = JSON.stringify({
        action: "submitted",
        pull_request: { number: 1 },
        repository: { full_name: "acme/approvals" },
      });
      const good = GitHubStandIn.sign(SECRET, body);
      await expect(
        svc.handleWebhook({ "x-github-event": "pull_request_review" }, body),
      ).rejects.toBeInstanceOf(WebhookSignatureError);
      await expect(
        svc.handleWebhook(
          { "x-github-event": "pull_request_review", "x-hub-signature-256": good },
          body.replace("1", "2"),
        ),
      ).rejects.toMatchObject({ code: "E_APPROVAL_WEBHOOK_SIGNATURE" });
      await expect(
        svc.handleWebhook(
          {
            "x-github-event": "pull_request_review",
            "x-hub-signature-256": GitHubStandIn.sign("guess", body),
          },
          body,
        ),
      ).rejects.toMatchObject({ code: "E_APPROVAL_WEBHOOK_SIGNATURE" });
      const ok = await svc.handleWebhook(
        { "x-github-event": "pull_request_review", "x-hub-signature-256": good },
        body,
      );
      expect(ok).toMatchObject({ event: "pull_request_review", pullNumber: 1 });
    });
  });

  it("polling as a fallback grants without webhook or check", async () => {
    const svc = service({ pollIntervalMs: 50 });
    const out = await svc.check(operation(), requirement());
    await review(people.alice, out);
    await review(people.bob, out);
    const deadline = Date.now() + 5000;
    while (gh.pull(OWNER, REPO, prNumber(out)).state === "open" && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    expect(gh.pull(OWNER, REPO, prNumber(out)).labels).toContain(LABEL_GRANTED);
  });
});

describe("GitHub App credentials", () => {
  it("authenticates as an App installation (RS256 JWT -> installation token, cached) and opens requests as the bot", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const bot = gh.addApp(
      "12345",
      publicKey.export({ type: "spki", format: "pem" }).toString(),
      777,
      "custos-approvals",
    );
    const svc = new GitHubApprovalService({
      octokit: createOctokit({
        log: quietLog,
        baseUrl: gh.enterpriseUrl,
        app: {
          appId: 12345,
          installationId: 777,
          privateKey: privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
          clock: clock.now,
        },
      }),
      owner: OWNER,
      repo: REPO,
      approvalGroups: { security: securityGroup() },
      evidence: sink,
      log: () => {},
    });
    services.push(svc);
    const out = await svc.check(operation(), requirement({ count: 1 }));
    const pr = gh.pull(OWNER, REPO, prNumber(out));
    expect(pr.userId).toBe(bot.id);
    await review(people.alice, out);
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("granted");
    expect(gh.tokenExchanges).toBe(1);
    // a wrong private key is refused by GitHub with a fix in the message
    const wrong = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const bad = new GitHubApprovalService({
      octokit: createOctokit({
        log: quietLog,
        baseUrl: gh.baseUrl,
        app: {
          appId: 12345,
          installationId: 777,
          privateKey: wrong.export({ type: "pkcs8", format: "pem" }).toString(),
          clock: clock.now,
        },
      }),
      owner: OWNER,
      repo: REPO,
      approvalGroups: { security: securityGroup() },
      evidence: sink,
      log: () => {},
    });
    services.push(bad);
    await expect(bad.check(operation({ purpose: "x" }), requirement())).rejects.toThrow(
      /installation token for GitHub App 12345/,
    );
  });
});

describe("rate limits", () => {
  it("recheckIntervalMs: a held call's repeated checks read GitHub at most once per interval; webhooks still decide at once", async () => {
    const svc = new GitHubApprovalService({
      octokit: createOctokit({ baseUrl: gh.baseUrl, token: people.bot.token, log: quietLog }),
      owner: OWNER,
      repo: REPO,
      approvalGroups: { security: securityGroup() },
      evidence: sink,
      clock: clock.now,
      recheckIntervalMs: 5000,
      log: () => {},
    });
    services.push(svc);
    const out = await svc.check(operation(), requirement({ count: 1 }));
    const reads = () => gh.requests.filter((r) => r.endsWith("/reviews") && r.startsWith("GET")).length;
    await svc.check(operation(), requirement({ count: 1 }));
    const before = reads();
    for (let i = 0; i < 5; i++) await svc.check(operation(), requirement({ count: 1 }));
    expect(reads()).toBe(before);
    await review(people.alice, out);
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("pending"); // cached
    clock.advance(5);
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("granted");
  });
});

describe("an edited request file", () => {
  it("cannot lift the self-approval ban nor extend the expiry (only fingerprint-bound facts decide)", async () => {
    const op = operation({}, { github_user_id: String(people.alice.id) });
    const out = await service().check(op, requirement());
    const pr = gh.pull(OWNER, REPO, prNumber(out));
    const res = await people.mallory.gh.rest.repos.getContent({
      owner: OWNER,
      repo: REPO,
      path: `requests/${out.requestId}.json`,
      ref: pr.headRef,
    });
    const file = JSON.parse(
      Buffer.from((res.data as { content: string }).content, "base64").toString(),
    ) as RequestFile;
    file.requester.githubId = null;
    file.expiresAt = "2099-01-01T00:00:00.000Z";
    gh.pushCommit(OWNER, REPO, pr.headRef, `requests/${out.requestId}.json`, JSON.stringify(file));
    await review(people.alice, out);
    await review(people.bob, out);
    const restarted = service(); // knows nothing but what it reads from GitHub
    expect((await restarted.check(op, requirement())).status).toBe("pending");
    expect(verdicts()).toEqual(["alice:self-approval", "bob:ok"]);
    clock.advance(3601);
    const after = await restarted.check(op, requirement());
    expect(after.requestId).not.toBe(out.requestId);
    expect(gh.pull(OWNER, REPO, prNumber(out)).labels).toContain(LABEL_EXPIRED);
  });
});

describe("evidence first", () => {
  it("no grant exists unless its evidence record is durable", async () => {
    const failing = new MemorySink();
    let fail = false;
    const append = failing.append.bind(failing);
    failing.append = async (r) => {
      if (fail && r.custos.extra?.event === "granted") throw new Error("disk full");
      return append(r);
    };
    const svc = new GitHubApprovalService({
      octokit: createOctokit({ baseUrl: gh.baseUrl, token: people.bot.token, log: quietLog }),
      owner: OWNER,
      repo: REPO,
      approvalGroups: { security: securityGroup() },
      evidence: failing,
      clock: clock.now,
      log: () => {},
    });
    services.push(svc);
    const out = await svc.check(operation(), requirement({ count: 1 }));
    await review(people.alice, out);
    fail = true;
    await expect(svc.check(operation(), requirement({ count: 1 }))).rejects.toThrow(/disk full/);
    expect(await svc.consume(`grant-${out.requestId}`)).toBe(false);
    fail = false;
    const g = await svc.check(operation(), requirement({ count: 1 }));
    expect(g.status).toBe("granted");
    expect(failing.events().filter((e) => e === "granted")).toHaveLength(1);
  });
});
