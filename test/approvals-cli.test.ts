/**
 * `custos approve` / `custos deny` end to end: the real command, spawned as a child process,
 * against the GitHub stand-in (real @octokit/rest on both sides) and the local backend.
 */
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runDecision } from "../gitops/cli/approve.ts";
import { computeFingerprint } from "../gitops/approvals/fingerprint.ts";
import { createOctokit, GitHubApprovalService } from "../gitops/approvals/github.ts";
import { LocalApprovalService } from "../gitops/approvals/local.ts";
import { GitHubStandIn } from "./github/server.ts";
import {
  group,
  MemorySink,
  operation,
  requirement,
  sshKeygen,
  type TestKey,
  tempDir,
} from "./github/harness.ts";

const ROOT = resolve(import.meta.dirname, "..");
const CUSTOS = join(ROOT, "bin", "custos.mjs");

function custos(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CUSTOS, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

let keys: Record<"alice" | "bob", TestKey>;
beforeAll(() => {
  const d = tempDir();
  keys = { alice: sshKeygen(d, "alice"), bob: sshKeygen(d, "bob") };
});

describe("custos approve / deny against the GitHub stand-in", () => {
  let gh: GitHubStandIn;
  let svc: GitHubApprovalService;
  let alice: { id: number; token: string };
  let bob: { id: number; token: string };
  let sink: MemorySink;

  beforeEach(async () => {
    gh = await new GitHubStandIn().start();
    const bot = gh.addUser("custos[bot]", "Bot");
    alice = gh.addUser("alice");
    bob = gh.addUser("bob");
    gh.addRepo("acme", "approvals");
    sink = new MemorySink();
    svc = new GitHubApprovalService({
      octokit: createOctokit({ baseUrl: gh.enterpriseUrl, token: bot.token }),
      owner: "acme",
      repo: "approvals",
      approvalGroups: {
        security: group([
          { githubId: alice.id, login: "alice", keys: [keys.alice.publicLine] },
          { githubId: bob.id, login: "bob", keys: [keys.bob.publicLine] },
        ]),
      },
      evidence: sink,
      log: () => {},
    });
  });
  afterEach(async () => {
    await svc.close();
    await gh.stop();
  });

  it("two reviewers approve (by PR URL, and by id with --repo/--github-url) -> granted", async () => {
    const out = await svc.check(operation(), requirement());
    if (out.status !== "pending" || !out.url) throw new Error("expected a pending request with a URL");
    // the PR URL alone finds the API (GitHub Enterprise form: <host>/api/v3)
    const a = await custos(["approve", out.url, "--key", keys.alice.path, "--yes", "--json"], {
      GITHUB_TOKEN: alice.token,
    });
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    const aj = JSON.parse(a.stdout) as Record<string, unknown>;
    expect(aj).toMatchObject({
      requestId: out.requestId,
      fingerprint: out.fingerprint,
      decision: "approve",
      reviewer: { id: alice.id, login: "alice" },
    });
    expect(aj.keyFingerprint).toMatch(/^SHA256:/);
    expect((await svc.check(operation(), requirement())).status).toBe("pending");
    const b = await custos(
      [
        "approve",
        out.requestId,
        "--repo",
        "acme/approvals",
        "--github-url",
        gh.baseUrl,
        "--token-env",
        "BOB_TOKEN",
        "--key",
        keys.bob.path,
        "--yes",
      ],
      {
        BOB_TOKEN: bob.token,
      },
    );
    expect(b.code).toBe(0);
    expect(b.stdout).toMatch(
      new RegExp(`^approved request ${out.requestId} as @bob \\(id ${bob.id}\\) with key SHA256:`),
    );
    expect(b.stderr).toContain("what        create rolebindings debug-access (rbac.authorization.k8s.io/v1)");
    expect(b.stderr).toContain("recomputed from the request file: OK");
    const g = await svc.check(operation(), requirement());
    expect(g.status).toBe("granted");
    expect(sink.records.filter((r) => r.custos.extra?.verdict === "ok")).toHaveLength(2);
  });

  it("custos deny submits a signed denial that denies the request", async () => {
    const out = await svc.check(operation(), requirement());
    const d = await custos(
      ["deny", out.url!, "--key", keys.bob.path, "--yes", "--reason", "wrong namespace"],
      { GITHUB_TOKEN: bob.token },
    );
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^denied request/);
    const pr = gh.pull("acme", "approvals", Number(out.url!.split("/").pop()));
    expect(pr.reviews[0]?.state).toBe("CHANGES_REQUESTED");
    expect(pr.reviews[0]?.body).toContain("wrong namespace");
    expect((await svc.check(operation(), requirement())).status).toBe("denied");
  });

  it("refuses to sign without a terminal unless --yes, an altered request file, a closed request", async () => {
    const out = await svc.check(operation(), requirement({ count: 1 }));
    const noYes = await custos(["approve", out.url!, "--key", keys.alice.path], {
      GITHUB_TOKEN: alice.token,
    });
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/pass --yes/);
    const pr = gh.pull("acme", "approvals", Number(out.url!.split("/").pop()));
    expect(pr.reviews).toHaveLength(0);

    // someone rewrites the request file on the branch, keeping the old fingerprint
    const file = JSON.parse(
      Buffer.from(
        (
          (
            await createOctokit({ baseUrl: gh.baseUrl, token: alice.token }).rest.repos.getContent({
              owner: "acme",
              repo: "approvals",
              path: `requests/${out.requestId}.json`,
              ref: pr.headRef,
            })
          ).data as { content: string }
        ).content,
        "base64",
      ).toString(),
    );
    file.operation.request.namespace = "default"; // looks harmless to a skimming reviewer
    gh.pushCommit("acme", "approvals", pr.headRef, `requests/${out.requestId}.json`, JSON.stringify(file));
    const altered = await custos(["approve", out.url!, "--key", keys.alice.path, "--yes"], {
      GITHUB_TOKEN: alice.token,
    });
    expect(altered.code).toBe(1);
    expect(altered.stderr).toMatch(/altered/);
    expect(pr.reviews).toHaveLength(0);

    pr.state = "closed";
    const closed = await custos(["approve", out.url!, "--key", keys.alice.path, "--yes"], {
      GITHUB_TOKEN: alice.token,
    });
    expect(closed.code).toBe(1);
    expect(closed.stderr).toMatch(/expected request .* to be open/);
  });

  it("bad usage exits 2 with the fix", async () => {
    const io = () => {
      const out = { text: "" };
      const write = (s: string) => {
        out.text += s;
        return true;
      };
      const stream = { write } as unknown as NodeJS.WriteStream;
      return {
        out,
        io: { env: {}, stdin: process.stdin, stdout: stream, stderr: stream, now: () => new Date() },
      };
    };
    const a = io();
    expect(await runDecision("approve", ["https://github.com/acme/approvals/pull/1"], a.io)).toBe(2);
    expect(a.out.text).toMatch(/--key/);
    const b = io();
    expect(
      await runDecision(
        "approve",
        ["https://github.com/acme/approvals/pull/1", "--key", keys.alice.path, "--yes"],
        b.io,
      ),
    ).toBe(2);
    expect(b.out.text).toMatch(/set GITHUB_TOKEN/);
    const c = io();
    expect(await runDecision("approve", ["3f2a9c1b7d4e-abc", "--key", keys.alice.path, "--yes"], c.io)).toBe(
      2,
    );
    expect(c.out.text).toMatch(/--repo owner\/name/);
    const d = io();
    expect(await runDecision("approve", ["x", "--key", "/nonexistent/key", "--yes"], d.io)).toBe(2);
    expect(d.out.text).toMatch(/cannot read --key/);
    const e = io();
    expect(await runDecision("deny", ["--help"], e.io)).toBe(0);
    expect(e.out.text).toMatch(/--reason <text>/);
  });
});

