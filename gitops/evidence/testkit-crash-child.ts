/**
 * Child process for the crash test (test/evidence-crash.test.ts): appends records as fast as
 * it can with many in flight and prints "<auditID> <seq>" for each acknowledgement, until it is
 * killed (-9) or, with mode "finish", after `count` records it closes cleanly and prints DONE.
 *   node --import tsx testkit-crash-child.ts <dir> <gatewayId> <round> <durability> <mode> [count]
 */
import { openEvidenceRepo } from "./index.ts";
import { sampleRecord } from "./testkit.ts";
import { nodeSigner } from "../signer/index.ts";

const [dir, gatewayId, round, durability, mode, countText] = process.argv.slice(2);
const signer = nodeSigner(new Uint8Array(32).fill(42));
const w = await openEvidenceRepo({
  dir: dir!,
  gatewayId: gatewayId!,
  signer,
  durability: durability === "machine" ? "machine" : "process",
  batchMaxRecords: 200,
  batchMaxDelayMs: 20,
  checkpointEvery: 1000,
  log: () => undefined,
});
process.stdout.write(`READY ${JSON.stringify(w.stats())}\n`);
const limit = mode === "finish" ? Number(countText ?? "100") : Number.POSITIVE_INFINITY;
let i = 0;
let inFlight = 0;
let done = 0;
await new Promise<void>((resolve) => {
  const pump = (): void => {
    while (inFlight < 64 && i < limit) {
      const rec = sampleRecord(i);
      rec.auditID = `r${round}-${i}`;
      i++;
      inFlight++;
      w.append(rec).then(({ seq }) => {
        process.stdout.write(`${rec.auditID} ${seq}\n`);
        inFlight--;
        done++;
        if (done === limit) resolve();
        else setImmediate(pump);
      });
    }
  };
  pump();
});
await w.close();
process.stdout.write("DONE\n");
