/**
 * `custos approve <PR URL | request id> --key <OpenSSH ed25519 private key>
 *    [--repo owner/name] [--github-url URL] [--token-env GITHUB_TOKEN] | [--local <dir>]
 *    [--yes] [--json] [--comment text]`
 *
 * Fetches the request, shows what/where/who/why/rule/expiry, verifies that the fingerprint
 * recomputes from the request file, asks for confirmation on a terminal (y/N) unless --yes,
 * signs "custos-approval-v1\n<decision>\n<fingerprint>\n<requestId>" with the reviewer's key
 * and submits the review (GitHub: APPROVE / REQUEST_CHANGES on the PR's head commit; local:
 * a commit in the approvals repository). `custos deny` is the same with --reason.
 *
 * Backend: --local <dir>, else GitHub when the target is a PR URL or --repo is given, else the
 * CUSTOS_APPROVALS environment variable (a directory), else an `approvals/` folder beside the
 * key file (the `custos demo` layout, so `custos approve --key <dir>/reviewer.key <id>` works).
 * Exit codes: 0 submitted; 1 not submitted (request closed/expired, altered file, declined);
 * 2 bad usage or input; 3 runtime failure (network, I/O).
 */
import { existsSync, readFileSync } from "node:fs";
import { userInfo } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { Command, CommanderError } from "commander";
import { cliConventions } from "../../sdk/lib/cli.ts";
import { terminalSummary } from "../approvals/body.ts";
import { ApprovalError } from "../approvals/errors.ts";
import { createOctokit } from "../approvals/github.ts";
import type { ReviewDecision } from "../approvals/signature.ts";
import { type Ed25519PrivateKey, keyFingerprint, parsePrivateKey } from "../approvals/sshkey.ts";
import {
  type FetchedRequest,
  fetchGitHubRequest,
  fetchLocalRequest,
  parsePullUrl,
  type Submitted,
  submitGitHubDecision,
  submitLocalDecision,
} from "../approvals/submit.ts";

interface Opts {
  key?: string;
  repo?: string;
  githubUrl?: string;
  tokenEnv: string;
  local?: string;
  reviewerId?: string;
  yes?: boolean;
  json?: boolean;
  comment?: string;
  reason?: string;
}

export interface DecisionIo {
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  now: () => Date;
}

const EXIT_FOR_CODE: Record<string, number> = {
  E_APPROVAL_KEY_FORMAT: 2,
  E_APPROVAL_REQUEST_FILE: 1,
  E_APPROVAL_REQUEST_NOT_FOUND: 2,
  E_APPROVAL_REQUEST_CLOSED: 1,
  E_APPROVAL_BACKEND: 3,
};

