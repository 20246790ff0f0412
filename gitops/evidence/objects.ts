/**
 * A minimal git object store for the writer: loose objects written directly (zlib level 1,
 * git's core.looseCompression default), atomically (temp file + rename, so a crash never
 * leaves a truncated object under its final name), with no index and no working tree.
 * Reads fall back to isomorphic-git for packed objects (a repo that was `git gc`ed).
 */
import { createHash } from "node:crypto";
import type * as NodeFs from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { constants, deflate, deflateSync, inflateSync } from "node:zlib";
import git from "isomorphic-git";

const deflateAsync = promisify(deflate);
const ASYNC_DEFLATE_BYTES = 64 * 1024;

export type ObjectType = "blob" | "tree" | "commit" | "tag";
export type Fs = typeof NodeFs;

export interface TreeEntry {
  mode: string; // "100644" | "40000" | ...
  name: string;
  oid: string;
}

export function objectBytes(type: ObjectType, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${type} ${content.length}\0`), content]);
}

export function hashObject(type: ObjectType, content: Uint8Array): string {
  return createHash("sha1").update(`${type} ${content.length}\0`).update(content).digest("hex");
}

/** git's tree order: byte order of names, with directories compared as if named "name/" */
export function compareTreeEntries(a: TreeEntry, b: TreeEntry): number {
  const an = a.mode === "40000" ? `${a.name}/` : a.name;
  const bn = b.mode === "40000" ? `${b.name}/` : b.name;
  return Buffer.compare(Buffer.from(an), Buffer.from(bn));
}

export function serializeTree(entries: TreeEntry[]): Buffer {
  const sorted = [...entries].sort(compareTreeEntries);
  const parts: Buffer[] = [];
  for (const e of sorted) {
    parts.push(Buffer.from(`${e.mode} ${e.name}\0`), Buffer.from(e.oid, "hex"));
  }
  return Buffer.concat(parts);
}

export function parseTree(content: Uint8Array): TreeEntry[] {
  const buf = Buffer.from(content.buffer, content.byteOffset, content.length);
  const out: TreeEntry[] = [];
  let i = 0;
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i);
    const nul = buf.indexOf(0, sp);
    const mode = buf.toString("latin1", i, sp);
    const name = buf.toString("utf8", sp + 1, nul);
    const oid = buf.toString("hex", nul + 1, nul + 21);
    out.push({ mode: mode === "040000" ? "40000" : mode, name, oid });
    i = nul + 21;
  }
  return out;
}

export class ObjectStore {
  private readonly knownDirs = new Set<string>();
  /** object files written since the last `syncWritten()` (for durability "machine") */
  private unsynced: string[] = [];
  private tmpCounter = 0;
  /** recently written objects, so a push reads nothing back from disk (insertion order = age) */
  private cache: Map<string, { type: ObjectType; content: Buffer }> | null = null;
  private cacheBytes = 0;
  private cacheLimit = 0;

  constructor(
    readonly fs: Fs,
    readonly gitdir: string,
  ) {}

  enableCache(limitBytes: number): void {
    this.cache = new Map();
    this.cacheLimit = limitBytes;
  }

  private remember(oid: string, type: ObjectType, content: Uint8Array): void {
    if (!this.cache || this.cache.has(oid)) return;
    const buf = Buffer.from(content.buffer, content.byteOffset, content.length);
    this.cache.set(oid, { type, content: buf });
    this.cacheBytes += buf.length;
    for (const [k, v] of this.cache) {
      if (this.cacheBytes <= this.cacheLimit) break;
      this.cache.delete(k);
      this.cacheBytes -= v.content.length;
    }
  }

  objectPath(oid: string): string {
    return join(this.gitdir, "objects", oid.slice(0, 2), oid.slice(2));
  }

  /**
   * Write a loose object unless it exists; returns its oid. Large objects (segment blobs) are
   * deflated on the libuv pool; the rest runs synchronously: a handful of small page-cache writes
   * per commit cost less than the async round trips would, and keep commit latency flat when
   * the machine is busy.
   */
  async write(type: ObjectType, content: Uint8Array): Promise<string> {
    const oid = hashObject(type, content);
    this.remember(oid, type, content);
    const path = this.prepare(oid);
    if (path === null) return oid;
    const raw = objectBytes(type, content);
    const deflated =
      raw.length >= ASYNC_DEFLATE_BYTES
        ? await deflateAsync(raw, { level: constants.Z_BEST_SPEED })
        : deflateSync(raw, { level: constants.Z_BEST_SPEED });
    this.place(path, deflated);
    return oid;
  }

  /** Write a loose object whose id and deflated bytes were computed elsewhere (segment-hasher.ts). */
  writeDeflated(type: ObjectType, oid: string, content: Uint8Array, deflated: Uint8Array): string {
    this.remember(oid, type, content);
    const path = this.prepare(oid);
    if (path !== null) this.place(path, deflated);
    return oid;
  }

  /** The object's path with its fan-out directory made, or null when the object exists already. */
  private prepare(oid: string): string | null {
    const dir = join(this.gitdir, "objects", oid.slice(0, 2));
    if (!this.knownDirs.has(dir)) {
      this.fs.mkdirSync(dir, { recursive: true });
      this.knownDirs.add(dir);
    }
    const path = this.objectPath(oid);
    return this.fs.existsSync(path) ? null : path;
  }

  /** write + rename, so a reader never sees a partial object; fsync'd later by syncWritten */
  private place(path: string, deflated: Uint8Array): void {
    const tmp = join(path, "..", `tmp_obj_${process.pid}_${this.tmpCounter++}`);
    this.fs.writeFileSync(tmp, deflated, { mode: 0o444 });
    this.fs.renameSync(tmp, path);
    this.unsynced.push(path);
  }

  /**
   * fsync every object written since the last call, then their directories. Many at a time:
   * ext4 folds concurrent fsyncs into one journal commit, where one after the other each waits
   * for its own (a WAL rotation's worth, hundreds of files, stalled commits for ~1 s).
   */
  async syncWritten(): Promise<void> {
    const files = this.unsynced;
    this.unsynced = [];
    const dirs = new Set<string>();
    for (const f of files) dirs.add(f.slice(0, f.lastIndexOf("/")));
    await fsyncAll(this.fs, files);
    await fsyncAll(this.fs, [...dirs]);
  }

  async read(oid: string): Promise<{ type: ObjectType; content: Buffer }> {
    const hit = this.cache?.get(oid);
    if (hit) return hit;
    try {
      const raw = inflateSync(await this.fs.promises.readFile(this.objectPath(oid)));
      const sp = raw.indexOf(0x20);
      const nul = raw.indexOf(0, sp);
      return { type: raw.toString("latin1", 0, sp) as ObjectType, content: raw.subarray(nul + 1) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const o = await git.readObject({ fs: this.fs, gitdir: this.gitdir, oid, format: "content" });
    return { type: o.type as ObjectType, content: Buffer.from(o.object as Uint8Array) };
  }
}

const FSYNC_CONCURRENCY = 16;

async function fsyncAll(fs: Fs, paths: string[]): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < paths.length) await fsyncPath(fs, paths[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_CONCURRENCY, paths.length) }, lane));
}

export async function fsyncPath(fs: Fs, path: string): Promise<void> {
  const fh = await fs.promises.open(path, "r");
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
