/**
 * Raw git object access for the auditor's tools. One long-lived `git cat-file --batch`
 * process serves every read (pipelined: many requests in flight, answers in order), and
 * every object's id is recomputed from its bytes, so a tampered object file cannot pass
 * for the object a signed commit names (git itself does not re-hash on `cat-file`).
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** `git replace` refs and grafts could make git show other objects than the signed ones: disabled. */
const GIT_ENV = { ...process.env, GIT_NO_REPLACE_OBJECTS: "1", GIT_GRAFT_FILE: "/dev/null", LC_ALL: "C" };

export type GitObjectType = "commit" | "tree" | "blob" | "tag";

export interface GitObject {
  oid: string;
  type: GitObjectType;
  content: Buffer;
}

/** Failure to read the repository at all (not a finding about its content). */
export class GitReadError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "GitReadError";
    this.code = code;
    this.data = data;
  }
}

/** Raised for an object that is missing or whose bytes do not hash to its id. */
export class ObjectIntegrityError extends Error {
  readonly code = "OBJECT_CORRUPT";
  readonly data: { oid: string; reason: string };
  constructor(oid: string, reason: string) {
    super(`git object ${oid}: ${reason}; re-clone the evidence repository from its remote and verify again`);
    this.name = "ObjectIntegrityError";
    this.data = { oid, reason };
  }
}

interface Pending {
  oid: string;
  resolve: (o: GitObject) => void;
  reject: (e: Error) => void;
}

/** Pipelined reader over `git cat-file --batch`. Call `close()` when done. */
export class ObjectReader {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly queue: Pending[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** header of the object currently being received */
  private current: { type: string; size: number } | null = null;
  private failed: Error | null = null;
  private stderr = "";
  /** verify sha1(header || content) == oid for every object read */
  readonly checkHashes: boolean;

  constructor(gitDir: string, opts: { checkHashes?: boolean; gitBinary?: string } = {}) {
    this.checkHashes = opts.checkHashes ?? true;
    this.proc = spawn(opts.gitBinary ?? "git", ["--git-dir", gitDir, "cat-file", "--batch"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: GIT_ENV,
    });
    this.proc.stdout.on("data", (chunk: Buffer) => this.onData(chunk));
    this.proc.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString("utf8");
    });
    this.proc.on("error", (err) =>
      this.fail(new GitReadError("GIT_SPAWN", `cannot run git: ${err.message}`)),
    );
    this.proc.on("exit", (code) => {
      if (this.queue.length > 0)
        this.fail(
          new GitReadError("GIT_EXITED", `git cat-file exited (${code}) early: ${this.stderr.trim()}`, {
            code,
          }),
        );
    });
    this.proc.stdin.on("error", () => {
      /* reported through exit */
    });
  }

  read(oid: string): Promise<GitObject> {
    if (this.failed) return Promise.reject(this.failed);
    if (!/^[0-9a-f]{40}$/.test(oid))
      return Promise.reject(new ObjectIntegrityError(oid, "not a sha1 object id"));
    return new Promise<GitObject>((resolve, reject) => {
      this.queue.push({ oid, resolve, reject });
      this.proc.stdin.write(`${oid}\n`);
    });
  }

  async readType(oid: string, type: GitObjectType): Promise<Buffer> {
    const o = await this.read(oid);
    if (o.type !== type) throw new ObjectIntegrityError(oid, `expected a ${type}, found a ${o.type}`);
    return o.content;
  }

  close(): void {
    this.proc.stdin.end();
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const p of this.queue.splice(0)) p.reject(err);
  }

  private take(n: number): Buffer {
    // concatenate lazily: most objects arrive in one or a few chunks
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.current === null) {
        // header line: "<oid> <type> <size>\n" or "<oid> missing\n"
        const first = this.chunks[0]!;
        let nl = first.indexOf(10);
        if (nl < 0) {
          if (this.chunks.length === 1) return;
          this.take(0); // merge chunks
          nl = this.chunks[0]!.indexOf(10);
          if (nl < 0) return;
        }
        const header = this.take(nl + 1)
          .subarray(0, nl)
          .toString("latin1");
        const parts = header.split(" ");
        const pending = this.queue[0];
        if (parts[1] === "missing" || parts.length !== 3) {
          this.queue.shift();
          pending?.reject(new ObjectIntegrityError(parts[0] ?? "?", "missing from the repository"));
          if (this.buffered === 0) return;
          continue;
        }
        this.current = { type: parts[1]!, size: Number(parts[2]) };
      }
      const need = this.current.size + 1; // content + trailing LF
      if (this.buffered < need) return;
      const body = Buffer.from(this.take(need).subarray(0, this.current.size));
      const type = this.current.type as GitObjectType;
      this.current = null;
      const pending = this.queue.shift();
      if (pending) {
        if (this.checkHashes) {
          const h = createHash("sha1").update(`${type} ${body.length}\0`).update(body).digest("hex");
          if (h !== pending.oid)
            pending.reject(new ObjectIntegrityError(pending.oid, `content hashes to ${h}`));
          else pending.resolve({ oid: pending.oid, type, content: body });
        } else pending.resolve({ oid: pending.oid, type, content: body });
      }
      if (this.buffered === 0) return;
    }
  }
}

