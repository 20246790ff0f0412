/**
 * Approval stage: for a call whose rule requires approval, ask the ApprovalService for a
 * grant. Granted: single-use grants are consumed first (a failed consume refuses the call).
 * Pending: answer 403 naming the request and how to review it, or — if the rule asks to
 * wait — hold the call and poll until granted, denied or the wait times out.
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
  /** the client went away: stop holding */
  signal?: AbortSignal;
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
  const deadline = deps.now() + (requirement.wait ? requirement.wait.timeoutSeconds * 1000 : 0);
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
          { requestId: outcome.requestId },
        ),
      };
    // pending
    const remaining = deadline - deps.now();
    if (!requirement.wait || remaining <= 0 || deps.signal?.aborted)
      return {
        ok: false,
        approval: ref(outcome),
        error: new GatewayError(
          "APPROVAL_PENDING",
          403,
          "Forbidden",
          `custos: rule ${op.ruleId} requires approval; request ${outcome.requestId} is pending${outcome.url ? ` at ${outcome.url}` : ""}. A reviewer runs: ${outcome.reviewCommand} — then retry the same command`,
          { requestId: outcome.requestId, fingerprint: outcome.fingerprint },
        ),
      };
    await deps.sleep(Math.min(deps.pollMs ?? 2000, remaining));
  }
}
