/**
 * Child process for test/evidence-lock.test.ts: at `start + r * step` ms (wall clock, busy-waited
 * so two children try at the same moment) takes the writer lock `<dir>/lock-<r>` (each prepared
 * as a stale lock) and keeps what it got until the end. Prints "<r> GOT" or "<r> LOCKED".
 *   node --import tsx test/evidence-lock-child.ts <dir> <rounds> <start ms> <step ms>
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { acquireLock } from "../gitops/evidence/lock.ts";

const [dir, roundsText, startText, stepText] = process.argv.slice(2);
const out: string[] = [];
for (let r = 0; r < Number(roundsText); r++) {
  const at = Number(startText) + r * Number(stepText);
  while (Date.now() < at) {
    // busy-wait: both children leave this loop within microseconds of each other
  }
  try {
    acquireLock(fs, join(dir!, `lock-${r}`));
    out.push(`${r} GOT`);
  } catch (err) {
    out.push(
      `${r} ${(err as { code?: string }).code === "EVIDENCE_REPO_LOCKED" ? "LOCKED" : `ERR ${String(err)}`}`,
    );
  }
}
process.stdout.write(`${out.join("\n")}\nDONE\n`);
