/**
 * Approvals as signed pull-request reviews: the public surface the gateway's composition root,
 * the demo and the CLI use. The gateway itself sees only `ApprovalService` (gateway/ports.ts).
 */
export type {
  ApprovalBackend,
  ApprovalCoreOptions,
  ApprovalGroups,
  RequestHandle,
  RequestSnapshot,
} from "./core.ts";
export { ApprovalCore } from "./core.ts";
export {
  ApprovalBackendError,
  ApprovalError,
  KeyFormatError,
  RequestClosedError,
  RequestFileError,
  RequestIdTakenError,
  RequestNotFoundError,
  UnknownApprovalGroupError,
  WebhookSignatureError,
} from "./errors.ts";
export type {
  Evaluation,
  EvaluationInput,
  ReviewState,
  ReviewView,
  Verdict,
  VerdictCode,
} from "./evaluate.ts";
export { evaluateReviews } from "./evaluate.ts";
export type { ApprovalEvent } from "./evidence.ts";
export { approvalRecord } from "./evidence.ts";
export type { CanonicalOperation, Fingerprint, RequestFile } from "./fingerprint.ts";
export {
  branchFor,
  buildRequestFile,
  canonicalOperation,
  computeFingerprint,
  parseRequestFile,
  REQUESTER_ID_CLAIMS,
  requestIdFor,
} from "./fingerprint.ts";
export type { GitHubApprovalOptions, OctokitAuthOptions, WebhookResult } from "./github.ts";
export {
  createOctokit,
  GitHubApprovalService,
  LABEL_DENIED,
  LABEL_EXPIRED,
  LABEL_GRANTED,
} from "./github.ts";
export type { GitHubAppCredentials } from "./github-app.ts";
export { githubAppAuthStrategy } from "./github-app.ts";
export type { Denial, Grant } from "./grants.ts";
export { GrantStore } from "./grants.ts";
export type { LocalApprovalOptions } from "./local.ts";
export { LocalApprovalService } from "./local.ts";
export type { LocalReview, LocalStatus } from "./local-repo.ts";
export { LocalApprovalRepo } from "./local-repo.ts";
export type { ReviewDecision, SignatureBlock, SignatureCheck } from "./signature.ts";
export {
  formatSignatureBlock,
  parseSignatureBlock,
  SIGNATURE_DOMAIN,
  signDecision,
  signingPayload,
  verifyEd25519,
  verifySignatureBlock,
} from "./signature.ts";
export type { Ed25519PrivateKey, Ed25519PublicKey } from "./sshkey.ts";
export {
  formatPrivateKey,
  formatPublicKey,
  keyFingerprint,
  parsePrivateKey,
  parsePublicKey,
} from "./sshkey.ts";
export {
  fetchGitHubRequest,
  fetchLocalRequest,
  parsePullUrl,
  submitGitHubDecision,
  submitLocalDecision,
} from "./submit.ts";
