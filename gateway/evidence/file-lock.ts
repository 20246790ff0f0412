/**
 * An exclusive lock file next to an evidence file (`<file>.lock`): one writer per file, with
 * the evidence repository's lock (sdk/lib/lockfile.ts: created whole, a lock whose process is
 * gone taken over atomically).
 */
import * as fs from "node:fs";
import { acquireLockFile } from "../../sdk/lib/lockfile.ts";

export class EvidenceFileLockedError extends Error {
  readonly code = "EVIDENCE_FILE_LOCKED";
}

/** take `<file>.lock`; throws EvidenceFileLockedError while another live process holds it */
export function lockEvidenceFile(file: string): { release(): void } {
  const path = `${file}.lock`;
  return acquireLockFile(fs, path, (holder) =>
    holder === null
      ? new EvidenceFileLockedError(`could not take the lock ${path}; another writer keeps taking it`)
      : new EvidenceFileLockedError(
          `${file} is written by another process (${holder.pid} on ${holder.host}, lock ${path}); run one gateway per evidence file, or remove the lock if that process is gone`,
        ),
  );
}
