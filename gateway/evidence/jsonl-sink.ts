/**
 * The stand-in EvidenceSink: one JSON line per record, appended to a file and fsync'ed
 * before `append` resolves (group commit: records arriving while a write is in flight are
 * written and synced together). Sequence numbers are per gateway: 1, 2, 3, ... continuing
 * across restarts from the last line in the file.
 */
import { writeSync } from "node:fs";
import { type FileHandle, open, readFile } from "node:fs/promises";
import path from "node:path";
import type { EvidenceRecord, EvidenceSink } from "../ports.ts";

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
  line: string;
  resolve: () => void;
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
  #seq: number;
  #queue: Pending[] = [];
  #writing = false;
  #closed = false;

  private constructor(o: JsonlSinkOptions, fh: FileHandle, seq: number) {
    this.#o = o;
    this.#fh = fh;
    this.#seq = seq;
  }

  static async open(o: JsonlSinkOptions): Promise<JsonlEvidenceSink> {
    let seq = 0;
    try {
      const text = await readFile(o.file, "utf8");
      const last = text.trimEnd().split("\n").pop();
      if (last) seq = Number((JSON.parse(last) as EvidenceRecord).custos.seq ?? 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const fh = await open(o.file, "a");
    return new JsonlEvidenceSink(o, fh, seq);
  }

  append(record: EvidenceRecord): Promise<{ seq: number }> {
    if (this.#closed) return Promise.reject(new EvidenceSinkError("evidence sink is closed"));
    const seq = ++this.#seq;
    const stamped: EvidenceRecord = {
      ...record,
      custos: { ...record.custos, gatewayId: this.#o.gatewayId, seq },
    };
    const line = `${JSON.stringify(stamped)}\n`;
    return new Promise<{ seq: number }>((resolve, reject) => {
      this.#queue.push({ line, resolve: () => resolve({ seq }), reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        try {
          // write(2) synchronously (one small append; no thread-pool round trip), fsync asynchronously
          writeAll(this.#fh.fd, batch.length === 1 ? batch[0]!.line : batch.map((p) => p.line).join(""));
          if (this.#o.fsync !== false) await this.#fh.datasync();
          for (const p of batch) p.resolve();
        } catch (e) {
          const err = new EvidenceSinkError(
            `evidence write failed: ${(e as NodeJS.ErrnoException).code ?? "error"}`,
          );
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.#writing = false;
    }
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
    await this.#fh.close();
  }
}
