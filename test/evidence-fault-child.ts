/**
 * Child process for test/evidence-faults.test.ts, run under a file-size limit (`ulimit -f`):
 * appends small records one by one, then one write(2) carrying a small and a big record (the
 * big one crosses the limit: a short write, then EFBIG), then one more small record. Prints
 * "<auditID> <seq>" for each acknowledgement and "<auditID> ERR <code>" for each refusal.
 * Kind "git-recover" then goes on appending until the writer takes records again (it recovers
 * by itself in a new WAL file, which the file-size limit lets grow again), appends three more,
 * and prints "READY <ok>" as the writer's health changes and its log lines as "LOG <json>".
 *   node --import tsx test/evidence-fault-child.ts <kind: git|git-recover|jsonl> <dir-or-file> <small count>
 */
import { JsonlEvidenceSink } from "../gateway/evidence/jsonl-sink.ts";
import type { EvidenceRecord, EvidenceSink } from "../gateway/ports.ts";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import { sampleRecord } from "../gitops/evidence/testkit.ts";
import { nodeSigner } from "../gitops/signer/index.ts";

const [kind, where, countText] = process.argv.slice(2);
const writer =
  kind === "git" || kind === "git-recover"
    ? await openEvidenceRepo({
        dir: where!,
        gatewayId: "gw-fault",
        signer: nodeSigner(new Uint8Array(32).fill(7)),
        batchMaxDelayMs: 5,
        log: kind === "git" ? () => undefined : (e) => process.stdout.write(`LOG ${JSON.stringify(e)}\n`),
      })
    : null;
const sink: EvidenceSink =
  writer !== null ? writer : await JsonlEvidenceSink.open({ file: where!, gatewayId: "gw-fault" });

const rec = (id: string, big = false): EvidenceRecord => {
  const r = sampleRecord(1);
  r.auditID = id;
  if (big) r.requestURI = `/api/v1/namespaces/${"x".repeat(16 * 1024)}`;
  return r;
};
const report = (id: string, p: Promise<{ seq: number }>) =>
  p.then(
    ({ seq }) => process.stdout.write(`${id} ${seq}\n`),
    (e: { code?: string }) => process.stdout.write(`${id} ERR ${e.code ?? "error"}\n`),
  );

for (let i = 0; i < Number(countText); i++) await report(`small-${i}`, sink.append(rec(`small-${i}`)));
// one group write: a record that fits, then one that crosses the file-size limit
await Promise.all([
  report("pair-small", sink.append(rec("pair-small"))),
  report("pair-big", sink.append(rec("pair-big", true))),
]);
if (kind === "jsonl") process.stdout.write(`HEALTH ${JSON.stringify(sink.health?.())}\n`);
await report("after", sink.append(rec("after")));
if (kind === "jsonl") process.stdout.write(`HEALTH ${JSON.stringify(sink.health?.())}\n`);
if (kind === "git-recover") {
  process.stdout.write(`READY ${writer!.stats().failed === null}\n`);
  let ok = false;
  for (let i = 0; i < 200 && !ok; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const seq = await sink.append(rec(`retry-${i}`)).then(
      (r) => r.seq,
      () => null,
    );
    process.stdout.write(`retry-${i} ${seq ?? "ERR"}\n`);
    ok = seq !== null;
  }
  process.stdout.write(`READY ${writer!.stats().failed === null}\n`);
  for (let i = 0; i < 3; i++) await report(`post-${i}`, sink.append(rec(`post-${i}`)));
  await writer!.flush();
}
await sink.close().catch(() => undefined);
process.stdout.write("DONE\n");
