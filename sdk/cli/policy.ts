/**
 * `custos policy test <tests.yaml> [--config <config.json>] [--json]`
 *   Table-driven decision tests. Exit 0 all pass, 1 a test failed or the suite is empty,
 *   2 bad input (unreadable file, unknown identity, a policy that does not compile).
 * `custos policy diff <old.json> <new.json> [--json] [--exit-code]`
 *   The change in effective access, as Markdown for a pull request.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError } from "commander";
import YAML from "yaml";
import { z } from "zod";
import { compilePolicyFile, formatProblem } from "../compiler/index.ts";
import { cliConventions, intArg } from "../lib/cli.ts";
import type { GatewayConfig } from "../schema/config.ts";
import { Json } from "../schema/config.ts";
import { diffConfigs, formatDiffMarkdown } from "./diff.ts";
import {
  explainRequest,
  fail,
  parseRequestWords,
  readConfig,
  resolveNamedIdentity,
  UsageError,
} from "./common.ts";

const Caller = z.union([
  z.string().min(1),
  z.object({
    subject: z.string().min(1),
    groups: z.array(z.string()).optional(),
    claims: z.record(z.string(), z.string()).optional(),
  }),
]);

const TestCase = z.object({
  name: z.string().min(1),
  /** a named identity of the policy, or a literal caller */
  as: Caller,
  purpose: z.string().optional(),
  /** "get pods -n ns" or "GET /api/v1/..." */
  request: z.string().min(1),
  body: Json.optional(),
  expect: z.object({
    decision: z.enum(["allow", "deny", "requireApproval"]),
    rule: z.string().optional(),
    /** exactly these masks apply (order ignored) */
    masks: z.array(z.string()).optional(),
    /** at least these field paths are masked */
    maskedFields: z.array(z.string()).optional(),
    dryRun: z.array(z.string()).optional(),
  }),
});
export type TestCase = z.infer<typeof TestCase>;

const TestFile = z.object({
  /** the policy to compile (relative to the tests file), unless --config is given */
  policy: z.string().optional(),
  tests: z.array(TestCase),
});

export interface TestResult {
  name: string;
  ok: boolean;
  failures: string[];
  actual: { decision: string; rule: string; masks: string[]; maskedFields: string[]; dryRun: string[] };
}

export function runCase(config: GatewayConfig, t: TestCase): TestResult {
  const req = parseRequestWords([t.request]);
  const who =
    typeof t.as === "string"
      ? { as: t.as }
      : { as: t.as.subject, groups: t.as.groups ?? [], claims: t.as.claims ?? {}, literal: true };
  if (typeof t.as === "string" && resolveNamedIdentity(config, t.as) === undefined) {
    throw new UsageError(
      "UNKNOWN_IDENTITY",
      `test "${t.name}": the policy has no identity "${t.as}" (it has ${Object.keys(config.identities).join(", ")}); use one of those or { subject, groups }`,
    );
  }
  const ex = explainRequest(config, req, who, t.purpose, t.body);
  const actual = {
    decision: ex.decision.decision,
    rule: ex.decision.ruleId,
    masks: ex.masks.map((m) => m.id),
    maskedFields: [...new Set(ex.masks.flatMap((m) => m.fields))],
    dryRun: ex.decision.dryRunMatches,
  };
  const failures: string[] = [];
  const e = t.expect;
  if (e.decision !== actual.decision)
    failures.push(`decision: expected ${e.decision}, got ${actual.decision} (rule ${actual.rule})`);
  if (e.rule !== undefined && e.rule !== actual.rule)
    failures.push(`rule: expected ${e.rule}, got ${actual.rule}`);
  if (e.masks !== undefined) {
    const want = [...e.masks].sort();
    const got = [...actual.masks].sort();
    if (want.join(",") !== got.join(","))
      failures.push(`masks: expected [${want.join(", ")}], got [${got.join(", ")}]`);
  }
  if (e.maskedFields !== undefined) {
    const missing = e.maskedFields.filter((f) => !actual.maskedFields.includes(f));
    if (missing.length > 0) failures.push(`maskedFields: not masked: ${missing.join(", ")}`);
  }
  if (e.dryRun !== undefined && [...e.dryRun].sort().join(",") !== [...actual.dryRun].sort().join(",")) {
    failures.push(`dryRun: expected [${e.dryRun.join(", ")}], got [${actual.dryRun.join(", ")}]`);
  }
  return { name: t.name, ok: failures.length === 0, failures, actual };
}

