/**
 * Two gateways starting at once on one stale writer lock (its process is gone): exactly one may
 * take it over. Real processes, racing on real files, many times.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const CHILD = join(import.meta.dirname, "evidence-lock-child.ts");
const root = mkdtempSync(join(tmpdir(), "custos-lock-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", CHILD, ...args], {
      cwd: join(import.meta.dirname, ".."),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.stderr.on("data", (d) => {
      err += d;
    });
    p.on("error", reject);
    p.on("close", () => (out.includes("DONE") ? resolve(out) : reject(new Error(err || out))));
  });
}

describe("taking over a stale writer lock", () => {
  it("two processes racing for one stale lock: exactly one gets it, every time", async () => {
    const rounds = 150;
    // a pid that is surely gone: a process that already exited
    const dead = spawnSync("true").pid!;
    for (let r = 0; r < rounds; r++)
      writeFileSync(join(root, `lock-${r}`), `${dead} ${hostname()} 00000000-dead-dead-dead-000000000000\n`);
    // both children load first (about a second), then try each lock at the same wall-clock moment
    const args = [root, String(rounds), String(Date.now() + 3000), "4"];
    const [a, b] = await Promise.all([run(args), run(args)]);
    const got = (out: string) =>
      new Set(
        out
          .split("\n")
          .filter((l) => l.endsWith(" GOT"))
          .map((l) => Number(l.split(" ")[0])),
      );
    for (const out of [a, b]) expect(out).not.toContain("ERR");
    const ga = got(a);
    const gb = got(b);
    const both = [...ga].filter((r) => gb.has(r));
    const neither = [...Array(rounds).keys()].filter((r) => !ga.has(r) && !gb.has(r));
    expect({ both, neither }).toEqual({ both: [], neither: [] });
  }, 20_000);
});
