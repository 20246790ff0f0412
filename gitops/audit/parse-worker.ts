/** Worker thread for parse-pool.ts: parses jsonl chunks (LineInfo per line, leaf hashes). */
import { parentPort } from "node:worker_threads";
import { parseLines } from "./records.ts";

parentPort?.on("message", (m: { id: number; bytes: Uint8Array }) => {
  const chunk = parseLines(m.bytes);
  parentPort?.postMessage({ id: m.id, chunk }, [chunk.leaves.buffer as ArrayBuffer]);
});
