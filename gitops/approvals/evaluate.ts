/**
 * The grant rules, as one pure function shared by the GitHub and the local backend.
 * A request is granted only when ALL of these hold:
 *  1. it has not expired (now < expiresAt);
 *  2. for each reviewer only the LATEST review counts (approve, request changes, dismissed;
 *     comment-only reviews do not change a reviewer's state, as on GitHub);
 *  3. that latest review is APPROVED, on the request's CURRENT head commit;
 *  4. by a reviewer the rule's approval group names, matched by numeric user id (never login);
 *  5. not by the requester (nor the human author of the pull request);
 *  6. carrying a valid custos signature by one of THAT reviewer's registered keys over THIS
 *     fingerprint, THIS request id and the decision "approve" (unsigned reviews count only
 *     when the rule sets allowUnsigned);
 *  7. and the number of distinct such reviewers reaches the rule's count.
 * A valid signed denial (REQUEST_CHANGES with decision "deny") by a group reviewer denies the
 * request, whatever the approvals: denial wins, fail closed.
 */
import type { ApprovalGroup, ApprovalRequirement } from "../../sdk/schema/config.ts";
import { parseSignatureBlock, type SignatureCheck, verifySignatureBlock } from "./signature.ts";

export type ReviewState = "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED" | "COMMENTED" | "PENDING";

export interface ReviewView {
  /** GitHub review id, or the local review file name */
  id: string;
  /** immutable numeric GitHub user id of the submitter (null when unknown) */
  reviewerId: number | null;
  /** display only */
  login: string;
  state: ReviewState;
  /** the commit (GitHub) or request-file blob (local) the review was made on */
  commitId: string | null;
  body: string;
  /** submission order: later reviews have larger values */
  order: number;
  submittedAt?: string;
}

export type VerdictCode =
  | "ok"
  | "unsigned-allowed"
  | "unsigned"
  | "not-in-group"
  | "self-approval"
  | "stale-head"
  | "superseded"
  | "dismissed"
  | "changes-requested"
  | "comment"
  | "expired"
  | Exclude<SignatureCheck, { ok: true }>["code"];

export interface Verdict {
  reviewId: string;
  reviewerId: number | null;
  login: string;
  state: ReviewState;
  /** what this review decides if it counts */
  decision: "approve" | "deny" | "none";
  /** whether it counts toward the grant (approve) or the denial (deny) */
  counted: boolean;
  code: VerdictCode;
  detail: string;
  keyFingerprint?: string;
  signature?: string;
}

export interface EvaluationInput {
  request: { requestId: string; fingerprint: string; expiresAt: string };
  /** the request's current head (commit sha on GitHub, request-file blob id locally) */
  headSha: string;
  reviews: readonly ReviewView[];
  group: ApprovalGroup;
  requirement: Pick<ApprovalRequirement, "count" | "allowUnsigned">;
  /** numeric user ids that may never approve: the requester's, the PR's human author */
  excludedIds: readonly number[];
  now: Date;
}

export interface Evaluation {
  status: "granted" | "pending" | "denied" | "expired";
  approvals: Verdict[];
  denial?: Verdict;
  verdicts: Verdict[];
  /** human summary: "1 of 2 signed approvals" */
  summary: string;
}

export function evaluateReviews(input: EvaluationInput): Evaluation {
  const { request, group, requirement } = input;
  const expired = input.now.getTime() >= Date.parse(request.expiresAt);
  const sorted = [...input.reviews].sort((a, b) => a.order - b.order);
  const latest = new Map<string, ReviewView>();
  for (const r of sorted) {
    if (r.state === "COMMENTED" || r.state === "PENDING") continue;
    latest.set(r.reviewerId === null ? `?${r.login}` : String(r.reviewerId), r);
  }
  const latestIds = new Set([...latest.values()].map((r) => r.id));
  const verdicts: Verdict[] = [];
  for (const r of sorted) {
    const base = { reviewId: r.id, reviewerId: r.reviewerId, login: r.login, state: r.state };
    const block = parseSignatureBlock(r.body);
    const sigInfo = block ? { signature: block.signature } : {};
    const v = (
      decision: Verdict["decision"],
      counted: boolean,
      code: VerdictCode,
      detail: string,
      extra: Partial<Verdict> = {},
    ): Verdict => ({
      ...base,
      ...sigInfo,
      decision,
      counted,
      code,
      detail,
      ...extra,
    });
    if (r.state === "COMMENTED" || r.state === "PENDING") {
      verdicts.push(v("none", false, "comment", "a comment does not decide"));
      continue;
    }
    if (!latestIds.has(r.id)) {
      verdicts.push(v("none", false, "superseded", "a later review by the same reviewer replaces this one"));
      continue;
    }
    if (r.state === "DISMISSED") {
      verdicts.push(v("none", false, "dismissed", "the review was dismissed"));
      continue;
    }
    const decision = r.state === "APPROVED" ? "approve" : "deny";
    const reviewer =
      r.reviewerId === null ? undefined : group.reviewers.find((x) => x.githubId === r.reviewerId);
    if (!reviewer) {
      verdicts.push(
        v(
          decision,
          false,
          "not-in-group",
          `user id ${r.reviewerId ?? "unknown"} (${r.login}) is not a reviewer of this rule's group`,
        ),
      );
      continue;
    }
    if (expired) {
      verdicts.push(v(decision, false, "expired", `the request expired at ${request.expiresAt}`));
      continue;
    }
    if (decision === "approve" && input.excludedIds.includes(reviewer.githubId)) {
      verdicts.push(
        v(
          decision,
          false,
          "self-approval",
          `user id ${reviewer.githubId} requested this operation and cannot approve it`,
        ),
      );
      continue;
    }
    if (decision === "approve" && r.commitId !== input.headSha) {
      verdicts.push(
        v(
          decision,
          false,
          "stale-head",
          `the review was made on ${r.commitId ?? "no commit"}, the request's head is ${input.headSha}`,
        ),
      );
      continue;
    }
    if (!block) {
      if (decision === "approve" && requirement.allowUnsigned) {
        verdicts.push(
          v(
            decision,
            true,
            "unsigned-allowed",
            "unsigned approval, counted because the rule allows unsigned reviews",
          ),
        );
      } else if (decision === "approve") {
        verdicts.push(
          v(
            decision,
            false,
            "unsigned",
            "the approval carries no custos signature; approve with `custos approve`",
          ),
        );
      } else {
        verdicts.push(
          v(
            "none",
            false,
            "changes-requested",
            "changes requested without a signed denial: the reviewer's approval is withdrawn",
          ),
        );
      }
      continue;
    }
    const check = verifySignatureBlock(block, {
      fingerprint: request.fingerprint,
      requestId: request.requestId,
      decision,
      registeredKeys: reviewer.keys,
    });
    if (!check.ok) {
      verdicts.push(v(decision, false, check.code, check.detail));
      continue;
    }
    verdicts.push(
      v(decision, true, "ok", `signed ${decision} verified`, { keyFingerprint: check.keyFingerprint }),
    );
  }
  const approvals = verdicts.filter((x) => x.counted && x.decision === "approve");
  const denial = verdicts.find((x) => x.counted && x.decision === "deny");
  const distinct = new Set(approvals.map((x) => x.reviewerId)).size;
  const summary = `${distinct} of ${requirement.count} ${requirement.allowUnsigned ? "" : "signed "}approvals`;
  let status: Evaluation["status"];
  if (denial) status = "denied";
  else if (expired) status = "expired";
  else status = distinct >= requirement.count ? "granted" : "pending";
  return { status, approvals, ...(denial ? { denial } : {}), verdicts, summary };
}
