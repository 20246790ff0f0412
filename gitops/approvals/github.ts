/**
 * GitHub backend: each request is a pull request on the approvals repository (branch
 * `custos/request-<id>` adding `requests/<id>.json`), reviewers are requested from the rule's
 * group, and decisions are reviews carrying a custos signature block. Works with github.com
 * and GitHub Enterprise (pass an Octokit built with that baseUrl, see `createOctokit`).
 * Reviews are learnt on `check`, by webhook (`handleWebhook`, HMAC-verified) and by polling.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Octokit } from "@octokit/rest";
import type { ApprovalGroup } from "../../sdk/schema/config.ts";
import { pullRequestBody, pullRequestTitle } from "./body.ts";
import { type GitHubAppCredentials, githubAppAuthStrategy } from "./github-app.ts";
import {
  type ApprovalBackend,
  ApprovalCore,
  type ApprovalCoreOptions,
  type RequestHandle,
  type RequestSnapshot,
} from "./core.ts";
import { ApprovalBackendError, RequestIdTakenError, WebhookSignatureError } from "./errors.ts";
import type { ReviewState, ReviewView } from "./evaluate.ts";
import {
  branchFor,
  type Fingerprint,
  parseRequestFile,
  type RequestFile,
  requestIdPrefix,
  serializeRequestFile,
} from "./fingerprint.ts";

export const LABEL_GRANTED = "custos:granted";
export const LABEL_DENIED = "custos:denied";
export const LABEL_EXPIRED = "custos:expired";

export interface GitHubApprovalOptions extends ApprovalCoreOptions {
  /** an authenticated Octokit (token or GitHub App installation auth; baseUrl for Enterprise) */
  octokit: Octokit;
  owner: string;
  repo: string;
  /** the branch requests are opened against (default: the repository's default branch) */
  baseBranch?: string;
  /** the webhook secret; without it every webhook delivery is refused */
  webhookSecret?: string;
  /** re-evaluate open requests every N ms (0/absent: no polling) */
  pollIntervalMs?: number;
}

export interface OctokitAuthOptions {
  /** REST base URL: https://api.github.com (default) or https://<host>/api/v3 for GitHub Enterprise */
  baseUrl?: string;
  /** a token (PAT, fine-grained token, or an installation token) */
  token?: string;
  /** GitHub App credentials: the App's JWT is exchanged for an installation token (github-app.ts) */
  app?: GitHubAppCredentials;
  /** any other @octokit/auth-* strategy and its options */
  authStrategy?: unknown;
  auth?: unknown;
  userAgent?: string;
  /** where Octokit's own log lines go; default: warnings and errors as JSON lines on stderr */
  log?: {
    debug: (m: string) => void;
    info: (m: string) => void;
    warn: (m: string) => void;
    error: (m: string) => void;
  };
}

const jsonLog = (level: string) => (message: string) =>
  process.stderr.write(`${JSON.stringify({ component: "approvals.octokit", level, msg: message })}\n`);
const noop = () => {};

/** Build an Octokit for the approvals repository (composition roots only). */
export function createOctokit(o: OctokitAuthOptions): Octokit {
  const opts: Record<string, unknown> = {
    userAgent: o.userAgent ?? "custos-approvals",
    log: o.log ?? { debug: noop, info: noop, warn: jsonLog("warn"), error: jsonLog("error") },
  };
  if (o.baseUrl) opts.baseUrl = o.baseUrl.replace(/\/+$/, "");
  if (o.app) {
    opts.authStrategy = githubAppAuthStrategy;
    opts.auth = o.app;
  } else if (o.authStrategy) {
    opts.authStrategy = o.authStrategy;
    opts.auth = o.auth;
  } else if (o.token) {
    opts.auth = o.token;
  }
  return new Octokit(opts);
}

class GitHubBackend implements ApprovalBackend {
  readonly name = "github";
  private baseBranch: string | undefined;
  constructor(private readonly o: GitHubApprovalOptions) {
    this.baseBranch = o.baseBranch;
  }

  private get gh() {
    return this.o.octokit;
  }
  private get coords() {
    return { owner: this.o.owner, repo: this.o.repo };
  }

