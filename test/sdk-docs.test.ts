import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compilePolicyFile } from "../sdk/compiler/index.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

describe("docs/policy-guide.md", () => {
  it("its from-zero policy compiles with no errors and no warnings (from a directory inside the repo)", async () => {
    const guide = readFileSync(path.join(root, "docs/policy-guide.md"), "utf8");
    const m = /```ts\n\/\/ policies\/team-a\.ts\n([\s\S]*?)```/.exec(guide);
    expect(m).not.toBeNull();
    // the guide elides the key; a real (throwaway, private half discarded) public key stands in
    const code = m![1]!.replace(
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... octocat",
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINIQVD9v6uIYM9xCC1AzmhxYJrfczZf/cTex5JhE75zt octocat",
    );
    // .custos/ is git-ignored scratch space inside the repo: "custos" resolves by self-reference there
    mkdirSync(path.join(root, ".custos"), { recursive: true });
    const dir = mkdtempSync(path.join(root, ".custos", "docs-test-"));
    try {
      const file = path.join(dir, "team-a.ts");
      writeFileSync(file, code);
      const r = await compilePolicyFile(file);
      expect(r.problems).toEqual([]);
      expect(r.config?.rules.map((x) => x.id)).toContain("no-privileged-pods");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("its diff section says the diff decides with no request body, so body predicates are compared only that far", () => {
    const guide = readFileSync(path.join(root, "docs/policy-guide.md"), "utf8");
    const diff = guide.slice(guide.indexOf("## 6. Diff"), guide.indexOf("## 7."));
    expect(diff).toMatch(/no request body/);
    expect(diff).toMatch(/body predicate/);
  });
});

describe("docs/agent-guide.md", () => {
  it("every failure code its table lists is one the gateway gives", () => {
    const guide = readFileSync(path.join(root, "docs/agent-guide.md"), "utf8");
    const table = guide.split("\n").filter((l) => /^\| \d{3}/.test(l));
    const codes = table.flatMap((l) => [...l.matchAll(/`([A-Z][A-Z_]+[A-Z])`/g)].map((m) => m[1]!));
    expect(codes.length).toBeGreaterThan(15);
    const sources: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
          sources.push(readFileSync(p, "utf8"));
      }
    };
    walk(path.join(root, "gateway"));
    const all = sources.join("\n");
    for (const c of codes) expect(all, c).toContain(`"${c}"`);
  });
});
