/**
 * The reviewer's side: find a request (GitHub pull request or local repository), verify it,
 * and submit a signed decision. Used by `custos approve` / `custos deny`; no env, no TTY here.
 */
import type { Octokit } from "@octokit/rest";
import { ApprovalBackendError, RequestClosedError, RequestNotFoundError } from "./errors.ts";
import { branchFor, isRequestId, parseRequestFile, type RequestFile } from "./fingerprint.ts";
import { LocalApprovalRepo } from "./local-repo.ts";
import { formatSignatureBlock, type ReviewDecision, type SignatureBlock, signDecision } from "./signature.ts";
import { type Ed25519PrivateKey, keyFingerprint } from "./sshkey.ts";

export interface PullRef {
  /** REST base URL derived from the PR's host: api.github.com, or <host>/api/v3 for Enterprise */
  apiBase: string;
  owner: string;
  repo: string;
  number: number;
}

/** "https://github.com/acme/approvals/pull/12" or "https://ghe.example/acme/approvals/pull/12" */
export function parsePullUrl(url: string): PullRef | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const m = u.pathname.match(/^((?:\/[^/]+)*?)\/([^/]+)\/([^/]+)\/pull\/(\d+)\/?$/);
  if (!m || (u.protocol !== "https:" && u.protocol !== "http:")) return undefined;
  const host = u.host.toLowerCase();
  const apiBase =
    host === "github.com" || host === "www.github.com"
      ? "https://api.github.com"
      : `${u.protocol}//${u.host}${m[1] ?? ""}/api/v3`;
  return { apiBase, owner: m[2]!, repo: m[3]!, number: Number(m[4]) };
}

export interface FetchedRequest {
  file: RequestFile;
  /** GitHub: the PR head sha; local: the request file's blob id */
  head: string;
  /** PR URL or the request file path */
  where: string;
  /** GitHub PR number */
  number?: number;
}

export interface ReviewerContext {
  now: Date;
}

function checkOpen(file: RequestFile, now: Date, closedReason?: string): void {
  if (closedReason)
    throw new RequestClosedError(
      `expected request ${file.requestId} to be open, found it ${closedReason}; nothing to sign`,
      { requestId: file.requestId, closedReason },
    );
  if (now.getTime() >= Date.parse(file.expiresAt)) {
    throw new RequestClosedError(
      `expected request ${file.requestId} to be unexpired, found it expired at ${file.expiresAt}; the requester must retry to open a new request`,
      {
        requestId: file.requestId,
        expiresAt: file.expiresAt,
      },
    );
  }
}

async function gh<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const status = (e as { status?: number }).status;
    if (status === 404)
      throw new RequestNotFoundError(
        `expected ${what}, found none (HTTP 404); check the URL or --repo, and that your token can read the repository`,
        { what },
      );
    throw new ApprovalBackendError(
      `expected GitHub to ${what}, found ${status ? `HTTP ${status}` : "an error"}: ${(e as Error).message}`,
      { what, status: status ?? null },
    );
  }
}

/** Fetch a GitHub request by PR number or by request id, verify its file, and check it is open. */
export async function fetchGitHubRequest(
  octokit: Octokit,
  target: { owner: string; repo: string; number?: number; requestId?: string },
  ctx: ReviewerContext,
): Promise<FetchedRequest> {
  const coords = { owner: target.owner, repo: target.repo };
  let number = target.number;
  if (number === undefined) {
    if (!target.requestId || !isRequestId(target.requestId))
      throw new RequestNotFoundError(
        `expected a request id like 3f2a9c1b7d4e-miexk2ab, found "${target.requestId ?? ""}"`,
      );
    const head = `${target.owner}:${branchFor(target.requestId)}`;
    const pulls = await gh(`list pull requests of ${target.owner}/${target.repo}`, () =>
      octokit.rest.pulls.list({ ...coords, state: "all", head, per_page: 10 }),
    );
    const pr = pulls.data.find((p) => p.head.ref === branchFor(target.requestId!));
    if (!pr)
      throw new RequestNotFoundError(
        `expected a pull request from branch ${branchFor(target.requestId)} in ${target.owner}/${target.repo}, found none; check the id and --repo`,
        { requestId: target.requestId },
      );
    number = pr.number;
  }
  const pr = await gh(`read pull request #${number} of ${target.owner}/${target.repo}`, () =>
    octokit.rest.pulls.get({ ...coords, pull_number: number }),
  );
  if (!pr.data.head.ref.startsWith("custos/request-")) {
    throw new RequestNotFoundError(
      `expected pull request #${number} to be a custos request (branch custos/request-<id>), found branch ${pr.data.head.ref}`,
      { number },
    );
  }
  const requestId = pr.data.head.ref.slice("custos/request-".length);
  if (pr.data.state !== "open") {
    const labels = pr.data.labels.map((l) => (typeof l === "string" ? l : l.name)).join(", ");
    throw new RequestClosedError(
      `expected request ${requestId} to be open, found pull request #${number} closed (${labels || "no label"}); nothing to sign`,
      { requestId, number },
    );
  }
  const content = await gh(`read requests/${requestId}.json at ${pr.data.head.sha}`, () =>
    octokit.rest.repos.getContent({ ...coords, path: `requests/${requestId}.json`, ref: pr.data.head.sha }),
  );
  const data = content.data as { type?: string; content?: string };
  if (data.type !== "file" || typeof data.content !== "string")
    throw new RequestNotFoundError(`expected requests/${requestId}.json to be a file`);
  const file = parseRequestFile(Buffer.from(data.content, "base64").toString("utf8"));
  if (file.requestId !== requestId)
    throw new RequestNotFoundError(
      `expected the request file to be for ${requestId}, found ${file.requestId}`,
    );
  checkOpen(file, ctx.now);
  return { file, head: pr.data.head.sha, where: pr.data.html_url, number };
}

