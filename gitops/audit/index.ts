/**
 * The auditor's tools over a clone of the evidence repository: verify, query, report.
 * Nothing here writes to the repository or reads the clock.
 */
import { parseAllowedSigners } from "../signer/index.ts";
import { type CheckpointInput, loadCheckpoints } from "./checkpoints.ts";
import { resolveCommit, resolveGitDir } from "./git-objects.ts";
import { type VerifyProgress, type VerifyResult, verifyEvidenceRepo } from "./verify.ts";

export { type CheckpointInput, checkpointClaim, loadCheckpoints } from "./checkpoints.ts";
export { FINDING_CODES, type Finding, type FindingCode } from "./findings.ts";
export { GitReadError, ObjectIntegrityError, resolveGitDir } from "./git-objects.ts";
export {
  compileFilter,
  type FoundRecord,
  listSessions,
  QueryInputError,
  queryRecords,
  type RecordFilter,
  walkRecords,
} from "./query.ts";
export { type AuditReport, buildReport, type ReportOptions, reportMarkdown } from "./report.ts";
export {
  type CheckpointClaim,
  type CheckpointStatus,
  type GatewaySummary,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyResult,
  verifyEvidenceRepo,
} from "./verify.ts";

export interface AuditVerifyOptions {
  /** a clone (working tree or bare) of the evidence repository */
  repo: string;
  /** the text of an allowed_signers file, given out of band */
  allowedSigners: string;
  /** checkpoints saved outside the writer's control */
  checkpoints?: CheckpointInput[];
  /** verify only the commits after this revision (it and its history were verified earlier) */
  since?: string;
  onProgress?: (p: VerifyProgress) => void;
  maxFindingsPerCode?: number;
  /** worker threads parsing records (0 = main thread only; default: automatic) */
  workers?: number;
}

/** Verify an evidence repository clone: signatures, append-only, sequences, timestamps, checkpoints. */
export async function auditVerify(opts: AuditVerifyOptions): Promise<VerifyResult> {
  const gitDir = await resolveGitDir(opts.repo);
  const allowed = parseAllowedSigners(opts.allowedSigners);
  const { claims, findings } = loadCheckpoints(opts.checkpoints ?? [], allowed);
  let since: string | undefined;
  if (opts.since !== undefined) since = (await resolveCommit(gitDir, opts.since)) ?? opts.since;
  const vo: Parameters<typeof verifyEvidenceRepo>[0] = {
    gitDir,
    allowedSigners: allowed,
    checkpoints: claims,
    checkpointFindings: findings,
  };
  if (since !== undefined) vo.since = since;
  if (opts.onProgress) vo.onProgress = opts.onProgress;
  if (opts.maxFindingsPerCode !== undefined) vo.maxFindingsPerCode = opts.maxFindingsPerCode;
  if (opts.workers !== undefined) vo.workers = opts.workers;
  return verifyEvidenceRepo(vo);
}
