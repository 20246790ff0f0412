/**
 * Approval stage: for a call whose rule requires approval, ask the ApprovalService for a
 * grant. Granted: single-use grants are consumed first (a failed consume refuses the call).
 * Pending: answer 403 naming the request and how to review it, or — if the rule asks to
 * wait — hold the call and poll until granted, denied or the wait times out.
 *
 * A held call is held at most `holdSliceMs` (default 50 s: below the 60 s idle timeouts of
 * common proxies and load balancers) per attempt; then the gateway answers 429 with
 * `Retry-After`, which client-go (kubectl, controllers) retries silently, up to 10 times. The
 * rule's wait timeout counts from the first attempt on the request, so retries do not extend
 * it; once it has passed, the answer is the 403 naming the request.
 */
import type { ApprovalRequirement } from "../../sdk/schema/config.ts";
import { GatewayError } from "../errors.ts";
import type { ApprovalOperation, ApprovalOutcome, ApprovalService, EvidenceRecord } from "../ports.ts";

export type ApprovalRef = NonNullable<EvidenceRecord["custos"]["approval"]>;

export type ApprovalResult =
  | { ok: true; approval: ApprovalRef }
  | { ok: false; error: GatewayError; approval?: ApprovalRef };

export interface ApprovalStageDeps {
  service: ApprovalService;
  /** resolves after ms (injectable for tests) */
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  /** how often to poll while holding a call */
  pollMs?: number;
  /** the client went away: stop holding (an AbortSignal or the gateway's lighter per-call one) */
  signal?: { readonly aborted: boolean };
  /** hold one attempt at most this long, then answer 429 + Retry-After (default 50 000) */
  holdSliceMs?: number;
  /** the Retry-After of that 429, seconds (default 1) */
  retryAfterSeconds?: number;
}

export const DEFAULT_HOLD_SLICE_MS = 50_000;

/** When the wait on a request began (its first held attempt), per approval service. */
const waitStarts = new WeakMap<ApprovalService, Map<string, number>>();
function waitStartsOf(service: ApprovalService): Map<string, number> {
  let m = waitStarts.get(service);
  if (!m) {
    m = new Map();
    waitStarts.set(service, m);
  }
  return m;
}

function ref(o: ApprovalOutcome): ApprovalRef {
  const r: ApprovalRef = { requestId: o.requestId, fingerprint: o.fingerprint };
  if (o.status === "granted") r.grantId = o.grantId;
  if (o.url) r.url = o.url;
  return r;
}

export async function approvalStage(
  deps: ApprovalStageDeps,
  op: ApprovalOperation,
  requirement: ApprovalRequirement,
): Promise<ApprovalResult> {
  const started = deps.now();
  const waitMs = requirement.wait ? requirement.wait.timeoutSeconds * 1000 : 0;
  const sliceMs = deps.holdSliceMs ?? DEFAULT_HOLD_SLICE_MS;
  const starts = waitStartsOf(deps.service);
  let startKey: string | undefined;
  for (;;) {
    let outcome: ApprovalOutcome;
    try {
      outcome = await deps.service.check(op, requirement);
    } catch (e) {
      return {
        ok: false,
        error: new GatewayError(
          "APPROVAL_BACKEND_FAILED",
          503,
          "ServiceUnavailable",
          `custos: rule ${op.ruleId} requires approval, but the approval service failed (${(e as { code?: string }).code ?? "error"}); the call was refused — retry later`,
        ),
      };
    }
    if (outcome.status !== "pending" && startKey) starts.delete(startKey);
    if (outcome.status === "granted") {
      if (requirement.use === "once") {
        let consumed = false;
        try {
          consumed = await deps.service.consume(outcome.grantId);
        } catch {
          consumed = false;
        }
        if (!consumed)
          return {
            ok: false,
            approval: ref(outcome),
            error: new GatewayError(
              "APPROVAL_ALREADY_USED",
              403,
              "Forbidden",
              `custos: rule ${op.ruleId}: the single-use approval ${outcome.grantId} was already used; request a new approval`,
              { grantId: outcome.grantId },
            ),
          };
      }
      return { ok: true, approval: ref(outcome) };
    }
    if (outcome.status === "denied")
      return {
        ok: false,
        approval: ref(outcome),
        error: new GatewayError(
          "APPROVAL_DENIED",
          403,
          "Forbidden",
          `custos: denied by rule ${op.ruleId}: ${outcome.reason}${outcome.url ? ` (${outcome.url})` : ""}`,
          { requestId: outcome.requestId, ruleId: op.ruleId },
        ),
      };
    // pending: the wait runs from the first attempt on this request (retries do not extend it;
    // a wait abandoned long ago starts afresh)
    const now = deps.now();
    if (requirement.wait && startKey === undefined) {
      startKey = `${outcome.requestId}\n${op.ruleId}`;
      const first = starts.get(startKey);
      if (first === undefined || now - first > waitMs + 10 * 60_000) starts.set(startKey, started);
      for (const [k, t] of starts) if (now - t > waitMs + 10 * 60_000) starts.delete(k);
    }
    const deadline = (startKey !== undefined ? (starts.get(startKey) ?? started) : started) + waitMs;
    const remaining = deadline - now;
    if (!requirement.wait || remaining <= 0 || deps.signal?.aborted) {
      if (startKey !== undefined && remaining <= 0) starts.delete(startKey);
      return {
        ok: false,
        approval: ref(outcome),
        error: new GatewayError(
          "APPROVAL_PENDING",
          403,
          "Forbidden",
          `custos: rule ${op.ruleId} requires approval; request ${outcome.requestId} is pending${outcome.url ? ` at ${outcome.url}` : ""}. A reviewer runs: ${outcome.reviewCommand} — then retry the same command`,
          { requestId: outcome.requestId, fingerprint: outcome.fingerprint, ruleId: op.ruleId },
        ),
      };
    }
    const sliceLeft = started + sliceMs - now;
    if (sliceLeft <= 0) {
      const retryAfter = deps.retryAfterSeconds ?? 1;
      return {
        ok: false,
        approval: ref(outcome),
        error: new GatewayError(
          "APPROVAL_PENDING_RETRY",
          429,
          "TooManyRequests",
          `custos: rule ${op.ruleId} requires approval; request ${outcome.requestId} is still pending${outcome.url ? ` at ${outcome.url}` : ""} (${Math.ceil(remaining / 1000)} s of the rule's wait left). Retry after ${retryAfter} s (kubectl retries by itself). A reviewer runs: ${outcome.reviewCommand}`,
          { requestId: outcome.requestId, fingerprint: outcome.fingerprint, ruleId: op.ruleId },
          { "retry-after": String(retryAfter) },
        ),
      };
    }
    await deps.sleep(Math.min(deps.pollMs ?? 2000, remaining, sliceLeft));
  }
}
