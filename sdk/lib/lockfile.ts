/**
 * One writer process per file: a lock file holding `<pid> <hostname> <process token>`, shared by
 * the evidence repository's writer (gitops) and the JSON-lines evidence sink (gateway).
 *
 * A lock whose process is gone (same host, kill(pid,0) says ESRCH) is stale and taken over. A
 * lock naming this process's own pid is stale unless it carries this process's token: a
 * gateway restarted in a container runs with the pid its killed predecessor had.
 *
 * A lock is created whole (written to a temp file, then hard-linked into place; O_EXCL where the
 * file system has no hard links), and a stale one is taken over under a marker
 * `<lock>.takeover-<hash of its content>` created exclusively: of two processes that both judge
 * the same lock stale, one removes it (after checking it still holds that content) and the other
 * finds the new lock, alive. Without the marker the second one deleted the first one's fresh
 * lock and both wrote.
 */
import { createHash, randomUUID } from "node:crypto";
import type * as NodeFs from "node:fs";
import { hostname } from "node:os";

/** the file operations a lock needs (node:fs, or a wrapper that injects faults in tests) */
export type LockFs = Pick<
  typeof NodeFs,
  | "writeFileSync"
  | "linkSync"
  | "unlinkSync"
  | "openSync"
  | "writeSync"
  | "closeSync"
  | "readFileSync"
  | "rmSync"
  | "statSync"
>;

export interface LockFile {
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

/** create `path` holding `content`, atomically and only if it does not exist; false when it does */
function createExclusive(fs: LockFs, path: string, content: string): boolean {
  const tmp = `${path}.${PROCESS_TOKEN}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  try {
    fs.linkSync(tmp, path); // never seen empty or half-written
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw err;
  } finally {
    fs.unlinkSync(tmp);
  }
  // a file system without hard links: O_EXCL, then the content
  try {
    const fd = fs.openSync(path, "wx", 0o600);
    fs.writeSync(fd, content);
    fs.closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

/** a lock (or marker) text whose process is gone */
function staleText(text: string): boolean {
  const [pidText, host, token] = text.trim().split(" ");
  const pid = Number(pidText);
  return (
    host === hostname() &&
    Number.isInteger(pid) &&
    pid > 0 &&
    (pid === process.pid ? token !== PROCESS_TOKEN : !alive(pid))
  );
}

/**
 * Remove the lock at `path` if it still holds `stale`. Returns false when another process is
 * taking the same lock over right now (retry shortly).
 */
function takeOver(fs: LockFs, path: string, stale: string, me: string): boolean {
  const marker = `${path}.takeover-${createHash("sha256").update(stale).digest("hex").slice(0, 16)}`;
  if (!createExclusive(fs, marker, me)) {
    let text = "";
    try {
      text = fs.readFileSync(marker, "utf8");
    } catch {
      return false; // released meanwhile
    }
    // a process that died between creating its marker and removing it (microseconds)
    if (staleText(text)) fs.rmSync(marker, { force: true });
    return false;
  }
  try {
    let now: string | null = null;
    try {
      now = fs.readFileSync(path, "utf8");
    } catch {
      // gone already
    }
    // no one else can remove it while we hold the marker, and its dead owner never will
    if (now === stale) fs.unlinkSync(path);
  } finally {
    fs.unlinkSync(marker);
  }
  return true;
}

/**
 * Take the lock at `path` for this process, taking a stale one over; throws `locked(holder)`
 * while a live process holds it (`locked(null)`: other processes kept taking it first).
 */
export function acquireLockFile(
  fs: LockFs,
  path: string,
  locked: (holder: { pid: string; host: string } | null) => Error,
): LockFile {
  const me = `${process.pid} ${hostname()} ${PROCESS_TOKEN}\n`;
  let busy = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createExclusive(fs, path, me)) {
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
    }
    let text = "";
    try {
      text = fs.readFileSync(path, "utf8");
    } catch {
      continue; // removed meanwhile: retry
    }
    const [pidText, host] = text.trim().split(" ");
    const stale = staleText(text);
    // an empty lock: its writer died between creating and filling it (or is doing so right now)
    const unreadable = text.trim() === "" && Date.now() - fs.statSync(path).mtimeMs > 2000;
    if (text.trim() === "" && !unreadable) {
      attempt--;
      await0(50);
      continue;
    }
    if (!stale && !unreadable) {
      throw locked({ pid: pidText ?? "?", host: host ?? "?" });
    }
    if (!takeOver(fs, path, text, me) && busy++ < 100) {
      attempt--;
      await0(2);
    }
  }
  throw locked(null);
}
