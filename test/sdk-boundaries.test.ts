import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as sdk from "../sdk/index.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** every module specifier in import/export-from statements and dynamic imports */
function specifiers(source: string): string[] {
  const re =
    /(?:import|export)\s[^"'`]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g;
  return [...source.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3] ?? "");
}

describe("layering", () => {
  it("gateway/** runtime code imports from sdk/ only sdk/schema/** and sdk/lib/** (never the builders or the compiler)", () => {
    const offenders: string[] = [];
    // tests may compose layers (e.g. build a config with the detector library); the gateway itself may not
    for (const file of files(path.join(root, "gateway")).filter((f) => !f.endsWith(".test.ts"))) {
      for (const spec of specifiers(readFileSync(file, "utf8"))) {
        if (spec === "custos" || spec.startsWith("custos/"))
          offenders.push(`${path.relative(root, file)} -> ${spec}`);
        if (!spec.startsWith(".")) continue;
        const target = path.relative(root, path.resolve(path.dirname(file), spec));
        if (
          target.startsWith(`sdk${path.sep}`) &&
          !target.startsWith(`sdk${path.sep}schema${path.sep}`) &&
          !target.startsWith(`sdk${path.sep}lib${path.sep}`)
        ) {
          offenders.push(`${path.relative(root, file)} -> ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it("the sdk's library code (builders, compiler, lib, schema) does not import the gateway", () => {
    const offenders: string[] = [];
    for (const dir of ["builders", "compiler", "lib", "schema", "kube"]) {
      for (const file of files(path.join(root, "sdk", dir))) {
        if (file.endsWith(".test.ts")) continue;
        for (const spec of specifiers(readFileSync(file, "utf8"))) {
          if (
            spec.startsWith(".") &&
            path.relative(root, path.resolve(path.dirname(file), spec)).startsWith(`gateway${path.sep}`)
          ) {
            offenders.push(`${path.relative(root, file)} -> ${spec}`);
          }
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it("the detector sees an offending import (the check can fail)", () => {
    expect(
      specifiers(
        'import { allow } from "../../sdk/index.ts";\nconst m = await import("../sdk/compiler/index.ts");',
      ),
    ).toEqual(["../../sdk/index.ts", "../sdk/compiler/index.ts"]);
  });

  it("locks the public SDK surface", () => {
    expect(Object.keys(sdk).sort()).toMatchInlineSnapshot(`
      [
        "ALL_VERBS",
        "READ",
        "RESOURCES",
        "WRITE",
        "allow",
        "and",
        "annotation",
        "approvalGroup",
        "body",
        "customResource",
        "deny",
        "detector",
        "detectors",
        "drop",
        "extendPolicy",
        "field",
        "hipaa",
        "identities",
        "label",
        "mask",
        "not",
        "or",
        "partial",
        "policy",
        "pseudonymize",
        "purposes",
        "redact",
        "requireApproval",
        "reviewer",
        "rule",
        "when",
      ]
    `);
  });
});