describe("custos approve against the local backend", () => {
  it("approves with a key made by custos keygen, found through --local and through CUSTOS_APPROVALS", async () => {
    const home = tempDir();
    const dir = join(home, "approvals");
    const kg = await custos([
      "keygen",
      "--out",
      join(home, "reviewer.key"),
      "--principal",
      "reviewer@demo.local",
      "--json",
    ]);
    expect(kg.code).toBe(0);
    const { publicKey } = JSON.parse(kg.stdout) as { publicKey: string };
    const sink = new MemorySink();
    const svc = await new LocalApprovalService({
      dir,
      approvalGroups: {
        security: group([
          { githubId: 7, login: "demo-reviewer", keys: [publicKey] },
          { githubId: 8, login: "bob", keys: [keys.bob.publicLine] },
        ]),
      },
      evidence: sink,
      log: () => {},
    }).init();
    const op = operation();
    const out = await svc.check(op, requirement());
    expect(out.fingerprint).toBe(computeFingerprint(op));
    const a = await custos(
      ["approve", "--key", join(home, "reviewer.key"), out.requestId, "--yes", "--json"],
      { CUSTOS_APPROVALS: dir },
    );
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ requestId: out.requestId, decision: "approve" });
    const b = await custos(["approve", out.requestId, "--local", dir, "--key", keys.bob.path, "--yes"]);
    expect(b.code).toBe(0);
    const g = await svc.check(op, requirement());
    expect(g.status).toBe("granted");
    expect(
      sink.records.filter((r) => r.custos.extra?.event === "review").map((r) => r.custos.extra?.login),
    ).toEqual(["demo-reviewer", "bob"]);
    // the request is closed now: a further approval is refused
    const late = await custos(["approve", out.requestId, "--local", dir, "--key", keys.bob.path, "--yes"]);
    expect(late.code).toBe(1);
    const unknown = await custos([
      "deny",
      "000000000000-abc",
      "--local",
      dir,
      "--key",
      keys.bob.path,
      "--yes",
    ]);
    expect(unknown.code).toBe(2);
    await svc.close();
  });

  it("asks for confirmation on a terminal: 'n' signs nothing, 'y' signs", async () => {
    const dir = join(tempDir(), "approvals");
    const svc = new LocalApprovalService({
      dir,
      approvalGroups: { security: group([{ githubId: 8, login: "bob", keys: [keys.bob.publicLine] }]) },
      evidence: new MemorySink(),
      log: () => {},
    });
    const out = await svc.check(operation(), requirement({ count: 1 }));
    const tty = (answer: string) => {
      const stdin = new PassThrough() as unknown as NodeJS.ReadStream;
      (stdin as { isTTY?: boolean }).isTTY = true;
      setTimeout(() => (stdin as unknown as PassThrough).write(`${answer}\n`), 20);
      const sinkStream = () => {
        const s = new PassThrough() as unknown as NodeJS.WriteStream & { text: string };
        s.text = "";
        (s as unknown as PassThrough).on("data", (d: Buffer) => {
          s.text += d.toString();
        });
        return s;
      };
      return { env: {}, stdin, stdout: sinkStream(), stderr: sinkStream(), now: () => new Date() };
    };
    const no = tty("n");
    expect(await runDecision("approve", [out.requestId, "--local", dir, "--key", keys.bob.path], no)).toBe(1);
    expect(no.stderr.text).toMatch(/Approve this operation with your signature\? \[y\/N\]/);
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("pending");
    const yes = tty("y");
    expect(await runDecision("approve", [out.requestId, "--local", dir, "--key", keys.bob.path], yes)).toBe(
      0,
    );
    expect((await svc.check(operation(), requirement({ count: 1 }))).status).toBe("granted");
    await svc.close();
  });
});