export interface Submitted {
  requestId: string;
  fingerprint: string;
  decision: ReviewDecision;
  keyFingerprint: string;
  reviewId: string;
  url: string;
  reviewer?: { id: number; login: string };
}

export function reviewBody(decision: ReviewDecision, block: SignatureBlock, note?: string): string {
  const head =
    decision === "approve"
      ? "Approved with custos: signed with my registered ed25519 key."
      : "Denied with custos: signed with my registered ed25519 key.";
  return [head, ...(note ? ["", note] : []), "", formatSignatureBlock(block)].join("\n");
}

export async function submitGitHubDecision(
  octokit: Octokit,
  target: { owner: string; repo: string },
  req: FetchedRequest,
  key: Ed25519PrivateKey,
  decision: ReviewDecision,
  note?: string,
): Promise<Submitted> {
  const block = signDecision(key, decision, req.file.fingerprint, req.file.requestId);
  const res = await gh(`submit a review on #${req.number}`, () =>
    octokit.rest.pulls.createReview({
      owner: target.owner,
      repo: target.repo,
      pull_number: req.number!,
      commit_id: req.head,
      event: decision === "approve" ? "APPROVE" : "REQUEST_CHANGES",
      body: reviewBody(decision, block, note),
    }),
  );
  return {
    requestId: req.file.requestId,
    fingerprint: req.file.fingerprint,
    decision,
    keyFingerprint: keyFingerprint(key.publicKey),
    reviewId: String(res.data.id),
    url: res.data.html_url,
    ...(res.data.user ? { reviewer: { id: Number(res.data.user.id), login: res.data.user.login } } : {}),
  };
}

/** Fetch a local request by id, verify its file, and check it is open. */
export async function fetchLocalRequest(
  dir: string,
  requestId: string,
  ctx: ReviewerContext,
): Promise<FetchedRequest> {
  const repo = new LocalApprovalRepo(dir);
  if (!isRequestId(requestId))
    throw new RequestNotFoundError(`expected a request id like 3f2a9c1b7d4e-miexk2ab, found "${requestId}"`);
  const file = repo.readRequest(requestId);
  if (!file)
    throw new RequestNotFoundError(
      `expected ${dir}/requests/${requestId}.json, found none; check the id and --local directory`,
      { requestId, dir },
    );
  const status = repo.readStatus(requestId);
  checkOpen(file, ctx.now, status ? status.status : undefined);
  return { file, head: await repo.requestHead(requestId), where: `${dir}/requests/${requestId}.json` };
}

export async function submitLocalDecision(
  dir: string,
  req: FetchedRequest,
  key: Ed25519PrivateKey,
  decision: ReviewDecision,
  opts: { now: Date; login: string; githubId?: number; note?: string },
): Promise<Submitted> {
  const repo = new LocalApprovalRepo(dir, () => opts.now);
  const block = signDecision(key, decision, req.file.fingerprint, req.file.requestId);
  const path = await repo.addReview({
    kind: "custos.dev/ApprovalReview",
    version: 1,
    requestId: req.file.requestId,
    state: decision === "approve" ? "APPROVED" : "CHANGES_REQUESTED",
    head: req.head,
    reviewer: { githubId: opts.githubId ?? null, login: opts.login },
    submittedAt: opts.now.toISOString(),
    body: reviewBody(decision, block, opts.note),
  });
  return {
    requestId: req.file.requestId,
    fingerprint: req.file.fingerprint,
    decision,
    keyFingerprint: keyFingerprint(key.publicKey),
    reviewId: path
      .split("/")
      .pop()!
      .replace(/\.json$/, ""),
    url: `${dir}/${path}`,
  };
}
