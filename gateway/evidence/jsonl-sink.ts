/**
 * The stand-in EvidenceSink: one JSON line per record, appended to a file and fsync'ed
 * before `append` resolves (group commit: records arriving while a write is in flight are
 * written and synced together). Sequence numbers are per gateway: 1, 2, 3, ... continuing
 * across restarts from this gateway's last line in the file. One writer per file: `<file>.lock`
 * refuses a second one (two would hand out the same sequence numbers). A write that fails (a full disk writes what
 * fits, then ENOSPC) is cut off again and uses no sequence number; a torn last line (a crash
 * or power loss mid-write: never acknowledged) is cut off at open.
 */
import { fstatSync, writeSync } from "node:fs";
import { type FileHandle, open, readFile } from "node:fs/promises";
import path from "node:path";
import type { EvidenceRecord, EvidenceSink } from "../ports.ts";
import { lockEvidenceFile } from "./file-lock.ts";

export class EvidenceSinkError extends Error {
  readonly code = "EVIDENCE_WRITE_FAILED";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.data = data;
  }
}

/** write(2) a string completely (a short write continues from where it stopped) */
function writeAll(fd: number, text: string): void {
  const n = writeSync(fd, text, null, "utf8");
  if (n >= Buffer.byteLength(text, "utf8")) return;
  const data = Buffer.from(text, "utf8");
  let off = n;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

interface Pending {
  record: EvidenceRecord;
  resolve: (v: { seq: number }) => void;
  reject: (e: Error) => void;
}

export interface JsonlSinkOptions {
  /** the records file (created if missing) */
  file: string;
  gatewayId: string;
  /** false skips fsync (benchmarks only) */
  fsync?: boolean;
}

export class JsonlEvidenceSink implements EvidenceSink {
  readonly #o: JsonlSinkOptions;
  readonly #fh: FileHandle;
  readonly #lock: { release(): void };
  /** the last sequence number written */
  #seq: number;
  /** bytes of complete, written lines: what a failed write is cut back to */
  #size: number;
  #queue: Pending[] = [];
  #writing = false;
  #closed = false;
  /** a failed write could not be cut off again */
  #broken = false;
  /** why the last write failed (its error code), until a write succeeds again */
  #failure: string | null = null;

  private constructor(
    o: JsonlSinkOptions,
    fh: FileHandle,
    lock: { release(): void },
    seq: number,
    size: number,
  ) {
    this.#o = o;
    this.#fh = fh;
    this.#lock = lock;
    this.#seq = seq;
    this.#size = size;
  }

  static async open(o: JsonlSinkOptions): Promise<JsonlEvidenceSink> {
    const lock = lockEvidenceFile(o.file);
    try {
      return await JsonlEvidenceSink.#open(o, lock);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  static async #open(o: JsonlSinkOptions, lock: { release(): void }): Promise<JsonlEvidenceSink> {
    let seq = 0;
    let size = 0;
    let torn = false;
    try {
      const buf = await readFile(o.file);
      size = buf.lastIndexOf(0x0a) + 1;
      torn = size < buf.length;
      const text = buf.toString("utf8", 0, size);
      // this gateway's last record: another gateway may have written to the file after it
      const lines = text.trimEnd().split("\n");
      for (let i = lines.length - 1; i >= 0; i--) {
        if (!lines[i]) continue;
        const c = (JSON.parse(lines[i]!) as EvidenceRecord).custos;
        if (c.gatewayId !== o.gatewayId) continue;
        seq = Number(c.seq ?? 0);
        break;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const fh = await open(o.file, "a");
    try {
      // a torn last line was never acknowledged: cut it, or the next record would be glued to it
      if (torn) {
        await fh.truncate(size);
        await fh.datasync();
      }
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new JsonlEvidenceSink(o, fh, lock, seq, size);
  }

  append(record: EvidenceRecord): Promise<{ seq: number }> {
    if (this.#closed) return Promise.reject(new EvidenceSinkError("evidence sink is closed"));
    if (this.#broken)
      return Promise.reject(
        new EvidenceSinkError(
          "evidence file could not be repaired after a failed write; restart the gateway",
        ),
      );
    return new Promise<{ seq: number }>((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const queued = this.#queue;
        this.#queue = [];
        if (this.#broken) {
          for (const p of queued) p.reject(new EvidenceSinkError("evidence file could not be repaired"));
          continue;
        }
        // sequence numbers are given as records are written, so a refused write uses none
        const batch: { p: Pending; seq: number }[] = [];
        let text = "";
        for (const p of queued) {
          const seq = this.#seq + batch.length + 1;
          const stamped: EvidenceRecord = {
            ...p.record,
            custos: { ...p.record.custos, gatewayId: this.#o.gatewayId, seq },
          };
          let line: string;
          try {
            line = `${JSON.stringify(stamped)}\n`;
          } catch (e) {
            p.reject(new EvidenceSinkError(`evidence record cannot be serialised: ${(e as Error).message}`));
            continue;
          }
          text += line;
          batch.push({ p, seq });
        }
        if (batch.length === 0) continue;
        try {
          // write(2) synchronously (one small append; no thread-pool round trip), fsync asynchronously
          writeAll(this.#fh.fd, text);
          if (this.#o.fsync !== false) await this.#fh.datasync();
          // a deleted file still takes writes (and fsyncs): what it holds is gone with the process
          if (fstatSync(this.#fh.fd).nlink === 0)
            throw Object.assign(new Error("evidence file deleted"), { code: "EVIDENCE_FILE_DELETED" });
        } catch (e) {
          this.#failure = (e as NodeJS.ErrnoException).code ?? "error";
          const err = new EvidenceSinkError(`evidence write failed: ${this.#failure}`);
          // what this write completed belongs to refused calls: cut it off again
          // (if that fails too, the file's end is unknown: nothing more is appended to it)
          await this.#fh.truncate(this.#size).catch(() => {
            this.#broken = true;
          });
          for (const { p } of batch) p.reject(err);
          continue;
        }
        this.#seq += batch.length;
        this.#size += Buffer.byteLength(text, "utf8");
        this.#failure = null;
        for (const { p, seq } of batch) p.resolve({ seq });
      }
    } finally {
      this.#writing = false;
    }
  }

  /**
   * For readiness probes (/readyz): false while the sink refuses records — closed, its file
   * beyond repair, or its last write failed (a full disk; the next record tries again, and a
   * write that succeeds makes it ready again).
   */
  health(): { ok: boolean; reason: string } {
    if (this.#closed) return { ok: false, reason: "the evidence sink is closed" };
    if (this.#broken)
      return {
        ok: false,
        reason: "the evidence file could not be repaired after a failed write; restart the gateway",
      };
    if (this.#failure !== null)
      return {
        ok: false,
        reason: `the last evidence write failed (${this.#failure}); the next record tries again`,
      };
    return { ok: true, reason: "ok" };
  }

  async appendArtifact(artifact: {
    kind: "session";
    name: string;
    content: string;
    auditID: string;
  }): Promise<void> {
    const safe = artifact.name.replace(/[^A-Za-z0-9._-]/g, "_");
    const fh = await open(path.join(path.dirname(this.#o.file), `${artifact.auditID}-${safe}`), "wx");
    try {
      await fh.writeFile(artifact.content, "utf8");
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#writing || this.#queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    try {
      await this.#fh.close();
    } finally {
      this.#lock.release();
    }
  }
}
