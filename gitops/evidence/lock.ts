/**
 * One writer process per evidence repository: `<gitdir>/custos/writer.lock`, created with
 * O_EXCL and holding `<pid> <hostname> <process token>`. A lock whose process is gone (same
 * host, kill(pid,0) says ESRCH) is stale and taken over; refs are not atomic across processes
 * otherwise. A lock naming this process's own pid is stale unless it carries this process's
 * token: a gateway restarted in a container runs with the pid its killed predecessor had.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Fs } from "./objects.ts";
import { EvidenceError } from "./wal.ts";

export interface WriterLock {
  path: string;
  /** the lock file still exists and names this process */
  held(): boolean;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function await0(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** tells this process's locks from those of an earlier process that had the same pid */
const PROCESS_TOKEN = randomUUID();

export function acquireLock(fs: Fs, path: string): WriterLock {
  const me = `${process.pid} ${hostname()} ${PROCESS_TOKEN}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(path, "wx", 0o600);
      fs.writeSync(fd, me);
      fs.closeSync(fd);
      let released = false;
      return {
        path,
        held: () => {
          try {
            return fs.readFileSync(path, "utf8") === me;
          } catch {
            return false;
          }
        },
        release: () => {
          if (released) return;
          released = true;
          try {
            if (fs.readFileSync(path, "utf8") === me) fs.unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let text = "";
    try {
      text = fs.readFileSync(path, "utf8");
    } catch {
      continue; // removed meanwhile: retry
    }
    const [pidText, host, token] = text.trim().split(" ");
    const pid = Number(pidText);
    const stale =
      host === hostname() &&
      Number.isInteger(pid) &&
      pid > 0 &&
      (pid === process.pid ? token !== PROCESS_TOKEN : !alive(pid));
    // an empty lock: its writer died between creating and filling it (or is doing so right now)
    const unreadable = text.trim() === "" && Date.now() - fs.statSync(path).mtimeMs > 2000;
    if (text.trim() === "" && !unreadable) {
      attempt--;
      await0(50);
      continue;
    }
    if (!stale && !unreadable) {
      throw new EvidenceError(
        "EVIDENCE_REPO_LOCKED",
        `the evidence repo is locked by process ${pidText} on ${host ?? "?"} (${path}); run one writer per repository, or remove the lock file if that process is gone`,
        { path, pid, host },
      );
    }
    try {
      fs.unlinkSync(path);
    } catch {
      // someone else removed it first
    }
  }
  throw new EvidenceError(
    "EVIDENCE_REPO_LOCKED",
    `could not take the writer lock ${path}; another writer keeps taking it`,
    { path },
  );
}
