/**
 * One writer per repository: `<gitdir>/custos/writer.lock` (sdk/lib/lockfile.ts: created whole,
 * stale locks taken over atomically); refs are not atomic across processes otherwise.
 */
import { acquireLockFile, type LockFile } from "../../sdk/lib/lockfile.ts";
import type { Fs } from "./objects.ts";
import { EvidenceError } from "./wal.ts";

export type WriterLock = LockFile;

export function acquireLock(fs: Fs, path: string): WriterLock {
  return acquireLockFile(fs, path, (holder) =>
    holder === null
      ? new EvidenceError(
          "EVIDENCE_REPO_LOCKED",
          `could not take the writer lock ${path}; another writer keeps taking it`,
          { path },
        )
      : new EvidenceError(
          "EVIDENCE_REPO_LOCKED",
          `the evidence repo is locked by process ${holder.pid} on ${holder.host} (${path}); run one writer per repository, or remove the lock file if that process is gone`,
          { path, pid: Number(holder.pid), host: holder.host },
        ),
  );
}
