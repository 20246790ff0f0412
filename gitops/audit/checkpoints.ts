/**
 * Checkpoints as the auditor uses them: signed notes (gitops/signer/checkpoint.ts) saved
 * outside the writer's control (a comment on the approvals repository, a ticket, an email)
 * and fed back into verify. Their signature is checked against the same allowed_signers.
 */
import { type AllowedSigner, verifyCheckpoint } from "../signer/index.ts";
import type { Finding } from "./findings.ts";
import type { CheckpointClaim } from "./verify.ts";

export interface CheckpointInput {
  /** where it came from, for findings (a file name) */
  source: string;
  text: string;
}

export function checkpointClaim(
  input: CheckpointInput,
  allowed: readonly AllowedSigner[],
): { claim: CheckpointClaim } | { error: string } {
  const r = verifyCheckpoint(input.text, allowed);
  if (!r.ok || !r.checkpoint)
    return {
      error: `checkpoint ${input.source}: ${r.detail ?? r.reason}; use the checkpoint text exactly as the gateway published it, and the allowed_signers file with the gateway's key`,
    };
  const cp = r.checkpoint;
  const claim: CheckpointClaim = {
    source: input.source,
    gatewayId: cp.gatewayId,
    count: cp.count,
    chain: cp.chain,
    commit: cp.commit,
  };
  if (cp.time) claim.time = cp.time;
  return { claim };
}

/** Turn checkpoint texts into claims (signature valid) and findings (not usable). */
export function loadCheckpoints(
  inputs: CheckpointInput[],
  allowed: readonly AllowedSigner[],
): { claims: CheckpointClaim[]; findings: Finding[] } {
  const claims: CheckpointClaim[] = [];
  const findings: Finding[] = [];
  for (const input of inputs) {
    const r = checkpointClaim(input, allowed);
    if ("error" in r)
      findings.push({ code: "CHECKPOINT_INVALID", commit: null, path: input.source, message: r.error });
    // a checkpoint at count 0 covers no commit and proves nothing
    else if (r.claim.count > 0) claims.push(r.claim);
  }
  return { claims, findings };
}
