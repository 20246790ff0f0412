/** Worker thread for segment-hasher.ts: chained hash, blob id and deflated loose object of a segment. */
import { parentPort } from "node:worker_threads";
import { sealSegment } from "./segment-hasher.ts";

parentPort?.on("message", (m: { id: number; chain: Uint8Array; segment: Uint8Array }) => {
  try {
    const r = sealSegment(m.chain, m.segment);
    const b = r.deflated;
    // only a buffer that owns its whole memory moves; a pooled slice is copied
    const transfer =
      b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? [b.buffer as ArrayBuffer] : [];
    parentPort?.postMessage({ id: m.id, ...r }, transfer);
  } catch (err) {
    parentPort?.postMessage({ id: m.id, error: (err as Error).message ?? String(err) });
  }
});
