/**
 * The per-record CPU work of a commit — the chained hash (two sha256 per record), the blob's
 * sha1 and its deflate — on a worker thread, so the main thread keeps acknowledging appends
 * while a batch is sealed. Everything else about a commit (trees, signing, files, the ref)
 * stays on the writer's thread: this is pure computation over bytes the WAL already holds.
 *
 * Fail closed: if the worker dies or errs, the seal in flight and every later one reject, the
 * writer fails (appends are refused, never acknowledged and lost) and a restart replays the WAL.
 * Without a worker (no tsx loader, or `threads: 0`) the same work runs inline.
 */
import { Worker } from "node:worker_threads";
import { promisify } from "node:util";
import { constants, deflate, deflateSync } from "node:zlib";
import { chainSegment } from "../signer/index.ts";
import { hashObject, objectBytes } from "./objects.ts";

const deflateAsync = promisify(deflate);

export interface SealedSegment {
  /** the chained hash after the segment's last line */
  chain: Uint8Array;
  /** the segment's git blob id */
  oid: string;
  /** the loose object bytes (zlib level 1 of "blob <n>\0" + segment) */
  deflated: Uint8Array;
}

export function sealSegment(chain: Uint8Array, segment: Uint8Array): SealedSegment {
  return {
    chain: chainSegment(chain, segment),
    oid: hashObject("blob", segment),
    deflated: deflateSync(objectBytes("blob", segment), { level: constants.Z_BEST_SPEED }),
  };
}

export interface SegmentHasher {
  /** true when a worker thread does the work */
  readonly threaded: boolean;
  seal(chain: Uint8Array, segment: Uint8Array): Promise<SealedSegment>;
  close(): Promise<void>;
  /** the worker, for tests that kill it */
  readonly worker: Worker | null;
}

/** On the writer's thread, but the deflate (the larger part) on the libuv pool. */
export const inlineHasher: SegmentHasher = {
  threaded: false,
  worker: null,
  seal: async (chain, segment) => {
    const next = chainSegment(chain, segment);
    const oid = hashObject("blob", segment);
    const raw = objectBytes("blob", segment);
    const deflated =
      raw.length >= 64 * 1024
        ? await deflateAsync(raw, { level: constants.Z_BEST_SPEED })
        : deflateSync(raw, { level: constants.Z_BEST_SPEED });
    return { chain: next, oid, deflated };
  },
  close: () => Promise.resolve(),
};

function tsxAvailable(): boolean {
  try {
    import.meta.resolve("tsx/esm/api");
    return true;
  } catch {
    return false;
  }
}

export class SegmentHasherError extends Error {
  readonly code = "EVIDENCE_SEGMENT_WORKER";
}

/** A hasher on one worker thread; the inline hasher when no worker can be started. */
export function createSegmentHasher(): SegmentHasher {
  if (!tsxAvailable()) return inlineHasher;
  let worker: Worker;
  try {
    worker = new Worker(new URL("./ts-worker.mjs", import.meta.url), {
      workerData: { entry: new URL("./segment-worker.ts", import.meta.url).href },
    });
  } catch {
    return inlineHasher;
  }
  // the worker keeps the process alive only while a seal is in flight
  worker.unref();
  const jobs = new Map<number, { resolve: (s: SealedSegment) => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  let broken: Error | null = null;
  let closing = false;
  const breakAll = (err: Error): void => {
    broken ??= err;
    for (const j of jobs.values()) j.reject(broken);
    jobs.clear();
  };
  worker.on("message", (m: { id: number; error?: string } & SealedSegment) => {
    const job = jobs.get(m.id);
    if (!job) return;
    jobs.delete(m.id);
    if (jobs.size === 0) worker.unref();
    if (m.error !== undefined) {
      job.reject(new SegmentHasherError(`the segment worker failed: ${m.error}`));
      return;
    }
    job.resolve({
      chain: new Uint8Array(m.chain),
      oid: m.oid,
      deflated: Buffer.from(m.deflated.buffer, m.deflated.byteOffset, m.deflated.byteLength),
    });
  });
  worker.on("error", (err) => breakAll(new SegmentHasherError(`the segment worker failed: ${err.message}`)));
  worker.on("exit", (code) => {
    if (!closing || jobs.size > 0)
      breakAll(new SegmentHasherError(`the segment worker exited (code ${code})`));
  });
  return {
    threaded: true,
    worker,
    seal(chain, segment) {
      if (broken) return Promise.reject(broken);
      const id = nextId++;
      return new Promise<SealedSegment>((resolve, reject) => {
        jobs.set(id, { resolve, reject });
        worker.ref();
        // a copy goes to the worker: the segment is a view into WAL buffers the writer still holds
        worker.postMessage({ id, chain, segment });
      });
    },
    async close() {
      closing = true;
      await worker.terminate();
    },
  };
}