  private async wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const status = (e as { status?: number }).status;
      throw new ApprovalBackendError(
        `expected GitHub to ${what} on ${this.o.owner}/${this.o.repo}, found ${status ? `HTTP ${status}` : "an error"}: ${(e as Error).message}; check the token's permissions (contents, pull requests: write) and the repository name`,
        { what, status: status ?? null },
      );
    }
  }

  async findOpen(fingerprint: Fingerprint): Promise<RequestHandle | undefined> {
    const prefix = branchFor(requestIdPrefix(fingerprint));
    const pulls = await this.wrap("list open pull requests", () =>
      this.gh.paginate(this.gh.rest.pulls.list, { ...this.coords, state: "open", per_page: 100 }),
    );
    const candidates = pulls.filter((p) => p.head.ref.startsWith(prefix)).sort((a, b) => b.number - a.number);
    for (const p of candidates) {
      const requestId = p.head.ref.slice("custos/request-".length);
      const file = await this.readRequestFile(requestId, p.head.sha).catch(() => undefined);
      if (file && file.fingerprint === fingerprint)
        return { requestId, fingerprint, file, url: p.html_url, ref: p.number };
    }
    return undefined;
  }

  private async readRequestFile(requestId: string, ref: string): Promise<RequestFile> {
    const res = await this.gh.rest.repos.getContent({
      ...this.coords,
      path: `requests/${requestId}.json`,
      ref,
    });
    const data = res.data as { type?: string; content?: string };
    if (data.type !== "file" || typeof data.content !== "string")
      throw new ApprovalBackendError(`requests/${requestId}.json is not a file`);
    return parseRequestFile(Buffer.from(data.content, "base64").toString("utf8"));
  }

  async open(file: RequestFile, group: ApprovalGroup): Promise<RequestHandle> {
    if (!this.baseBranch) {
      const repo = await this.wrap("read the repository", () => this.gh.rest.repos.get(this.coords));
      this.baseBranch = repo.data.default_branch;
    }
    const base = this.baseBranch;
    const branch = branchFor(file.requestId);
    const baseRef = await this.wrap(`read branch ${base}`, () =>
      this.gh.rest.git.getRef({ ...this.coords, ref: `heads/${base}` }),
    );
    try {
      await this.gh.rest.git.createRef({
        ...this.coords,
        ref: `refs/heads/${branch}`,
        sha: baseRef.data.object.sha,
      });
    } catch (e) {
      if ((e as { status?: number }).status === 422 && /already exists/i.test((e as Error).message))
        throw new RequestIdTakenError(file.requestId);
      await this.wrap(`create branch ${branch}`, () => Promise.reject(e));
    }
    await this.wrap(`add requests/${file.requestId}.json`, () =>
      this.gh.rest.repos.createOrUpdateFileContents({
        ...this.coords,
        path: `requests/${file.requestId}.json`,
        branch,
        message: `custos: approval request ${file.requestId}\n\nFingerprint: ${file.fingerprint}\nRule: ${file.rule.id}`,
        content: Buffer.from(serializeRequestFile(file)).toString("base64"),
      }),
    );
    const pr = await this.wrap("open the pull request", () =>
      this.gh.rest.pulls.create({
        ...this.coords,
        head: branch,
        base,
        title: pullRequestTitle(file),
        body: "(being prepared)",
      }),
    );
    const url = pr.data.html_url;
    await this.wrap("write the pull request body", () =>
      this.gh.rest.pulls.update({
        ...this.coords,
        pull_number: pr.data.number,
        body: pullRequestBody(
          file,
          `custos approve ${url} --key <your ed25519 key>`,
          `custos deny ${url} --key <your ed25519 key> --reason "..."`,
        ),
      }),
    );
    // Request the group's reviewers by their CURRENT login, looked up from the immutable id.
    const logins: string[] = [];
    for (const r of group.reviewers) {
      try {
        const u = await this.gh.request("GET /user/{account_id}", { account_id: r.githubId });
        logins.push((u.data as { login: string }).login);
      } catch {
        logins.push(r.login);
      }
    }
    const author = pr.data.user?.id;
    const reviewers = logins.filter((_, i) => group.reviewers[i]?.githubId !== author);
    if (reviewers.length > 0) {
      await this.gh.rest.pulls
        .requestReviewers({ ...this.coords, pull_number: pr.data.number, reviewers })
        .catch(() => undefined);
    }
    return { requestId: file.requestId, fingerprint: file.fingerprint, file, url, ref: pr.data.number };
  }

  async snapshot(h: RequestHandle): Promise<RequestSnapshot> {
    const pull_number = Number(h.ref);
    const pr = await this.wrap(`read pull request #${pull_number}`, () =>
      this.gh.rest.pulls.get({ ...this.coords, pull_number }),
    );
    if (pr.data.state !== "open")
      return { open: false, headSha: pr.data.head.sha, reviews: [], excludedIds: [] };
    const reviews = await this.wrap(`list reviews of #${pull_number}`, () =>
      this.gh.paginate(this.gh.rest.pulls.listReviews, { ...this.coords, pull_number, per_page: 100 }),
    );
    const views: ReviewView[] = reviews.map((r, i) => ({
      id: String(r.id),
      reviewerId: r.user ? Number(r.user.id) : null,
      login: r.user?.login ?? "ghost",
      state: (["APPROVED", "CHANGES_REQUESTED", "DISMISSED", "COMMENTED", "PENDING"].includes(r.state)
        ? r.state
        : "COMMENTED") as ReviewState,
      commitId: r.commit_id,
      body: r.body ?? "",
      order: i,
      ...(r.submitted_at ? { submittedAt: r.submitted_at } : {}),
    }));
    // The pull request's author never approves it if a human opened it (e.g. with a personal token).
    const excludedIds = pr.data.user && pr.data.user.type === "User" ? [Number(pr.data.user.id)] : [];
    return { open: true, headSha: pr.data.head.sha, reviews: views, excludedIds };
  }

  async finalize(
    h: RequestHandle,
    outcome: "granted" | "denied" | "expired",
    comment: string,
  ): Promise<void> {
    const issue_number = Number(h.ref);
    const label = outcome === "granted" ? LABEL_GRANTED : outcome === "denied" ? LABEL_DENIED : LABEL_EXPIRED;
    await this.gh.rest.issues.addLabels({ ...this.coords, issue_number, labels: [label] });
    await this.gh.rest.issues.createComment({ ...this.coords, issue_number, body: comment });
    await this.gh.rest.pulls.update({ ...this.coords, pull_number: issue_number, state: "closed" });
  }

  reviewCommand(h: RequestHandle): string {
    return `custos approve ${h.url ?? `${h.requestId} --repo ${this.o.owner}/${this.o.repo}`}`;
  }

  /** A branch `custos/granted-<id>`: creating a ref is atomic on GitHub (422 when it exists). */
  async claimGrant(h: RequestHandle, headSha: string): Promise<boolean> {
    try {
      await this.gh.rest.git.createRef({
        ...this.coords,
        ref: `refs/heads/custos/granted-${h.requestId}`,
        sha: headSha,
      });
      return true;
    } catch (e) {
      if ((e as { status?: number }).status === 422 && /already exists/i.test((e as Error).message))
        return false;
      return this.wrap(`claim the grant of ${h.requestId}`, () => Promise.reject(e));
    }
  }
}

