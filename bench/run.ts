/**
 * Runs every benchmark in bench/ one after another (never in parallel: they would measure
 * each other) and writes each one's JSON summary to bench/out/<name>.json.
 * Usage: npm run bench [-- <name> ...]   e.g. npm run bench -- masking evidence
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const all = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.endsWith(".test.ts"))
  .map((f) => basename(f, ".ts"))
  .sort();
const names = wanted.length > 0 ? wanted : all;
const unknown = names.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown benchmark(s) ${unknown.join(", ")}; available: ${all.join(", ")}\n`);
  process.exit(2);
}
const out = join(here, "out");
mkdirSync(out, { recursive: true });
const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
};
process.stdout.write(`machine: ${JSON.stringify(machine)}\n`);
let failed = 0;
for (const name of names) {
  process.stdout.write(`\n== ${name} ==\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", join(here, `${name}.ts`)], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(r.stdout ?? "");
  if (r.status !== 0) failed++;
  writeFileSync(
    join(out, `${name}.json`),
    JSON.stringify(
      { machine, name, exit: r.status, seconds: (Date.now() - started) / 1000, stdout: r.stdout },
      null,
      2,
    ),
  );
}
process.exit(failed > 0 ? 1 : 0);
