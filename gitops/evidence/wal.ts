/**
 * The write-ahead log: numbered files `<walDir>/<n %010d>.wal`, one entry per line:
 *   R<seq> <canonical JSON record>\n        a record
 *   A<JSON {"path","content","gateway"}>\n an artefact or policy file (of gateway `gateway`)
 * A line counts only when its "\n" was written; a torn tail (crash mid-write) is cut off at
 * start-up. Each process start opens a NEW file, so an old file is never appended to after a
 * crash. Files are deleted once every entry in them is committed to the repo.
 */
import { join } from "node:path";
import { type Fs, fsyncPath } from "./objects.ts";

export type WalEntry =
  /** `bytes`: the record's canonical JSON line INCLUDING its trailing "\n" (a view into the WAL buffer) */
  | { kind: "R"; seq: number; bytes: Buffer; file: number }
  | { kind: "A"; path: string; content: string; file: number; gateway?: string };

export class EvidenceError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "EvidenceError";
    this.code = code;
    this.data = data;
  }
}

const NAME = /^(\d{10})\.wal$/;

export class Wal {
  private fd = -1;
  private size = 0;
  /** bytes of the current file whose lines were acknowledged (machine: covered by a finished fsync) */
  private acked = 0;
  private readonly retired: number[] = [];
  fileNo = 0;

  private constructor(
    private readonly fs: Fs,
    readonly dir: string,
    private readonly machine: boolean,
    private readonly rotateBytes: number,
  ) {}

