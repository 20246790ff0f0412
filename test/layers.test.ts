/**
 * The architecture as a test (DESIGN.md "Layers and the direction of dependencies"):
 * sdk -> config <- gateway; gateway reaches gitops only through gateway/ports.ts; the
 * simulator is never on the gateway's request path. Composition roots (bin/, the gateway's
 * cli/ and config/ folders, the sdk's cli/) may wire layers together.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, dir))) {
    const rel = path.join(dir, name);
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...sources(rel));
    else if (rel.endsWith(".ts") && !rel.endsWith(".test.ts")) out.push(rel);
  }
  return out;
}

/** Repo-relative targets of every relative import, export-from and dynamic import in a file. */
function importsOf(file: string, text = readFileSync(path.join(root, file), "utf8")): string[] {
  const re =
    /(?:import|export)\s[^"'`]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g;
  return [...text.matchAll(re)]
    .map((m) => m[1] ?? m[2] ?? m[3] ?? "")
    .filter((s) => s.startsWith("."))
    .map((s) =>
      path
        .relative(root, path.resolve(root, path.dirname(file), s))
        .split(path.sep)
        .join("/"),
    );
}

function offenders(dir: string, exempt: RegExp | null, forbidden: (target: string) => boolean): string[] {
  return sources(dir)
    .filter((f) => !exempt?.test(f.split(path.sep).join("/")))
    .flatMap((f) =>
      importsOf(f)
        .filter(forbidden)
        .map((t) => `${f} -> ${t}`),
    );
}

describe("layers import downward only", () => {
  it("the gateway's stages never import gitops/, simulator/ or bin/ (only its composition roots wire them)", () => {
    expect(
      offenders("gateway", /^gateway\/(cli|config)\//, (t) => /^(gitops|simulator|bin)\//.test(t)),
    ).toEqual([]);
  });

  it("gitops/ knows git and GitHub, not HTTP proxying: from the gateway it sees only the ports", () => {
    expect(
      offenders(
        "gitops",
        /^gitops\/cli\//,
        (t) => (/^gateway\//.test(t) && t !== "gateway/ports.ts") || /^(simulator|bin)\//.test(t),
      ),
    ).toEqual([]);
    expect(
      offenders("gitops", /^gitops\/cli\//, (t) => /^sdk\//.test(t) && !/^sdk\/(lib|schema)\//.test(t)),
    ).toEqual([]);
  });

  it("the simulator stands alone: no gateway stage, gitops or sdk", () => {
    expect(
      offenders(
        "simulator",
        null,
        (t) => /^(gitops|sdk|bin)\//.test(t) || (/^gateway\//.test(t) && !/^gateway\/codec\//.test(t)),
      ),
    ).toEqual([]);
  });

  it("the check sees an offending import (it can fail)", () => {
    expect(importsOf("gateway/server/x.ts", 'import { a } from "../../gitops/evidence/index.ts";')).toEqual([
      "gitops/evidence/index.ts",
    ]);
  });
});
