/**
 * What `custos audit verify` can find. Codes are stable (tests and auditors' scripts match
 * on them); messages are for people and may change.
 */
export const FINDING_CODES = {
  NO_EVIDENCE_BRANCHES: "the repository has no evidence/<gatewayId> branch",
  OBJECT_CORRUPT: "a git object is missing or its bytes do not hash to its id",
  SIG_MISSING: "a commit is not signed",
  SIG_INVALID: "a commit's signature is malformed or does not verify over the commit",
  SIG_UNKNOWN_KEY: "a commit is signed by a key that is not in allowed_signers",
  SIG_KEY_EXPIRED:
    "a commit is signed by an allowed key outside its valid-after / valid-before period (a retired key)",
  SIG_NAMESPACE: "a signature was made for a namespace other than git, or the key is not allowed for git",
  COMMITTER_MISMATCH: "the committer email is not a principal of the signing key",
  COMMIT_TRAILER_MISMATCH:
    "a commit's Custos-Last-Seq / Custos-Chain trailers disagree with the recomputed values",
  MERGE_COMMIT: "a merge commit: evidence history must be linear",
  HISTORY_BROKEN: "a commit's parent is not the previous commit of the branch",
  FILE_DELETED: "a file present in an earlier commit was deleted",
  FILE_MODIFIED: "a file was changed other than by appending to it",
  LINE_CHANGED: "a line of an earlier record file was changed",
  LINE_REMOVED: "a line of an earlier record file was removed",
  UNEXPECTED_ENTRY: "a tree entry that is neither a regular file nor a directory (symlink, submodule)",
  RECORD_PATH:
    "a record file's path does not follow records/YYYY/MM/DD/HH/MM/<gatewayId>-<firstSeq>.jsonl (or the older records/YYYY/MM/DD/HH/…)",
  RECORD_INVALID: "a record line is not valid JSON of the EvidenceRecord shape",
  GATEWAY_MISMATCH: "a record's gateway id differs from its branch or file name",
  SEQ_GAP: "a gateway's sequence numbers skip one or more values",
  SEQ_REPEAT: "a sequence number that was already recorded appears again",
  SEQ_OUT_OF_ORDER: "a sequence number lower than one already recorded (records reordered)",
  TIME_BACKWARDS: "a record's stageTimestamp is earlier than the previous record of its gateway",
  CHECKPOINT_INVALID: "a checkpoint cannot be parsed, or its signature is not from an allowed key",
  CHECKPOINT_NO_BRANCH: "a checkpoint names a gateway that has no evidence branch",
  CHECKPOINT_NOT_IN_HISTORY:
    "a checkpoint's commit is not in the history of its gateway's branch (rewritten or rolled back)",
  CHECKPOINT_ROLLBACK: "the branch holds fewer records than a checkpoint recorded earlier (rolled back)",
  CHECKPOINT_HASH_MISMATCH: "the records' chained hash differs from the checkpoint's (history rewritten)",
  CHECKPOINT_COUNT_MISMATCH: "the record count at the checkpoint's commit differs from the checkpoint's",
  SINCE_NOT_FOUND: "the --since commit is not on the branch",
} as const;

export type FindingCode = keyof typeof FINDING_CODES;

export interface Finding {
  code: FindingCode;
  /** the commit where it was found (null for repository-level findings) */
  commit: string | null;
  path: string | null;
  /** 1-based line number in `path` */
  line?: number;
  message: string;
  /** the branch it was found on */
  ref?: string;
}
