/**
 * The write-ahead log: numbered files `<walDir>/<n %010d>.wal`, one entry per line:
 *   R<seq> <canonical JSON record>\n        a record
 *   A<JSON {"path","content"}>\n           an artefact or policy file
 * A line counts only when its "\n" was written; a torn tail (crash mid-write) is cut off at
 * start-up. Each process start opens a NEW file, so an old file is never appended to after a
 * crash. Files are deleted once every entry in them is committed to the repo.
 */
import { join } from "node:path";
import { type Fs, fsyncPath } from "./objects.ts";

export type WalEntry =
  | { kind: "R"; seq: number; line: string; file: number }
  | { kind: "A"; path: string; content: string; file: number };

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
      const text = buf.toString("utf8", 0, end);
      let start = 0;
      while (start < text.length) {
        const nl = text.indexOf("\n", start);
        const line = text.slice(start, nl);
        start = nl + 1;
        entries.push(parseLine(line, n, path));
      }
    }
    const wal = new Wal(fs, dir, opts.machine, opts.rotateBytes ?? 64 * 1024 * 1024);
    wal.openFile((files[files.length - 1] ?? 0) + 1);
    return { wal, entries };
  }

  private openFile(n: number): void {
    this.fileNo = n;
    this.fd = this.fs.openSync(join(this.dir, fileName(n)), "wx", 0o600);
    this.size = 0;
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

  /** Close the current file (fsynced first in machine mode) and open the next one. */
  rotate(): void {
    if (this.machine) this.fs.fdatasyncSync(this.fd);
    this.fs.closeSync(this.fd);
    this.openFile(this.fileNo + 1);
  }

  /** write(2) all of `text` to the current file */
  writeSync(text: string): void {
    const buf = Buffer.from(text, "utf8");
    let off = 0;
    while (off < buf.length) off += this.fs.writeSync(this.fd, buf, off, buf.length - off);
    this.size += buf.length;
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => this.fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
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

  close(): void {
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

function parseLine(line: string, file: number, path: string): WalEntry {
  if (line.startsWith("R")) {
    const sp = line.indexOf(" ");
    const seq = Number(line.slice(1, sp));
    if (sp > 1 && Number.isSafeInteger(seq) && seq > 0) return { kind: "R", seq, line: line.slice(sp + 1), file };
  } else if (line.startsWith("A")) {
    try {
      const v = JSON.parse(line.slice(1)) as { path?: unknown; content?: unknown };
      if (typeof v.path === "string" && typeof v.content === "string") return { kind: "A", path: v.path, content: v.content, file };
    } catch {
      // fall through to the error below
    }
  }
  throw new EvidenceError(
    "EVIDENCE_WAL_CORRUPT",
    `write-ahead log ${path} has a malformed line (${JSON.stringify(line.slice(0, 60))}); expected "R<seq> <json>" or "A<json>": inspect the file, it was changed outside custos`,
    { path },
  );
}

export function formatRecordLine(seq: number, line: string): string {
  return `R${seq} ${line}\n`;
}

export function formatArtifactLine(path: string, content: string): string {
  return `A${JSON.stringify({ path, content })}\n`;
}
