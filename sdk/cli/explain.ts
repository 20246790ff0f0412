/**
 * `custos explain --config <config.json> --as <identity> [--group g] [--purpose p] [--json] <request...>`
 * The decision for one request, the rule that made it and its source line, and the masks
 * that would apply. Exit 0 (or with --exit-code: 0 allow, 1 deny/approval), 2 bad input.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { cliConventions } from "../lib/cli.ts";
import {
  type Explanation,
  explainRequest,
  fail,
  parseRequestWords,
  readConfig,
  UsageError,
} from "./common.ts";

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

function claim(value: string, prev: string[]): string[] {
  if (value.indexOf("=") <= 0) throw new InvalidArgumentError("expected key=value, e.g. repository=acme/app");
  return [...prev, value];
}

/** kubectl flags a request may carry (never taken for a misspelt option of explain's own) */
const KUBECTL_FLAGS = new Set(
  "namespace all-namespaces watch all container output selector field-selector stdin tty dry-run force grace-period cascade raw subresource filename recursive local type image replicas timeout wait overwrite field-manager server-side as-group".split(
    " ",
  ),
);

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/**
 * Request words pass kubectl's flags through, but a misspelt option of explain's own (say
 * `--exit-cod`) must not be swallowed as one: the script relying on it would get exit 0.
 */
function checkMisspelt(words: readonly string[], own: readonly string[]): void {
  for (const w of words) {
    if (!w.startsWith("--")) continue;
    const name = w.slice(2).split("=")[0] ?? "";
    if (KUBECTL_FLAGS.has(name)) continue;
    const near = own.find((o) => distance(name, o) <= (o.length < 5 ? 1 : 2));
    if (near !== undefined)
      throw new UsageError(
        "UNKNOWN_OPTION",
        `unknown option '${w}' (did you mean --${near}?); run "custos explain --help" for the options`,
      );
  }
}

export function formatExplanation(ex: Explanation, policyName: string): string {
  const d = ex.decision;
  const r = ex.request.info;
  const lines: string[] = [];
  const where = d.source === undefined ? "" : ` at ${d.source.file}:${d.source.line}:${d.source.column}`;
  lines.push(
    `decision:    ${d.decision}${d.decision === "requireApproval" && d.approval ? ` (${d.approval.count} of group ${d.approval.group}, grant ttl ${d.approval.ttlSeconds}s, use ${d.approval.use})` : ""}`,
  );
  lines.push(`rule:        ${d.ruleId}${where}`);
  lines.push(`reason:      ${d.reason}`);
  if (d.remediation !== undefined) lines.push(`remediation: ${d.remediation}`);
  if (d.rule?.framework !== undefined)
    lines.push(`framework:   ${d.rule.framework.name} ${d.rule.framework.section}`);
  const res = r.subresource === "" ? r.resource : `${r.resource}/${r.subresource}`;
  const target = r.isResourceRequest
    ? `${r.verb} ${res}${r.apiGroup === "" ? "" : `.${r.apiGroup}`}${r.name === "" ? "" : ` ${r.name}`}${r.namespace === "" ? "" : ` in ${r.namespace}`} (${ex.request.namespaceClass})`
    : `${r.verb} ${r.path} (non-resource)`;
  lines.push(`request:     ${ex.request.method} ${ex.request.url} -> ${target}`);
  lines.push(
    `caller:      ${ex.identity.subject}${ex.namedIdentity === undefined ? "" : ` (as identity ${ex.namedIdentity})`}, groups [${ex.identity.groups.join(", ")}], purpose ${ex.purpose ?? "(none)"}`,
  );
  if (ex.masks.length === 0) lines.push("masks:       (none)");
  else {
    lines.push("masks:");
    for (const m of ex.masks) {
      const parts = [
        m.fields.length > 0 ? `fields ${m.fields.join(", ")}` : "",
        m.detectors.length > 0 ? `detectors ${m.detectors.join(", ")}` : "",
      ].filter((p) => p !== "");
      const cond = m.whenLabels === undefined ? "" : ` when labels ${JSON.stringify(m.whenLabels)}`;
      lines.push(`  - ${m.id}: ${parts.join("; ")}${cond} (${m.source.file}:${m.source.line})`);
    }
  }
  if (ex.everywhereDetectors.length > 0)
    lines.push(`detectors everywhere: ${ex.everywhereDetectors.join(", ")}`);
  if (d.dryRunMatches.length > 0)
    lines.push(`dry-run:     ${d.dryRunMatches.join(", ")} matched (recorded, not enforced)`);
  lines.push(`policy:      ${policyName} ${d.policyHash}`);
  return `${lines.join("\n")}\n`;
}

export async function run(argv: string[]): Promise<number> {
  let exit = 0;
  const program = new Command("custos explain")
    .description(
      "explain the decision for one request, e.g. custos explain --config c.json --as ciAgents --purpose operations get pods -n phi-clinic",
    )
    .argument(
      "<request...>",
      'kubectl-like words ("get pods -n ns", "logs web-0 -n ns", "exec web-0 -n ns") or METHOD /path',
    )
    .requiredOption("--config <config.json>", "the compiled config")
    .requiredOption(
      "--as <identity>",
      "a named identity of the policy (a stand-in that matches it), or a subject",
    )
    .option("--group <group>", "add a group to the caller (repeatable)", collect, [])
    .option("--claim <key=value>", "add a token claim (repeatable)", claim, [])
    .option("--purpose <purpose>", "the declared purpose")
    .option("--json", "machine-readable output")
    .option("--exit-code", "exit 1 unless the decision is allow")
    .allowUnknownOption(true)
    .passThroughOptions(false)
    .exitOverride()
    .action(
      (
        words: string[],
        opts: {
          config: string;
          as: string;
          group: string[];
          claim: string[];
          purpose?: string;
          json?: boolean;
          exitCode?: boolean;
        },
      ) => {
        checkMisspelt(
          words,
          program.options.map((o) => o.long?.slice(2) ?? "").filter((o) => o !== ""),
        );
        const config = readConfig(opts.config);
        const req = parseRequestWords(words);
        const claims = Object.fromEntries(
          opts.claim.map((c) => [c.slice(0, c.indexOf("=")), c.slice(c.indexOf("=") + 1)]),
        );
        const ex = explainRequest(config, req, { as: opts.as, groups: opts.group, claims }, opts.purpose);
        if (opts.json === true) {
          const { rule: _rule, ...decision } = ex.decision;
          process.stdout.write(`${JSON.stringify({ ...ex, decision })}\n`);
        } else process.stdout.write(formatExplanation(ex, config.name));
        if (opts.exitCode === true && ex.decision.decision !== "allow") exit = 1;
      },
    );
  cliConventions(program);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return fail("explain", e);
  }
  return exit;
}
