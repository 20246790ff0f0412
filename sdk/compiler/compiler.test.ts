import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compilePolicyFile, PROBLEM_CODES, policyHashOf } from "./index.ts";
import { run } from "../cli/compile.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = (name: string) => path.join(here, "fixtures", name);
const codes = (r: { problems: { code: string }[] }) => r.problems.map((p) => p.code);

describe("compilePolicyFile", () => {
  it('compiles a policy that imports "custos" and records source locations', async () => {
    const r = await compilePolicyFile(fx("basic.policy.ts"));
    expect(r.problems).toEqual([]);
    const c = r.config!;
    expect(c.rules.map((x) => x.id)).toEqual(["no-privileged", "rbac", "ci-read"]);
    const lines = readFileSync(fx("basic.policy.ts"), "utf8").split("\n");
    const line = lines.findIndex((l) => l.includes('deny("no-privileged"')) + 1;
    const column = lines[line - 1]!.indexOf("deny(") + 1;
    expect(line).toBeGreaterThan(0);
    expect(c.rules[0]!.source).toEqual({ file: "sdk/compiler/fixtures/basic.policy.ts", line, column });
    expect(c.masks[0]!.source.file).toBe("sdk/compiler/fixtures/basic.policy.ts");
    expect(c.rules[0]!.match.body).toEqual({
      op: "some",
      path: ["spec", "containers"],
      where: { op: "eq", path: ["securityContext", "privileged"], value: true },
    });
    expect(c.rules[1]!.approval).toEqual({
      group: "security",
      count: 1,
      ttlSeconds: 3600,
      use: "once",
      wait: null,
      allowUnsigned: false,
    });
    expect(c.policyHash).toBe(policyHashOf(c));
    expect(r.timings.totalMs).toBeLessThan(20_000);
  });

  it("is deterministic: same input, same bytes", async () => {
    const a = await compilePolicyFile(fx("basic.policy.ts"));
    const b = await compilePolicyFile(fx("basic.policy.ts"), { skipTypeCheck: true });
    expect(a.text).toBeDefined();
    expect(b.text).toBe(a.text);
    // keys sorted at every depth
    const keys = Object.keys(JSON.parse(a.text!));
    expect(keys).toEqual([...keys].sort());
  });

  it("reports a missing file", async () => {
    expect(codes(await compilePolicyFile(fx("nope.ts")))).toEqual(["POLICY_NOT_FOUND"]);
  });

  it("reports syntax errors with file:line:col", async () => {
    const r = await compilePolicyFile(fx("syntax.bad.ts"));
    expect(codes(r)).toContain("SYNTAX_ERROR");
    expect(r.problems[0]!.location).toMatchObject({ file: "sdk/compiler/fixtures/syntax.bad.ts", line: 5 });
    expect(r.config).toBeUndefined();
  });

  it("reports type errors (a typo in a resource name)", async () => {
    const r = await compilePolicyFile(fx("type.bad.ts"));
    expect(codes(r)).toEqual(["TYPE_ERROR"]);
    expect(r.problems[0]!.location).toMatchObject({ file: "sdk/compiler/fixtures/type.bad.ts", line: 5 });
    expect(r.problems[0]!.message).toContain("podz");
  });

  it("reports a policy that throws, at the throwing line", async () => {
    const r = await compilePolicyFile(fx("throws.bad.ts"), { skipTypeCheck: true });
    expect(codes(r)).toEqual(["POLICY_THREW"]);
    expect(r.problems[0]!.location).toMatchObject({ file: "sdk/compiler/fixtures/throws.bad.ts", line: 4 });
  });

  it("reports a missing default export and a default export that is not a policy", async () => {
    expect(codes(await compilePolicyFile(fx("nodefault.bad.ts"), { skipTypeCheck: true }))).toEqual([
      "NO_DEFAULT_EXPORT",
    ]);
    expect(codes(await compilePolicyFile(fx("notpolicy.bad.ts"), { skipTypeCheck: true }))).toEqual([
      "NOT_A_POLICY",
    ]);
  });

  it("reports an invalid field path thrown by a builder with its own code", async () => {
    const r = await compilePolicyFile(fx("fieldpath.bad.ts"), { skipTypeCheck: true });
    expect(codes(r)).toEqual(["INVALID_FIELD_PATH"]);
    expect(r.problems[0]!.location).toMatchObject({
      file: "sdk/compiler/fixtures/fieldpath.bad.ts",
      line: 6,
    });
  });

  it("warns about mask paths that cannot exist on the resource", async () => {
    const r = await compilePolicyFile(fx("maskpaths.policy.ts"));
    const found = r.problems.filter((p) => p.code === "MASK_PATH_IMPOSSIBLE").map((p) => p.path);
    expect(found).toEqual(["masks[1].fields[1]", "masks[2].fields", "masks[3].fields[1]"]);
    expect(r.config).toBeDefined();
  });

  it("checks field masks on object subresources against the object they return, and warns on streams", async () => {
    const r = await compilePolicyFile(fx("masksubresources.policy.ts"));
    const found = r.problems.filter((p) => p.code === "MASK_PATH_IMPOSSIBLE");
    expect(found.map((p) => p.path)).toEqual(["masks[0].fields[1]", "masks[2].fields[1]", "masks[4].fields"]);
    expect(found[1]!.message).toContain("Scale has no field spec.template");
    expect(found[2]!.message).toContain("pods/exec");
    expect(r.problems.filter((p) => p.code !== "MASK_PATH_IMPOSSIBLE")).toEqual([]);
  });

  it("every problem code has a severity and a test that provokes it", () => {
    for (const s of Object.values(PROBLEM_CODES)) expect(["error", "warning"]).toContain(s);
    const tests = ["compiler.test.ts", "analyse.test.ts"]
      .map((f) => readFileSync(path.join(here, f), "utf8"))
      .join("\n");
    // a code counts as tested when a test expects it (quoted, or as CODE@path)
    const untested = Object.keys(PROBLEM_CODES).filter((c) => !new RegExp(`"${c}(@|")`).test(tests));
    expect(untested).toEqual([]);
  });
});