export interface ParsedCommit {
  oid: string;
  /** the raw commit object (what the signature check splits, as git does) */
  raw: Buffer;
  tree: string;
  parents: string[];
  committer: string;
  committerEmail: string;
  /** committer time, seconds since the epoch */
  committerTime: number;
  message: string;
}

/**
 * Parse the headers of a raw commit object (signature splitting and checking is the
 * signer's `verifyCommitSignature`, which removes the `gpgsig` header as git does).
 */
export function parseCommit(oid: string, raw: Buffer): ParsedCommit {
  const text = raw.toString("utf8");
  const end = text.indexOf("\n\n");
  const headerText = end < 0 ? text : text.slice(0, end);
  let tree = "";
  const parents: string[] = [];
  let committer = "";
  // as git parses a commit (commit.c parse_commit_buffer): the tree is the first line and the
  // parents are the lines right after it; a later `tree`/`parent` header is ignored by git, so
  // it must not name what is verified either (a signed extra `tree` would hide git's real tree)
  const lines = headerText.split("\n");
  let i = 0;
  if (lines[0]?.startsWith("tree ")) tree = lines[i++]!.slice(5);
  while (lines[i]?.startsWith("parent ")) parents.push(lines[i++]!.slice(7));
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("committer ")) committer = line.slice(10);
  }
  const m = /<([^>]*)>\s+(\d+)/.exec(committer);
  return {
    oid,
    raw,
    tree,
    parents,
    committer,
    committerEmail: m?.[1] ?? "",
    committerTime: m ? Number(m[2]) : 0,
    message: end < 0 ? "" : text.slice(end + 2),
  };
}

/** `Key: value` trailers at the end of a commit message. */
export function commitTrailers(message: string): Record<string, string> {
  const out: Record<string, string> = {};
  const paras = message.trimEnd().split("\n\n");
  const last = paras[paras.length - 1] ?? "";
  for (const line of last.split("\n")) {
    const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export interface TreeEntry {
  mode: string;
  name: string;
  oid: string;
  isTree: boolean;
}

/** Parse a raw tree object: repeated "<mode> <name>\0<20-byte oid>". */
export function parseTree(raw: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  let i = 0;
  while (i < raw.length) {
    const sp = raw.indexOf(32, i);
    const nul = raw.indexOf(0, sp);
    if (sp < 0 || nul < 0 || nul + 21 > raw.length) throw new Error("malformed tree object");
    const mode = raw.toString("latin1", i, sp);
    const name = raw.toString("utf8", sp + 1, nul);
    const oid = raw.toString("hex", nul + 1, nul + 21);
    out.push({ mode, name, oid, isTree: mode === "40000" });
    i = nul + 21;
  }
  return out;
}

export interface RefInfo {
  ref: string;
  oid: string;
}

async function git(gitDir: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync("git", ["--git-dir", gitDir, ...args], {
      maxBuffer: 1 << 30,
      env: GIT_ENV,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new GitReadError("GIT_FAILED", `git ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, {
      args,
    });
  }
}

/** Find the git directory of a clone (working tree or bare). */
export async function resolveGitDir(repo: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync("git", ["-C", repo, "rev-parse", "--absolute-git-dir"], {
      env: GIT_ENV,
    });
    return stdout.trim();
  } catch {
    throw new GitReadError(
      "NOT_A_REPO",
      `${repo} is not a git repository; pass the directory of a clone of the evidence repo (git clone <url>)`,
      { repo },
    );
  }
}

/**
 * The evidence branches: `refs/heads/evidence/<gatewayId>` and, in a clone,
 * `refs/remotes/<remote>/evidence/<gatewayId>`.
 */
export async function listEvidenceRefs(gitDir: string): Promise<(RefInfo & { gatewayId: string })[]> {
  const out = await git(gitDir, [
    "for-each-ref",
    "--format=%(objectname) %(refname)",
    "refs/heads/evidence/",
    "refs/remotes/",
  ]);
  const refs: (RefInfo & { gatewayId: string })[] = [];
  for (const line of out.split("\n")) {
    if (!line) continue;
    const [oid, ref] = line.split(" ") as [string, string];
    const m = /^refs\/(?:heads|remotes\/[^/]+)\/evidence\/(.+)$/.exec(ref);
    if (m) refs.push({ ref, oid, gatewayId: m[1]! });
  }
  return refs;
}

/** Resolve a revision (commit id, abbreviated id, ref) to a full commit id. */
export async function resolveCommit(gitDir: string, rev: string): Promise<string | null> {
  try {
    return (await git(gitDir, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`])).trim() || null;
  } catch {
    return null;
  }
}

/** The first-parent chain of `head`, oldest first. */
export async function firstParentChain(gitDir: string, head: string): Promise<string[]> {
  const out = await git(gitDir, ["rev-list", "--first-parent", "--reverse", head]);
  return out.split("\n").filter(Boolean);
}
