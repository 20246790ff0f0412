/** The evidence writer: WAL -> signed, append-only git commits -> checkpoints -> fast-forward push. */
export {
  type Durability,
  type EvidenceRepoOptions,
  type EvidenceWriter,
  openEvidenceRepo,
  type WriterStats,
} from "./writer.ts";
export { EvidenceError } from "./wal.ts";
export type { FetchLike, RemoteSpec } from "./push.ts";
