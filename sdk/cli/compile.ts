/**
 * `custos compile <policy.ts> --out <config.json> [--json]`
 * Exit: 0 compiled (warnings allowed), 2 problems with severity error (nothing written).
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError } from "commander";
import { compilePolicyFile, formatProblem } from "../compiler/index.ts";
import { cliConventions, intArg } from "../lib/cli.ts";

export async function run(argv: string[]): Promise<number> {
  let exit = 0;
  const program = new Command("custos compile")
    .description(
      "type-check, evaluate, validate and analyse a TypeScript policy; write the gateway config (canonical JSON)",
    )
    .argument("<policy.ts>", "the policy file (its default export is policy({...}))")
    .requiredOption("-o, --out <config.json>", "where to write the compiled config")
    .option("--json", "print a machine-readable result on stdout")
    .option("--skip-typecheck", "evaluate without the TypeScript type-check (faster, less safe)")
    .option("--max-warnings <n>", "fail (exit 1) when there are more warnings than this", intArg(0))
    .exitOverride()
    .action(
      async (
        file: string,
        opts: { out: string; json?: boolean; skipTypecheck?: boolean; maxWarnings?: number },
      ) => {
        const result = await compilePolicyFile(file, { skipTypeCheck: opts.skipTypecheck === true });
        const errors = result.problems.filter((p) => p.severity === "error");
        const warnings = result.problems.filter((p) => p.severity === "warning");
        if (result.text !== undefined && errors.length === 0) {
          const out = path.resolve(opts.out);
          mkdirSync(path.dirname(out), { recursive: true });
          const tmp = `${out}.${process.pid}.tmp`;
          writeFileSync(tmp, result.text);
          renameSync(tmp, out);
        }
        if (opts.json === true) {
          process.stdout.write(
            `${JSON.stringify({
              ok: errors.length === 0,
              out: errors.length === 0 ? opts.out : null,
              policyHash: result.config?.policyHash ?? null,
              rules: result.config?.rules.length ?? 0,
              masks: result.config?.masks.length ?? 0,
              problems: result.problems,
              timings: result.timings,
            })}\n`,
          );
        } else if (result.problems.length === 1 && errors.length === 1 && errors[0]?.location === undefined) {
          // one error about the file itself (not found): one line
          process.stderr.write(`custos compile: ${errors[0]?.message}; nothing written\n`);
        } else {
          for (const p of result.problems) process.stderr.write(`${formatProblem(p)}\n`);
          if (errors.length === 0) {
            process.stdout.write(
              `compiled ${file} -> ${opts.out}: ${result.config?.rules.length} rules, ${result.config?.masks.length} masks, ${warnings.length} warnings, ${result.config?.policyHash} (${Math.round(result.timings.totalMs)} ms)\n`,
            );
          } else {
            process.stderr.write(
              `custos compile: ${errors.length} error(s); nothing written. Fix the lines above and compile again.\n`,
            );
          }
        }
        if (errors.length > 0) exit = 2;
        else if (opts.maxWarnings !== undefined && warnings.length > opts.maxWarnings) exit = 1;
      },
    );
  cliConventions(program);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return exit;
}