describe("custos compile", () => {
  it("prints a subresource gap as a warning at the approval rule's file:line with the fix, and still compiles", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "custos-compile-"));
    const out = path.join(dir, "config.json");
    const err = process.stderr.write;
    const std = process.stdout.write;
    let stderr = "";
    process.stdout.write = (() => true) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => {
      stderr += s;
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await run([fx("subresources.policy.ts"), "--out", out, "--skip-typecheck"])).toBe(0);
    } finally {
      process.stderr.write = err;
      process.stdout.write = std;
    }
    const lines = readFileSync(fx("subresources.policy.ts"), "utf8").split("\n");
    const line = lines.findIndex((l) => l.includes('requireApproval("pod-changes"')) + 1;
    const warning = stderr.split("\n").find((l) => l.includes("SUBRESOURCE_NOT_COVERED"));
    expect(warning).toMatch(
      new RegExp(
        `^sdk/compiler/fixtures/subresources\\.policy\\.ts:${line}:\\d+: warning SUBRESOURCE_NOT_COVERED: `,
      ),
    );
    expect(warning).toContain("pods/ephemeralcontainers (kubectl debug)");
    expect(warning).toContain("pods/eviction");
    expect(warning).toContain('or "pods/*") to "pod-changes"\'s resources');
    expect(JSON.parse(readFileSync(out, "utf8")).name).toBe("subresources");
  });

  it("writes the config and exits 0; exits 2 and writes nothing on errors", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "custos-compile-"));
    const out = path.join(dir, "config.json");
    const err = process.stderr.write;
    const std = process.stdout.write;
    let stdout = "";
    process.stderr.write = (() => true) as typeof process.stderr.write;
    process.stdout.write = ((s: string) => {
      stdout += s;
      return true;
    }) as typeof process.stdout.write;
    try {
      expect(await run([fx("basic.policy.ts"), "--out", out, "--skip-typecheck"])).toBe(0);
      expect(JSON.parse(readFileSync(out, "utf8")).name).toBe("basic");
      const bad = path.join(dir, "bad.json");
      stdout = "";
      expect(await run([fx("throws.bad.ts"), "--out", bad, "--json", "--skip-typecheck"])).toBe(2);
      expect(JSON.parse(stdout)).toMatchObject({ ok: false, problems: [{ code: "POLICY_THREW" }] });
      expect(() => readFileSync(bad)).toThrow();
      expect(await run([])).toBe(2);
    } finally {
      process.stderr.write = err;
      process.stdout.write = std;
    }
  });
});
