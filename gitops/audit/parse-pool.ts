/**
 * Record parsing off the main thread. JSON.parse, shape checks and line hashing are most of
 * verify's CPU time; they are independent per line, so a few worker threads do them while the main thread
 * reads objects, hashes the chain and checks order. Any worker failure falls back to parsing
 * inline: the result is the same, only slower.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { type ParsedChunk, parseLines } from "./records.ts";

interface Job {
  resolve: (chunk: ParsedChunk) => void;
  bytes: Uint8Array;
}

export interface ParsePool {
  /** worker threads in use (0: parsing inline) */
  readonly threads: number;
  parse(bytes: Uint8Array): Promise<ParsedChunk>;
  close(): Promise<void>;
}

export const inlineParser: ParsePool = {
  threads: 0,
  parse: (bytes) => Promise.resolve(parseLines(bytes)),
  close: () => Promise.resolve(),
};

/** The default number of workers: the cores left after the main thread and git. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

function tsxAvailable(): boolean {
  try {
    import.meta.resolve("tsx/esm/api");
    return true;
  } catch {
    return false;
  }
}

export function createParsePool(size: number): ParsePool {
  if (size < 1 || !tsxAvailable()) return inlineParser;
  // through a bootstrap that registers tsx: `--import tsx` in execArgv did not reach the
  // worker's loader on Node 20, so every worker failed at start and parsing fell back inline
  const boot = new URL("./ts-worker.mjs", import.meta.url);
  const entry = new URL("./parse-worker.ts", import.meta.url).href;
  const jobs = new Map<number, Job>();
  const owner = new Map<number, Worker>();
  let nextId = 0;
  let broken = false;
  const workers: Worker[] = [];
  const failAll = (w: Worker) => {
    broken = true;
    for (const [id, job] of jobs) {
      if (owner.get(id) !== w) continue;
      jobs.delete(id);
      owner.delete(id);
      job.resolve(parseLines(job.bytes));
    }
  };
  for (let i = 0; i < size; i++) {
    let w: Worker;
    try {
      w = new Worker(boot, { workerData: { entry } });
    } catch {
      broken = true;
      break;
    }
    w.on("message", (m: { id: number; chunk: ParsedChunk }) => {
      const job = jobs.get(m.id);
      if (!job) return;
      jobs.delete(m.id);
      owner.delete(m.id);
      job.resolve(m.chunk);
    });
    w.on("error", () => failAll(w));
    w.on("exit", () => failAll(w));
    workers.push(w);
  }
  let rr = 0;
  return {
    get threads() {
      return broken ? 0 : workers.length;
    },
    parse(bytes) {
      if (broken || workers.length === 0) return Promise.resolve(parseLines(bytes));
      const id = nextId++;
      const w = workers[rr++ % workers.length]!;
      return new Promise<ParsedChunk>((resolve) => {
        jobs.set(id, { resolve, bytes });
        owner.set(id, w);
        w.postMessage({ id, bytes });
      });
    },
    async close() {
      broken = true;
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
