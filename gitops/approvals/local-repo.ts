/**
 * The local approvals repository: a plain git repository (isomorphic-git, no server) holding
 *   requests/<id>.json              one request (the same file the GitHub backend commits)
 *   reviews/<id>/<time>-<rand>.json one signed review each, written by `custos approve --local`
 *   status/<id>.json                granted | denied | expired, written by the gateway
 * Every change is a commit, so `git log` shows who asked, who signed and what was decided.
 * The gateway and reviewers' CLIs share it; a lock file (.git/custos.lock, O_EXCL) serialises
 * commits between processes.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import * as fs from "node:fs";
import { dirname, join } from "node:path";
import git from "isomorphic-git";
import { ApprovalBackendError, RequestIdTakenError } from "./errors.ts";
import type { ReviewState } from "./evaluate.ts";
import { parseRequestFile, type RequestFile, serializeRequestFile } from "./fingerprint.ts";

export interface LocalReview {
  kind: "custos.dev/ApprovalReview";
  version: 1;
  requestId: string;
  state: Extract<ReviewState, "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED">;
  /** git blob id of requests/<id>.json the reviewer saw and verified (the request's "head") */
  head: string;
  /** the reviewer's numeric GitHub id if they gave one; otherwise the gateway finds them by key */
  reviewer: { githubId: number | null; login: string };
  submittedAt: string;
  /** free text plus the custos signature block */
  body: string;
}

export interface LocalStatus {
  status: "granted" | "denied" | "expired";
  at: string;
  comment: string;
}

const AUTHOR = { name: "custos", email: "custos@custos.local" };
const ID_RE = /^[0-9a-f]{12}-[0-9a-z]{1,12}$/;

