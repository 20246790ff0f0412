/**
 * An exclusive lock file next to an evidence file (`<file>.lock`, holding
 * `<pid> <hostname> <process token>`): one writer per file. It is created whole (a temp file
 * hard-linked into place). A lock whose process is gone (same host) is taken over, under an
 * exclusive marker so that of two processes starting at once on it only one removes it.
 */
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import { hostname } from "node:os";

const TOKEN = randomUUID();

export class EvidenceFileLockedError extends Error {
  readonly code = "EVIDENCE_FILE_LOCKED";
}

function create(path: string, content: string): boolean {
  const tmp = `${path}.${TOKEN}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  try {
    fs.linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    fs.unlinkSync(tmp);
  }
}

function stale(text: string): boolean {
  const [pidText, host, token] = text.trim().split(" ");
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return token !== TOKEN;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "EPERM";
  }
}

function read(path: string): string | null {
  try {
    return fs.readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** take `<file>.lock`; throws EvidenceFileLockedError while another live process holds it */
export function lockEvidenceFile(file: string): { release(): void } {
  const path = `${file}.lock`;
  const me = `${process.pid} ${hostname()} ${TOKEN}\n`;
  for (let attempt = 0; attempt < 100; attempt++) {
    if (create(path, me)) {
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          if (read(path) === me) fs.rmSync(path, { force: true });
        },
      };
    }
    const text = read(path);
    if (text === null) continue;
    if (!stale(text)) {
      throw new EvidenceFileLockedError(
        `${file} is written by another process (${text.trim().split(" ").slice(0, 2).join(" on ")}, lock ${path}); run one gateway per evidence file, or remove the lock if that process is gone`,
      );
    }
    // take it over: one process at a time per stale lock, and only if it still is that lock
    const marker = `${path}.takeover`;
    if (!create(marker, me)) {
      const m = read(marker);
      if (m !== null && stale(m)) fs.rmSync(marker, { force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      continue;
    }
    try {
      if (read(path) === text) fs.unlinkSync(path);
    } finally {
      fs.unlinkSync(marker);
    }
  }
  throw new EvidenceFileLockedError(`could not take the lock ${path}; another writer keeps taking it`);
}
