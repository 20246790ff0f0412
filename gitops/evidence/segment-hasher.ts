/**
 * Sealing a segment: the per-record CPU work of a commit — the chained hash (two sha256 per
 * record), the blob's sha1 and its deflate — over bytes the WAL already holds. The writer calls
 * it through the `SegmentHasher` seam; if a seal fails, the writer fails closed (appends are
 * refused, never acknowledged and lost) and a restart replays the WAL.
 *
 * Measured and not kept: the same work on a worker thread moved less CPU off the writer's
 * thread than the copies to and from it cost on the 2-core reference machine
 * (docs/perf/evidence.md).
 */
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

export interface SegmentHasher {
  seal(chain: Uint8Array, segment: Uint8Array): Promise<SealedSegment>;
  close(): Promise<void>;
}

/** On the writer's thread, but the deflate (the larger part) on the libuv pool. */
export const inlineHasher: SegmentHasher = {
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
