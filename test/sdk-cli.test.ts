import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

async function custos(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, "bin/custos.mjs"), ...args], {
      cwd: root,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("the custos command (real processes): compile, test, explain, diff the HIPAA template", () => {
  it("works end to end as the policy guide shows", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "custos-sdk-cli-"));
    const out = path.join(dir, "hipaa.json");
    const compiled = await custos("compile", "templates/hipaa/policy.ts", "--out", out, "--skip-typecheck");
    expect(compiled.code).toBe(0);
    expect(compiled.stdout).toMatch(/17 rules, 9 masks, 0 warnings, sha256:[0-9a-f]{64}/);
    const config = JSON.parse(readFileSync(out, "utf8"));

    const tested = await custos(
      "policy",
      "test",
      "templates/hipaa/policy.tests.yaml",
      "--config",
      out,
      "--json",
    );
    expect(tested.code).toBe(0);
    expect(JSON.parse(tested.stdout)).toMatchObject({ ok: true, failed: 0, policyHash: config.policyHash });

    const explained = await custos(
      "explain",
      "--config",
      out,
      "--as",
      "ciAgents",
      "get",
      "secrets",
      "-n",
      "phi-clinic",
    );
    expect(explained.code).toBe(0);
    expect(explained.stdout).toMatch(
      /rule:\s+no-secret-reads-by-agents at templates\/hipaa\/baseline\.ts:\d+:\d+/,
    );

    const diff = await custos("policy", "diff", out, out, "--exit-code");
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain("No change in effective access");

    const bad = await custos(
      "compile",
      "sdk/compiler/fixtures/throws.bad.ts",
      "--out",
      path.join(dir, "x.json"),
      "--skip-typecheck",
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("sdk/compiler/fixtures/throws.bad.ts:4:");
  });
});