export async function runDecision(
  decision: ReviewDecision,
  argv: string[],
  io: DecisionIo = defaultIo(),
): Promise<number> {
  const cmd = decision === "approve" ? "approve" : "deny";
  const program = new Command(`custos ${cmd}`)
    .description(
      decision === "approve"
        ? "sign and submit an approval for a pending custos request (a GitHub PR review or a local commit)"
        : "sign and submit a denial for a pending custos request (a GitHub PR review or a local commit)",
    )
    .argument("<target>", "the request's pull-request URL, or its request id")
    .option(
      "--key <path>",
      "your OpenSSH ed25519 private key (unencrypted; ssh-keygen -t ed25519 or custos keygen)",
    )
    .option("--repo <owner/name>", "the approvals repository, when <target> is a request id")
    .option("--github-url <url>", "GitHub REST base URL (https://<host>/api/v3 for GitHub Enterprise)")
    .option("--token-env <name>", "environment variable holding your GitHub token", "GITHUB_TOKEN")
    .option(
      "--local <dir>",
      "a local approvals repository instead of GitHub (default: $CUSTOS_APPROVALS, else an approvals/ folder beside --key, as custos demo lays it out)",
    )
    .option(
      "--reviewer-id <n>",
      "local only: your numeric GitHub id as registered in the policy (default: found by your key)",
    )
    .option("--yes", "do not ask for confirmation (scripted use)")
    .option("--json", "print the result as JSON")
    .exitOverride();
  if (decision === "approve") program.option("--comment <text>", "a note added to the review");
  else program.option("--reason <text>", "why you deny (shown on the review)");
  cliConventions(program, io);
  try {
    program.parse(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const o = program.opts<Opts>();
  const target = program.args[0] ?? "";
  const fail = (code: number, msg: string): number => {
    io.stderr.write(`custos ${cmd}: ${msg}\n`);
    return code;
  };
  if (!o.key)
    return fail(
      2,
      "pass --key <path to your OpenSSH ed25519 private key> (make one with: custos keygen --out ~/.ssh/custos_ed25519)",
    );
  let key: Ed25519PrivateKey;
  try {
    key = parsePrivateKey(readFileSync(o.key, "utf8"));
  } catch (e) {
    if (e instanceof ApprovalError) return fail(2, e.message);
    return fail(
      2,
      `cannot read --key ${o.key} (${(e as NodeJS.ErrnoException).code ?? "error"}); pass the path of your private key file`,
    );
  }
  const githubTarget = Boolean(o.repo || parsePullUrl(target));
  // last resort for a local setup such as `custos demo`: an approvals repository beside the key
  const besideKey = path.join(path.dirname(path.resolve(o.key)), "approvals");
  const localDir =
    o.local ??
    (githubTarget
      ? undefined
      : io.env.CUSTOS_APPROVALS || (existsSync(path.join(besideKey, "requests")) ? besideKey : undefined));
  const note = decision === "approve" ? o.comment : o.reason;
  try {
    let fetched: FetchedRequest;
    let submit: () => Promise<Submitted>;
    if (localDir) {
      fetched = await fetchLocalRequest(localDir, target, { now: io.now() });
      const reviewerId = o.reviewerId === undefined ? undefined : Number(o.reviewerId);
      if (reviewerId !== undefined && !(Number.isInteger(reviewerId) && reviewerId > 0))
        return fail(2, `--reviewer-id must be a positive integer, found "${o.reviewerId}"`);
      const login = key.comment || userInfo().username;
      submit = () =>
        submitLocalDecision(localDir, fetched, key, decision, {
          now: io.now(),
          login,
          ...(reviewerId !== undefined ? { githubId: reviewerId } : {}),
          ...(note ? { note } : {}),
        });
    } else {
      const pull = parsePullUrl(target);
      let owner: string;
      let repo: string;
      if (pull) {
        owner = pull.owner;
        repo = pull.repo;
      } else {
        const m = o.repo?.match(/^([^/\s]+)\/([^/\s]+)$/);
        if (!m)
          return fail(
            2,
            `"${target}" is not a pull-request URL; pass the PR URL, or the request id with --repo owner/name (or --local <dir> for a local approvals repository)`,
          );
        owner = m[1]!;
        repo = m[2]!;
      }
      const token = io.env[o.tokenEnv];
      if (!token)
        return fail(
          2,
          `set ${o.tokenEnv} to a GitHub token that can review pull requests on ${owner}/${repo} (or name another variable with --token-env)`,
        );
      const quiet = () => {}; // failures reach the reviewer as one line with the fix, below
      const octokit = createOctokit({
        baseUrl: o.githubUrl ?? pull?.apiBase ?? "https://api.github.com",
        token,
        userAgent: "custos-approve",
        log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
      });
      fetched = await fetchGitHubRequest(
        octokit,
        { owner, repo, ...(pull ? { number: pull.number } : { requestId: target }) },
        { now: io.now() },
      );
      submit = () => submitGitHubDecision(octokit, { owner, repo }, fetched, key, decision, note);
    }
    if (!o.json || !o.yes) {
      io.stderr.write(
        `${terminalSummary(fetched.file, fetched.where)}\nsigning key ${keyFingerprint(key.publicKey)}${key.comment ? ` (${key.comment})` : ""}\n`,
      );
    }
    if (!o.yes) {
      if (!io.stdin.isTTY)
        return fail(2, "not a terminal: nothing to confirm with; pass --yes to sign without asking");
      const rl = createInterface({ input: io.stdin, output: io.stderr });
      const answer = await rl.question(
        `${decision === "approve" ? "Approve" : "Deny"} this operation with your signature? [y/N] `,
      );
      rl.close();
      if (!/^y(es)?$/i.test(answer.trim())) return fail(1, "not signed: you did not confirm");
    }
    const done = await submit();
    if (o.json) io.stdout.write(`${JSON.stringify(done)}\n`);
    else
      io.stdout.write(
        `${decision === "approve" ? "approved" : "denied"} request ${done.requestId}${done.reviewer ? ` as @${done.reviewer.login} (id ${done.reviewer.id})` : ""} with key ${done.keyFingerprint}: ${done.url}\n`,
      );
    return 0;
  } catch (e) {
    if (e instanceof ApprovalError) return fail(EXIT_FOR_CODE[e.code] ?? 3, e.message);
    return fail(3, `unexpected failure: ${(e as Error).message}`);
  }
}

function defaultIo(): DecisionIo {
  return {
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    now: () => new Date(),
  };
}

export async function run(argv: string[]): Promise<number> {
  return runDecision("approve", argv);
}
