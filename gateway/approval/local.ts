/**
 * The stand-in ApprovalService used when no approval backend is configured: every request
 * needing approval is denied with a message saying so (fail closed).
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../../sdk/lib/canonical.ts";
import type { ApprovalOperation, ApprovalOutcome, ApprovalService } from "../ports.ts";

export function operationFingerprint(op: ApprovalOperation): string {
  const { maskedBody: _m, ...rest } = op;
  return `sha256:${createHash("sha256").update(canonicalJson(rest)).digest("hex")}`;
}

export class NoApprovalBackend implements ApprovalService {
  async check(op: ApprovalOperation): Promise<ApprovalOutcome> {
    const fingerprint = operationFingerprint(op);
    return {
      status: "denied",
      requestId: "none",
      fingerprint,
      reason: "approval required: no approval backend configured",
    };
  }
  async consume(): Promise<boolean> {
    return false;
  }
  async close(): Promise<void> {}
}
