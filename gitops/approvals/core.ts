/**
 * The approval service logic shared by every backend (GitHub pull requests, a local git
 * repository). A backend only knows how to store a request, list its reviews and close it;
 * the grant rules (evaluate.ts), the grant store (grants.ts) and the evidence trail
 * (evidence.ts) are the same for all, so a deployment can swap backends without weakening a
 * check.
 */
import type {
  ApprovalOperation,
  ApprovalOutcome,
  ApprovalService,
  EvidenceSink,
} from "../../gateway/ports.ts";
import type { ApprovalGroup, ApprovalRequirement, Json } from "../../sdk/schema/config.ts";
import { RequestIdTakenError, UnknownApprovalGroupError } from "./errors.ts";
import { type Evaluation, evaluateReviews, type ReviewView, type Verdict } from "./evaluate.ts";
import { approvalRecord } from "./evidence.ts";
import {
  buildRequestFile,
  computeFingerprint,
  type Fingerprint,
  type RequestFile,
  requestCreatedAt,
  requesterGithubIds,
} from "./fingerprint.ts";
import { type Grant, GrantStore } from "./grants.ts";

export interface RequestHandle {
  requestId: string;
  fingerprint: Fingerprint;
  file: RequestFile;
  url?: string;
  /** backend-specific reference (PR number, file path) */
  ref: string | number;
}

export interface RequestSnapshot {
  /** false when the request was closed outside custos (then a new request is opened) */
  open: boolean;
  headSha: string;
  reviews: ReviewView[];
  /** numeric user ids that may never approve besides the requester (e.g. the PR's human author) */
  excludedIds: number[];
}

export interface ApprovalBackend {
  readonly name: string;
  findOpen(fingerprint: Fingerprint): Promise<RequestHandle | undefined>;
  open(file: RequestFile, group: ApprovalGroup): Promise<RequestHandle>;
  snapshot(h: RequestHandle): Promise<RequestSnapshot>;
  /** mark the request decided (label + comment + close on GitHub, a status commit locally) */
  finalize(h: RequestHandle, outcome: "granted" | "denied" | "expired", comment: string): Promise<void>;
  reviewCommand(h: RequestHandle): string;
  /**
   * Claim this request's single-use grant for this gateway, atomically across every gateway
   * that shares the backend: true for the first claim only, ever. A backend whose gateways
   * share one grant store (local) needs none; GitHub replicas keep their grants apart.
   */
  claimGrant?(h: RequestHandle, headSha: string): Promise<boolean>;
}

export type ApprovalGroups = Record<string, ApprovalGroup> | (() => Record<string, ApprovalGroup>);

export interface ApprovalCoreOptions {
  /** the compiled config's approvalGroups (or a getter, so a policy reload takes effect) */
  approvalGroups: ApprovalGroups;
  evidence: EvidenceSink;
  /** persisted grants; default: in memory (a restart forgets grants — use a dir in production) */
  grants?: GrantStore;
  clock?: () => Date;
  /** how long a request stays open for review (default 24 h) */
  requestTtlSeconds?: number;
  /** text of the link to the evidence in the closing comment (default: names the evidence record) */
  evidenceLink?: (info: { requestId: string; grantId?: string; seq: number }) => string;
  /**
   * While a request is pending, `check` re-reads its reviews at most this often (ms); webhooks
   * and polls always re-read. Keeps a gateway that holds calls (wait mode) within GitHub's rate
   * limit. Default 0: every check re-reads.
   */
  recheckIntervalMs?: number;
  /** structured log sink (JSON lines); default: stderr */
  log?: (entry: Record<string, unknown>) => void;
}

interface Tracked {
  handle: RequestHandle;
  requirement: ApprovalRequirement;
  /** when check() last read the reviews (clock ms) */
  checkedAt?: number;
}