  /** Read every entry of every WAL file (oldest first), cut torn tails, and open a new file. */
  static async open(
    fs: Fs,
    dir: string,
    opts: { machine: boolean; rotateBytes?: number },
  ): Promise<{ wal: Wal; entries: WalEntry[] }> {
    await fs.promises.mkdir(dir, { recursive: true });
    const files = (await fs.promises.readdir(dir))
      .map((n) => NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const entries: WalEntry[] = [];
    for (const n of files) {
      const path = join(dir, fileName(n));
      const buf = await fs.promises.readFile(path);
      const end = buf.lastIndexOf(0x0a) + 1;
      if (end < buf.length) await fs.promises.truncate(path, end); // torn tail: never acknowledged
      let start = 0;
      while (start < end) {
        const nl = buf.indexOf(0x0a, start);
        entries.push(parseLine(buf.subarray(start, nl + 1), n, path));
        start = nl + 1;
      }
    }
    const wal = new Wal(fs, dir, opts.machine, opts.rotateBytes ?? 64 * 1024 * 1024);
    wal.openFile((files[files.length - 1] ?? 0) + 1);
    return { wal, entries };
  }

  /** open file `n` and make it current; when the open fails, the current file stays current */
  private openFile(n: number): void {
    const fd = this.fs.openSync(join(this.dir, fileName(n)), "wx", 0o600);
    const old = this.fd;
    this.fileNo = n;
    this.fd = fd;
    this.size = 0;
    this.acked = 0;
    if (old >= 0) {
      if (this.machine) this.retired.push(old);
      else this.fs.closeSync(old);
    }
    if (this.machine) this.syncDirSync();
  }

  private syncDirSync(): void {
    const dfd = this.fs.openSync(this.dir, "r");
    try {
      this.fs.fsyncSync(dfd);
    } finally {
      this.fs.closeSync(dfd);
    }
  }

  get needsRotation(): boolean {
    return this.size >= this.rotateBytes;
  }

  /**
   * Open the next file. In machine mode the old one is fsynced first, and kept open until
   * `closeRetired()` because a group fsync started before the rotation may still be running on it.
   */
  rotate(): void {
    if (this.machine) {
      this.fs.fdatasyncSync(this.fd);
      this.acked = this.size;
    }
    this.openFile(this.fileNo + 1);
  }

  /** close files retired by rotate(); call when no fsync is in flight on them */
  closeRetired(): void {
    for (const fd of this.retired.splice(0)) this.fs.closeSync(fd);
  }

  /**
   * write(2) all of `buf` to the current file. A write that fails part-way (a full disk writes
   * what fits, then ENOSPC) is undone: the lines it completed belong to appends that are refused,
   * and must not be replayed into the evidence at the next start.
   */
  writeSync(buf: Buffer): void {
    let off = 0;
    try {
      while (off < buf.length) off += this.fs.writeSync(this.fd, buf, off, buf.length - off);
    } catch (err) {
      try {
        this.fs.ftruncateSync(this.fd, this.size);
      } catch {
        // the writer fails with `err` anyway; at the next start only a torn tail would be cut
      }
      throw err;
    }
    this.size += buf.length;
    if (!this.machine) this.acked = this.size;
  }

  /**
   * Cut the current file back to its acknowledged lines: what a failed write or fsync left
   * after them belongs to refused appends and must never be replayed. Throws when it cannot.
   */
  truncateToAcknowledged(): void {
    if (this.fd < 0) return;
    this.fs.ftruncateSync(this.fd, this.acked);
    this.size = this.acked;
  }

  /**
   * Throws when the current file is no longer linked (its directory was deleted): a write(2)
   * or fsync to it still succeeds, but what it holds would be gone with the process.
   */
  assertLinked(): void {
    if (this.fs.fstatSync(this.fd).nlink === 0)
      throw new EvidenceError(
        "EVIDENCE_WAL_GONE",
        `the write-ahead log ${join(this.dir, fileName(this.fileNo))} was deleted while in use (the evidence directory was removed?); restore the directory from a clone and restart`,
        { path: join(this.dir, fileName(this.fileNo)) },
      );
  }

  sync(): Promise<void> {
    const file = this.fileNo;
    const upTo = this.size;
    return new Promise((resolve, reject) =>
      this.fs.fdatasync(this.fd, (err) => {
        if (err) return reject(err);
        if (this.fileNo === file) this.acked = Math.max(this.acked, upTo);
        resolve();
      }),
    );
  }

  /** delete WAL files numbered below `fileNo` (their entries are all committed) */
  async deleteBefore(fileNo: number): Promise<number> {
    let deleted = 0;
    for (const name of await this.fs.promises.readdir(this.dir)) {
      const m = NAME.exec(name);
      if (m && Number(m[1]) < fileNo && Number(m[1]) !== this.fileNo) {
        await this.fs.promises.unlink(join(this.dir, name));
        deleted++;
      }
    }
    if (deleted > 0 && this.machine) await fsyncPath(this.fs, this.dir);
    return deleted;
  }

  /** empty the current file: every entry in it is committed (a clean stop) */
  emptyCurrent(): void {
    if (this.fd < 0) return;
    this.fs.ftruncateSync(this.fd, 0);
    this.size = 0;
    this.acked = 0;
  }

  close(): void {
    this.closeRetired();
    if (this.fd >= 0) {
      if (this.machine) this.fs.fdatasyncSync(this.fd);
      this.fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

function fileName(n: number): string {
  return `${String(n).padStart(10, "0")}.wal`;
}

function parseLine(line: Buffer, file: number, path: string): WalEntry {
  if (line[0] === 0x52 /* R */) {
    const sp = line.indexOf(0x20);
    const seq = Number(line.toString("latin1", 1, sp));
    if (sp > 1 && Number.isSafeInteger(seq) && seq > 0)
      return { kind: "R", seq, bytes: line.subarray(sp + 1), file };
  } else if (line[0] === 0x41 /* A */) {
    try {
      const v = JSON.parse(line.toString("utf8", 1)) as {
        path?: unknown;
        content?: unknown;
        gateway?: unknown;
      };
      if (typeof v.path === "string" && typeof v.content === "string")
        return typeof v.gateway === "string"
          ? { kind: "A", path: v.path, content: v.content, file, gateway: v.gateway }
          : { kind: "A", path: v.path, content: v.content, file };
    } catch {
      // fall through to the error below
    }
  }
  throw new EvidenceError(
    "EVIDENCE_WAL_CORRUPT",
    `write-ahead log ${path} has a malformed line (${JSON.stringify(line.toString("utf8", 0, 60))}); expected "R<seq> <json>" or "A<json>": inspect the file, it was changed outside custos`,
    { path },
  );
}

export function formatRecordLine(seq: number, line: string): string {
  return `R${seq} ${line}\n`;
}

export function formatArtifactLine(path: string, content: string, gateway: string): string {
  return `A${JSON.stringify({ path, content, gateway })}\n`;
}