export class LocalApprovalRepo {
  constructor(
    readonly dir: string,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async ensure(): Promise<void> {
    if (existsSync(join(this.dir, ".git", "HEAD"))) return;
    mkdirSync(this.dir, { recursive: true });
    await this.locked(async () => {
      if (existsSync(join(this.dir, ".git", "HEAD")) && existsSync(join(this.dir, "README.md"))) return;
      await git.init({ fs, dir: this.dir, defaultBranch: "main" });
      writeFileSync(
        join(this.dir, "README.md"),
        "# custos approvals (local)\n\nRequests, signed reviews and decisions. Approve with `custos approve <id> --local <this dir> --key <key>`.\n",
      );
      await git.add({ fs, dir: this.dir, filepath: "README.md" });
      await this.commit("custos: local approvals repository");
    });
  }

  /** Serialise writers across processes with an O_EXCL lock file (stale after 30 s). */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = join(this.dir, ".git", "custos.lock");
    mkdirSync(dirname(lock), { recursive: true });
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        closeSync(openSync(lock, "wx"));
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        try {
          if (Date.now() - statSync(lock).mtimeMs > 30_000) unlinkSync(lock);
        } catch {
          // removed meanwhile
        }
        if (Date.now() > deadline)
          throw new ApprovalBackendError(
            `expected to take the lock ${lock} within 15 s, found it held; if no custos process is running, delete it`,
            { lock },
          );
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
      }
    }
    try {
      return await fn();
    } finally {
      try {
        unlinkSync(lock);
      } catch {
        // already gone
      }
    }
  }

  private async commit(message: string): Promise<string> {
    const t = this.clock();
    const who = { ...AUTHOR, timestamp: Math.floor(t.getTime() / 1000), timezoneOffset: 0 };
    return git.commit({ fs, dir: this.dir, message, author: who, committer: who });
  }

  /** Write new files (never overwriting) and commit them in one commit. */
  async addFiles(files: { path: string; content: string }[], message: string): Promise<string> {
    await this.ensure();
    return this.locked(async () => {
      for (const f of files) {
        const abs = join(this.dir, f.path);
        mkdirSync(dirname(abs), { recursive: true });
        try {
          writeFileSync(abs, f.content, { flag: "wx" });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EEXIST") {
            const m = f.path.match(/^requests\/(.+)\.json$/);
            if (m) throw new RequestIdTakenError(m[1]!);
            throw new ApprovalBackendError(`expected ${f.path} to be new, found it exists`, { path: f.path });
          }
          throw e;
        }
        await git.add({ fs, dir: this.dir, filepath: f.path });
      }
      return this.commit(message);
    });
  }

  async putRequest(file: RequestFile): Promise<void> {
    await this.addFiles(
      [{ path: `requests/${file.requestId}.json`, content: serializeRequestFile(file) }],
      `custos: approval request ${file.requestId}\n\nFingerprint: ${file.fingerprint}\nRule: ${file.rule.id}`,
    );
  }

  listRequestIds(): string[] {
    const d = join(this.dir, "requests");
    if (!existsSync(d)) return [];
    return readdirSync(d)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .filter((id) => ID_RE.test(id));
  }

  requestText(id: string): string | undefined {
    if (!ID_RE.test(id)) return undefined;
    try {
      return readFileSync(join(this.dir, "requests", `${id}.json`), "utf8");
    } catch {
      return undefined;
    }
  }

  /** The request, verified (its fingerprint recomputes); undefined if absent. */
  readRequest(id: string): RequestFile | undefined {
    const text = this.requestText(id);
    return text === undefined ? undefined : parseRequestFile(text);
  }

  /** The request's "head": the git blob id of its current content. */
  async requestHead(id: string): Promise<string> {
    const text = this.requestText(id);
    if (text === undefined)
      throw new ApprovalBackendError(`expected requests/${id}.json, found none`, { id });
    const { oid } = await git.hashBlob({ object: text });
    return oid;
  }

  readReviews(id: string): { name: string; review: LocalReview }[] {
    const d = join(this.dir, "reviews", id);
    if (!ID_RE.test(id) || !existsSync(d)) return [];
    const out: { name: string; review: LocalReview }[] = [];
    for (const name of readdirSync(d)
      .filter((f) => f.endsWith(".json"))
      .sort()) {
      try {
        const r = JSON.parse(readFileSync(join(d, name), "utf8")) as LocalReview;
        if (r.kind === "custos.dev/ApprovalReview" && r.requestId === id) out.push({ name, review: r });
      } catch {
        // an unreadable review file counts as no review
      }
    }
    return out.sort((a, b) =>
      a.review.submittedAt < b.review.submittedAt
        ? -1
        : a.review.submittedAt > b.review.submittedAt
          ? 1
          : a.name < b.name
            ? -1
            : 1,
    );
  }

  async addReview(review: LocalReview): Promise<string> {
    const stamp = Date.parse(review.submittedAt).toString(36).padStart(9, "0");
    const rand = Math.random().toString(16).slice(2, 8).padEnd(6, "0");
    const path = `reviews/${review.requestId}/${stamp}-${rand}.json`;
    await this.addFiles(
      [{ path, content: `${JSON.stringify(review, null, 2)}\n` }],
      `custos: ${review.state === "APPROVED" ? "approve" : "deny"} ${review.requestId} (${review.reviewer.login})`,
    );
    return path;
  }

  readStatus(id: string): LocalStatus | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, "status", `${id}.json`), "utf8")) as LocalStatus;
    } catch {
      return undefined;
    }
  }

  async putStatus(id: string, status: LocalStatus): Promise<void> {
    await this.addFiles(
      [{ path: `status/${id}.json`, content: `${JSON.stringify(status, null, 2)}\n` }],
      `custos: request ${id} ${status.status}\n\n${status.comment}`,
    );
  }

  /** commit messages, newest first (for tests and `git log` readers) */
  async log(): Promise<string[]> {
    const entries = await git.log({ fs, dir: this.dir });
    return entries.map((e) => e.commit.message.trim());
  }
}