export class ApprovalCore implements ApprovalService {
  protected readonly grants: GrantStore;
  protected readonly clock: () => Date;
  protected readonly log: (entry: Record<string, unknown>) => void;
  private readonly tracked = new Map<string, Tracked>(); // by fingerprint
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    protected readonly backend: ApprovalBackend,
    protected readonly opts: ApprovalCoreOptions,
  ) {
    this.grants = opts.grants ?? new GrantStore();
    this.clock = opts.clock ?? (() => new Date());
    this.log =
      opts.log ?? ((e) => process.stderr.write(`${JSON.stringify({ component: "approvals", ...e })}\n`));
  }

  private groups(): Record<string, ApprovalGroup> {
    const g = this.opts.approvalGroups;
    return typeof g === "function" ? g() : g;
  }

  protected group(name: string): ApprovalGroup {
    const g = this.groups()[name];
    if (!g) throw new UnknownApprovalGroupError(name);
    return g;
  }

  /** Serialise work per fingerprint: two concurrent calls never open two requests. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }

  async check(op: ApprovalOperation, requirement: ApprovalRequirement): Promise<ApprovalOutcome> {
    const fingerprint = computeFingerprint(op);
    const group = this.group(requirement.group);
    return this.locked(fingerprint, async () => {
      const now = this.clock();
      const grant = this.grants.findGrant(fingerprint, now);
      if (grant) return this.grantedOutcome(grant);
      const denial = this.grants.findDenial(fingerprint, now);
      if (denial) {
        return {
          status: "denied",
          requestId: denial.requestId,
          fingerprint,
          reason: denial.reason,
          ...(denial.url ? { url: denial.url } : {}),
        };
      }
      let tracked = this.tracked.get(fingerprint);
      if (!tracked) {
        const found = await this.backend.findOpen(fingerprint);
        if (found) tracked = { handle: found, requirement };
      }
      if (tracked) {
        tracked.requirement = requirement; // the current policy's requirement applies
        this.tracked.set(fingerprint, tracked);
        const recheck = this.opts.recheckIntervalMs ?? 0;
        const fresh = tracked.checkedAt !== undefined && now.getTime() - tracked.checkedAt < recheck;
        if (fresh && now.getTime() < Date.parse(tracked.handle.file.expiresAt))
          return this.pendingOutcome(tracked.handle);
        tracked.checkedAt = now.getTime();
        const out = await this.evaluateTracked(tracked);
        if (out) return out;
      }
      const handle = await this.openRequest(op, requirement, group);
      return this.pendingOutcome(handle);
    });
  }

  async consume(grantId: string): Promise<boolean> {
    const now = this.clock();
    const ok = this.grants.consume(grantId, now);
    const g = this.grants.getGrant(grantId);
    const file = g ? (this.files.get(g.requestId) ?? g.request) : undefined;
    if (g && file) {
      await this.record(file, {
        event: "used",
        at: now,
        message: ok
          ? `grant ${grantId} used (${g.use === "once" ? "single use" : `valid until ${g.expiresAt}`})`
          : `grant ${grantId} refused: already used or expired`,
        grantId,
        ...(g.url ? { url: g.url } : {}),
        extra: { accepted: ok, use: g.use },
      });
    }
    return ok;
  }

  private pollTimer: NodeJS.Timeout | undefined;

  /** Re-evaluate every open request every `ms` (the fallback when webhooks are missed). */
  protected startPolling(ms: number | undefined): void {
    if (!ms || ms <= 0) return;
    this.pollTimer = setInterval(() => {
      this.reevaluate().catch((e: unknown) =>
        this.log({ level: "warn", msg: "approvals: poll failed", error: (e as Error).message }),
      );
    }, ms);
    this.pollTimer.unref();
  }

  /** Re-evaluate every open request now (what the poller does). */
  async poll(): Promise<void> {
    await this.reevaluate();
  }

  async close(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    await Promise.allSettled([...this.locks.values()]);
  }

  /** request files by id, kept for evidence records of later steps */
  private readonly files = new Map<string, RequestFile>();

  private async openRequest(
    op: ApprovalOperation,
    requirement: ApprovalRequirement,
    group: ApprovalGroup,
  ): Promise<RequestHandle> {
    const now = this.clock();
    const ttl = this.opts.requestTtlSeconds ?? 86_400;
    let file: RequestFile | undefined;
    let handle: RequestHandle | undefined;
    // ids carry the creation millisecond: on a collision (same operation, same ms) take the next one
    for (let bump = 0; !handle; bump++) {
      const createdAt = new Date(now.getTime() + bump);
      file = buildRequestFile(op, requirement, {
        createdAt,
        expiresAt: new Date(createdAt.getTime() + ttl * 1000),
      });
      try {
        handle = await this.backend.open(file, group);
      } catch (e) {
        if (!(e instanceof RequestIdTakenError) || bump >= 20) throw e;
      }
    }
    if (!file) throw new Error("unreachable");
    this.tracked.set(file.fingerprint, { handle, requirement });
    this.files.set(file.requestId, file);
    await this.record(file, {
      event: "request-opened",
      at: now,
      message: `approval request ${file.requestId} opened: ${requirement.count} of group ${requirement.group} must approve`,
      ...(handle.url ? { url: handle.url } : {}),
      extra: {
        backend: this.backend.name,
        group: requirement.group,
        count: requirement.count,
        expiresAt: file.expiresAt,
      },
    });
    this.log({ msg: "approval request opened", requestId: file.requestId, url: handle.url ?? null });
    return handle;
  }

  /** Re-evaluate one tracked request; returns the outcome if decided, undefined if a new request is needed. */
  private async evaluateTracked(t: Tracked): Promise<ApprovalOutcome | undefined> {
    const { handle, requirement } = t;
    const file = handle.file;
    this.files.set(file.requestId, file);
    const snap = await this.backend.snapshot(handle);
    if (!snap.open) {
      this.tracked.delete(handle.fingerprint);
      return undefined;
    }
    const now = this.clock();
    // Only fingerprint-bound facts decide: the requester's id comes from the operation's claims
    // (not the file's requester field) and the expiry is capped by the creation time in the
    // request id, so an edited request file cannot lift the self-approval ban or extend expiry.
    const excluded = [...snap.excludedIds];
    excluded.push(...requesterGithubIds(file.operation.identity.claims));
    const created = requestCreatedAt(file.requestId);
    const ttl = (this.opts.requestTtlSeconds ?? 86_400) * 1000;
    const cap = created ? created.getTime() + ttl : Date.parse(file.createdAt) + ttl;
    const expiresAt = new Date(Math.min(Date.parse(file.expiresAt) || 0, cap)).toISOString();
    const ev = evaluateReviews({
      request: { requestId: file.requestId, fingerprint: file.fingerprint, expiresAt },
      headSha: snap.headSha,
      reviews: snap.reviews,
      group: this.group(requirement.group),
      requirement,
      excludedIds: excluded,
      now,
    });
    await this.recordReviews(handle, ev);
    switch (ev.status) {
      case "granted": {
        // a single-use grant is claimed on the backend first: two gateways with their own grant
        // stores evaluating the same approved request would otherwise each grant (and use) it
        const claim = `claim:${handle.requestId}`;
        if (requirement.use === "once" && this.backend.claimGrant && !this.grants.isRecorded(claim)) {
          if (!(await this.backend.claimGrant(handle, snap.headSha))) {
            this.log({
              level: "warn",
              msg: "approvals: the single-use grant of this request was claimed by another gateway; a new request is needed",
              requestId: handle.requestId,
            });
            this.tracked.delete(handle.fingerprint);
            return undefined;
          }
          this.grants.markRecorded(claim);
        }
        return this.grantedOutcome(await this.finalizeGrant(t, ev));
      }
      case "denied":
        return this.finalizeDenial(t, ev);
      case "expired":
        await this.record(file, {
          event: "expired",
          at: now,
          message: `approval request ${file.requestId} expired at ${file.expiresAt} (${ev.summary})`,
          ...(handle.url ? { url: handle.url } : {}),
        });
        await this.safely("finalize expired", () =>
          this.backend.finalize(
            handle,
            "expired",
            `custos: this request expired at ${file.expiresAt} with ${ev.summary}. A new request is opened if the operation is tried again.`,
          ),
        );
        this.tracked.delete(handle.fingerprint);
        return undefined;
      default:
        return this.pendingOutcome(handle);
    }
  }

  /** Re-evaluate every tracked request (webhook, poll). */
  protected async reevaluate(filter: (h: RequestHandle) => boolean = () => true): Promise<void> {
    for (const t of [...this.tracked.values()]) {
      if (!filter(t.handle)) continue;
      await this.locked(t.handle.fingerprint, async () => {
        if (this.tracked.get(t.handle.fingerprint) !== t) return;
        await this.evaluateTracked(t);
      });
    }
  }

  protected trackedHandles(): RequestHandle[] {
    return [...this.tracked.values()].map((t) => t.handle);
  }

  private async recordReviews(handle: RequestHandle, ev: Evaluation): Promise<void> {
    for (const v of ev.verdicts) {
      const key = `${handle.requestId}/${v.reviewId}/${v.state}/${v.code}`;
      if (!this.grants.markRecorded(key)) continue;
      await this.record(handle.file, {
        event: "review",
        at: this.clock(),
        message: `review ${v.reviewId} by ${v.login} (id ${v.reviewerId ?? "unknown"}): ${v.state}, ${v.counted ? "counted" : "not counted"}: ${v.detail}`,
        ...(handle.url ? { url: handle.url } : {}),
        extra: verdictJson(v),
      });
    }
  }

  private async finalizeGrant(t: Tracked, ev: Evaluation): Promise<Grant> {
    const { handle, requirement } = t;
    const now = this.clock();
    const grant: Grant = {
      grantId: `grant-${handle.requestId}`,
      requestId: handle.requestId,
      fingerprint: handle.fingerprint,
      use: requirement.use,
      grantedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + requirement.ttlSeconds * 1000).toISOString(),
      ...(handle.url ? { url: handle.url } : {}),
      request: handle.file,
      approvals: ev.approvals.map((a) => ({
        reviewerId: a.reviewerId,
        login: a.login,
        reviewId: a.reviewId,
        ...(a.keyFingerprint ? { keyFingerprint: a.keyFingerprint } : {}),
      })),
    };
    // evidence first: a grant that exists is always in the evidence repo (if the record fails,
    // no grant is stored and the call stays refused)
    const { seq } = await this.record(handle.file, {
      event: "granted",
      at: now,
      message: `approval request ${handle.requestId} granted: ${ev.summary}; grant ${grant.grantId} (${grant.use === "once" ? "single use" : "reusable"}) until ${grant.expiresAt}`,
      grantId: grant.grantId,
      ...(handle.url ? { url: handle.url } : {}),
      extra: { grant: GrantStore.toJson(grant) },
    });
    this.grants.putGrant(grant);
    this.tracked.delete(handle.fingerprint);
    const link =
      this.opts.evidenceLink?.({ requestId: handle.requestId, grantId: grant.grantId, seq }) ??
      `evidence record seq ${seq} (type approval, grant ${grant.grantId})`;
    await this.safely("finalize granted", () =>
      this.backend.finalize(
        handle,
        "granted",
        `custos: granted with ${ev.summary} (${ev.approvals.map((a) => `@${a.login} id ${a.reviewerId} key ${a.keyFingerprint ?? "unsigned"}`).join(", ")}). Grant \`${grant.grantId}\`, ${grant.use === "once" ? "single use" : "reusable"}, until ${grant.expiresAt}. Evidence: ${link}.`,
      ),
    );
    return grant;
  }

  private async finalizeDenial(t: Tracked, ev: Evaluation): Promise<ApprovalOutcome> {
    const { handle } = t;
    const d = ev.denial!;
    const now = this.clock();
    const reason = `denied by ${d.login} (id ${d.reviewerId}) with a signed review`;
    this.grants.putDenial({
      requestId: handle.requestId,
      fingerprint: handle.fingerprint,
      deniedAt: now.toISOString(),
      expiresAt: handle.file.expiresAt,
      reason,
      ...(handle.url ? { url: handle.url } : {}),
      reviewer: {
        reviewerId: d.reviewerId,
        login: d.login,
        reviewId: d.reviewId,
        ...(d.keyFingerprint ? { keyFingerprint: d.keyFingerprint } : {}),
      },
    });
    this.tracked.delete(handle.fingerprint);
    const { seq } = await this.record(handle.file, {
      event: "denied",
      at: now,
      message: reason,
      ...(handle.url ? { url: handle.url } : {}),
      extra: verdictJson(d),
    });
    const link =
      this.opts.evidenceLink?.({ requestId: handle.requestId, seq }) ??
      `evidence record seq ${seq} (type approval)`;
    await this.safely("finalize denied", () =>
      this.backend.finalize(handle, "denied", `custos: ${reason}. Evidence: ${link}.`),
    );
    return {
      status: "denied",
      requestId: handle.requestId,
      fingerprint: handle.fingerprint,
      reason,
      ...(handle.url ? { url: handle.url } : {}),
    };
  }

  private grantedOutcome(g: Grant): ApprovalOutcome {
    return {
      status: "granted",
      requestId: g.requestId,
      fingerprint: g.fingerprint,
      grantId: g.grantId,
      ...(g.url ? { url: g.url } : {}),
    };
  }

  private pendingOutcome(h: RequestHandle): ApprovalOutcome {
    return {
      status: "pending",
      requestId: h.requestId,
      fingerprint: h.fingerprint,
      reviewCommand: this.backend.reviewCommand(h),
      ...(h.url ? { url: h.url } : {}),
    };
  }

  protected async record(
    file: RequestFile,
    ev: Parameters<typeof approvalRecord>[1],
  ): Promise<{ seq: number }> {
    this.files.set(file.requestId, file);
    return this.opts.evidence.append(approvalRecord(file, ev));
  }

  /** Steps after a decision is durable (labels, comments) must not undo it when GitHub hiccups. */
  private async safely(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.log({
        level: "warn",
        msg: `approvals: ${what} failed; the decision stands`,
        error: (e as Error).message,
      });
    }
  }
}

function verdictJson(v: Verdict): Record<string, Json> {
  const out: Record<string, Json> = {
    reviewId: v.reviewId,
    reviewerId: v.reviewerId,
    login: v.login,
    state: v.state,
    decision: v.decision,
    counted: v.counted,
    verdict: v.code,
    detail: v.detail,
  };
  if (v.keyFingerprint) out.keyFingerprint = v.keyFingerprint;
  if (v.signature) out.signature = v.signature;
  return out;
}