async function loadSuite(
  file: string,
  configPath: string | undefined,
): Promise<{ config: GatewayConfig; tests: TestCase[] }> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UsageError(
      "TESTS_NOT_FOUND",
      `expected a tests file at ${file}, found nothing; pass the path of your tests YAML (see templates/hipaa/policy.tests.yaml)`,
    );
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new UsageError("TESTS_INVALID", `${file} is not YAML: ${(e as Error).message}`);
  }
  const parsed = TestFile.safeParse(doc ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(
      "TESTS_INVALID",
      `${file}: ${i?.path.join(".")}: ${i?.message}; see docs/policy-guide.md for the format`,
    );
  }
  let config: GatewayConfig;
  if (configPath !== undefined) config = readConfig(configPath);
  else if (parsed.data.policy !== undefined) {
    const policyFile = path.resolve(path.dirname(file), parsed.data.policy);
    const r = await compilePolicyFile(policyFile, { skipTypeCheck: true });
    if (r.config === undefined) {
      throw new UsageError(
        "POLICY_INVALID",
        `${policyFile} does not compile: ${r.problems
          .filter((p) => p.severity === "error")
          .map(formatProblem)
          .join("; ")}`,
      );
    }
    config = r.config;
  } else
    throw new UsageError(
      "NO_CONFIG",
      `${file} names no policy: add "policy: ./policy.ts" or pass --config <config.json>`,
    );
  return { config, tests: parsed.data.tests };
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

export async function run(argv: string[]): Promise<number> {
  let exit = 0;
  const program = new Command("custos policy").description("policy test | policy diff").exitOverride();
  program
    .command("test")
    .description("run table-driven decision tests (request + identity + purpose -> decision, rule, masks)")
    .argument("<tests.yaml>", "the tests file")
    .option("-c, --config <config.json>", "test this compiled config instead of the file's `policy:`")
    .option("--json", "machine-readable output")
    .option("--only <name>", "run only tests whose name contains this (repeatable)", collect, [])
    .exitOverride()
    .action(async (file: string, opts: { config?: string; json?: boolean; only: string[] }) => {
      const { config, tests } = await loadSuite(file, opts.config);
      const selected =
        opts.only.length === 0 ? tests : tests.filter((t) => opts.only.some((o) => t.name.includes(o)));
      const results = selected.map((t) => runCase(config, t));
      const failed = results.filter((r) => !r.ok);
      const empty = results.length === 0;
      if (opts.json === true) {
        process.stdout.write(
          `${JSON.stringify({ ok: !empty && failed.length === 0, policy: config.name, policyHash: config.policyHash, total: results.length, passed: results.length - failed.length, failed: failed.length, results })}\n`,
        );
      } else {
        for (const r of results) {
          process.stdout.write(`${r.ok ? "ok  " : "FAIL"} ${r.name}\n`);
          for (const f of r.failures) process.stdout.write(`       ${f}\n`);
        }
        process.stdout.write(
          `${results.length - failed.length}/${results.length} passed (${config.name} ${config.policyHash})\n`,
        );
      }
      if (empty) {
        process.stderr.write(
          `custos policy test: ${file} has no tests; an empty suite proves nothing — add cases under "tests:"\n`,
        );
        exit = 1;
      } else if (failed.length > 0) exit = 1;
    });
  program
    .command("diff")
    .description("the semantic difference in effective access between two compiled configs, as Markdown")
    .argument("<old.json>", "the compiled config in force (custos compile)")
    .argument("<new.json>", "the compiled config proposed")
    .option("--json", "machine-readable output")
    .option("--exit-code", "exit 1 when effective access changed")
    .option("--max-rows <n>", "rows per table", intArg(1), 200)
    .exitOverride()
    .action(
      (oldFile: string, newFile: string, opts: { json?: boolean; exitCode?: boolean; maxRows: number }) => {
        const before = readConfig(oldFile);
        const after = readConfig(newFile);
        const diff = diffConfigs(before, after);
        if (opts.json === true) process.stdout.write(`${JSON.stringify(diff)}\n`);
        else process.stdout.write(formatDiffMarkdown(diff, { maxRows: opts.maxRows }));
        if (opts.exitCode === true && !diff.empty) exit = 1;
      },
    );
  cliConventions(program);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return fail("policy", e);
  }
  return exit;
}