export interface WebhookResult {
  event: string;
  /** the pull request the delivery was about, if any */
  pullNumber?: number;
  reevaluated: boolean;
}

export class GitHubApprovalService extends ApprovalCore {
  private readonly secret: string | undefined;

  constructor(private readonly gho: GitHubApprovalOptions) {
    super(new GitHubBackend(gho), gho);
    this.secret = gho.webhookSecret;
    this.startPolling(gho.pollIntervalMs);
  }

  /**
   * A GitHub webhook delivery. The X-Hub-Signature-256 header must be the HMAC-SHA256 of the
   * exact raw body under the webhook secret (compared in constant time); otherwise
   * WebhookSignatureError and nothing is evaluated. pull_request_review and pull_request
   * events re-evaluate that pull request's request.
   */
  async handleWebhook(
    headers: Record<string, string | string[] | undefined>,
    rawBody: string | Uint8Array,
  ): Promise<WebhookResult> {
    const header = (name: string) => {
      const v = headers[name] ?? headers[name.toLowerCase()];
      return Array.isArray(v) ? v[0] : v;
    };
    const raw = typeof rawBody === "string" ? Buffer.from(rawBody, "utf8") : Buffer.from(rawBody);
    if (!this.secret)
      throw new WebhookSignatureError(
        "expected a webhook secret to be configured, found none; set one so deliveries can be verified",
        {},
      );
    const sig = header("x-hub-signature-256") ?? "";
    const expected = Buffer.from(
      `sha256=${createHmac("sha256", this.secret).update(raw).digest("hex")}`,
      "utf8",
    );
    const given = Buffer.from(sig, "utf8");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new WebhookSignatureError(
        "expected X-Hub-Signature-256 to be the HMAC-SHA256 of the body under the webhook secret, found a mismatch; the delivery is refused (check the secret configured on the GitHub webhook)",
        {
          present: sig !== "",
        },
      );
    }
    const event = header("x-github-event") ?? "";
    let payload: { pull_request?: { number?: number }; repository?: { full_name?: string } };
    try {
      payload = JSON.parse(raw.toString("utf8")) as typeof payload;
    } catch {
      return { event, reevaluated: false };
    }
    const number = payload.pull_request?.number;
    const repoName = payload.repository?.full_name;
    if ((event !== "pull_request_review" && event !== "pull_request") || typeof number !== "number")
      return { event, reevaluated: false };
    if (repoName && repoName.toLowerCase() !== `${this.gho.owner}/${this.gho.repo}`.toLowerCase())
      return { event, pullNumber: number, reevaluated: false };
    const known = this.trackedHandles().some((h) => h.ref === number);
    if (known) await this.reevaluate((h) => h.ref === number);
    return { event, pullNumber: number, reevaluated: known };
  }

  /** A node:http request listener for the webhook endpoint: 202 accepted, 401 forged, 500 failure. */
  webhookListener(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.handleWebhook(req.headers, Buffer.concat(chunks)).then(
          (r) => {
            res.writeHead(202, { "content-type": "application/json" });
            res.end(JSON.stringify(r));
          },
          (e: unknown) => {
            const forged = e instanceof WebhookSignatureError;
            res.writeHead(forged ? 401 : 500, { "content-type": "application/json" });
            res.end(
              JSON.stringify({
                code: (e as { code?: string }).code ?? "E_INTERNAL",
                message: (e as Error).message,
              }),
            );
          },
        );
      });
    };
  }
}
