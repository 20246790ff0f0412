/**
 * `custos audit verify | query | report` over a clone of the evidence repository.
 *
 *   custos audit verify <repo> --allowed-signers <file> [--checkpoint <file>]... [--since <commit>] [--json]
 *   custos audit query  <repo> [--resource r] [--namespace ns] [--name n] [--pseudonym-key f] [--user u] [--verb v]
 *                              [--decision d] [--gateway id] [--request-id id] [--fingerprint fp] [--grant-id id]
 *                              [--since t] [--until t] [--limit n] [--json]
 *   custos audit report <repo> [--since t] [--until t] [--format md|json]
 *
 * Exit codes: 0 ok, 1 verify found something, 2 bad usage or input, 3 runtime failure (git, I/O).
 */
import { readFile } from "node:fs/promises";
import cliProgress from "cli-progress";
import { Command, CommanderError } from "commander";
import { cliConventions } from "../../sdk/lib/cli.ts";
import { bindDigest, parseKeyFile } from "../../sdk/lib/digest.ts";
import { resolveGitDir } from "../audit/git-objects.ts";
import { auditVerify, type Finding, GitReadError, type VerifyResult } from "../audit/index.ts";
import { QueryInputError, queryRecords, type RecordFilter, type WalkOptions } from "../audit/query.ts";
import { buildReport, reportMarkdown } from "../audit/report.ts";
import { AllowedSignersError } from "../signer/index.ts";

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

class UsageError extends Error {
  readonly code = "AUDIT_USAGE";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "UsageError";
    this.data = data;
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A checkpoint file may hold several checkpoints one after another (e.g. a saved log of them). */
export function splitCheckpoints(text: string): string[] {
  return text
    .split(/(?=^custos-evidence\/)/m)
    .map((t) => t.trimStart())
    .filter((t) => t.startsWith("custos-evidence/"));
}

async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new UsageError(
      `cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? "error"}); check the path`,
      { path },
    );
  }
}

function formatFinding(f: Finding): string {
  const where = [
    f.commit ? f.commit.slice(0, 12) : null,
    f.path ? `${f.path}${f.line ? `:${f.line}` : ""}` : null,
  ]
    .filter(Boolean)
    .join(" ");
  return `${f.code}${where ? ` ${where}` : ""}: ${f.message}`;
}

function humanVerify(r: VerifyResult): string {
  const lines: string[] = [];
  for (const f of r.findings) lines.push(formatFinding(f));
  for (const [code, n] of Object.entries(r.suppressed)) lines.push(`${code}: ${n} more not listed`);
  for (const g of r.gateways)
    lines.push(
      `${g.ref}: ${g.commits} commits, ${g.records} records, last seq ${g.lastSeq}, head ${g.head.slice(0, 12)}${g.chainHash ? `, chain ${g.chainHash.slice(0, 16)}…` : ""}`,
    );
  for (const c of r.checkpoints)
    lines.push(`checkpoint ${c.source} (${c.gatewayId}, ${c.count} records): ${c.status}`);
  const s = r.stats;
  const total = r.findings.length + Object.values(r.suppressed).reduce((a, b) => a + (b ?? 0), 0);
  lines.push(
    r.ok
      ? `OK: ${s.commits} commits and ${s.records} records on ${s.refs} branch(es) verified in ${s.seconds.toFixed(2)} s (${s.recordsPerSecond} records/s)`
      : `FAILED: ${total} finding(s) in ${s.commits} commits and ${s.records} records`,
  );
  return `${lines.join("\n")}\n`;
}

async function verifyCommand(
  repo: string,
  o: {
    allowedSigners: string;
    checkpoint: string[];
    since?: string;
    json?: boolean;
    maxFindings: string;
    workers?: string;
  },
): Promise<number> {
  const allowedText = await readInput(o.allowedSigners, "allowed_signers file");
  const checkpoints: { source: string; text: string }[] = [];
  for (const file of o.checkpoint) {
    const parts = splitCheckpoints(await readInput(file, "checkpoint file"));
    if (parts.length === 0)
      throw new UsageError(
        `${file} holds no checkpoint (expected text starting "custos-evidence/<gatewayId>")`,
      );
    parts.forEach((text, i) => {
      checkpoints.push({ source: parts.length > 1 ? `${file}#${i + 1}` : file, text });
    });
  }
  const maxFindings = Number(o.maxFindings);
  if (!Number.isSafeInteger(maxFindings) || maxFindings < 1)
    throw new UsageError("--max-findings must be a positive integer");
  const bar =
    process.stderr.isTTY === true
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: "verify {ref} [{bar}] {value}/{total} commits | {records} records | eta {eta}s",
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let barRef = "";
  const opts: Parameters<typeof auditVerify>[0] = {
    repo,
    allowedSigners: allowedText,
    checkpoints,
    maxFindingsPerCode: maxFindings,
  };
  if (o.since !== undefined) opts.since = o.since;
  if (o.workers !== undefined) {
    const n = Number(o.workers);
    if (!Number.isSafeInteger(n) || n < 0 || n > 64)
      throw new UsageError("--workers must be an integer from 0 to 64");
    opts.workers = n;
  }
  if (bar)
    opts.onProgress = (p) => {
      if (p.ref !== barRef) {
        if (barRef) bar.stop();
        barRef = p.ref;
        bar.start(p.commitsTotal, p.commitsDone, {
          ref: p.ref.replace(/^refs\/(heads|remotes\/[^/]+)\//, ""),
          records: p.records,
        });
      } else bar.update(p.commitsDone, { records: p.records });
    };
  let r: VerifyResult;
  try {
    r = await auditVerify(opts);
  } finally {
    if (barRef) bar?.stop();
  }
  out(o.json ? `${JSON.stringify(r, null, 2)}\n` : humanVerify(r));
  return r.ok ? 0 : 1;
}

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

/**
 * A one-line status on stderr while a long walk runs (terminals only, at most 10 updates a
 * second, erased at the end): the total is unknown before the walk, so a count, not a bar.
 */
function walkStatus(verb: string): {
  onProgress?: WalkOptions["onProgress"];
  matched(n: number): void;
  done(): void;
} {
  if (process.stderr.isTTY !== true) return { matched() {}, done() {} };
  let last = 0;
  let matches = 0;
  let shown = false;
  return {
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      process.stderr.write(
        `\r${verb}: ${p.records.toLocaleString("en-US")} records read, up to ${p.hour}:00Z, ${matches.toLocaleString("en-US")} matching\x1b[K`,
      );
    },
    matched(n) {
      matches = n;
      // rows go to stdout on the same terminal: take the status line away before one is printed
      if (shown) {
        process.stderr.write("\r\x1b[K");
        shown = false;
      }
    },
    done() {
      if (shown) process.stderr.write("\r\x1b[K");
    },
  };
}

async function queryCommand(
  repo: string,
  o: RecordFilter & { json?: boolean; limit?: string; gateway?: string; pseudonymKey?: string },
): Promise<number> {
  const gitDir = await resolveGitDir(repo);
  const filter: RecordFilter = {};
  for (const k of [
    "resource",
    "namespace",
    "name",
    "user",
    "verb",
    "decision",
    "since",
    "until",
    "requestId",
    "fingerprint",
    "grantId",
  ] as const)
    if (o[k] !== undefined) filter[k] = o[k];
  if (o.gateway !== undefined) filter.gatewayId = o.gateway;
  if (o.pseudonymKey !== undefined) {
    if (o.name === undefined && o.namespace === undefined)
      throw new UsageError(
        "--pseudonym-key needs --name (the object's real name) or --namespace (the namespace's real name)",
      );
    let key: Uint8Array;
    try {
      key = parseKeyFile(await readFile(o.pseudonymKey));
    } catch (e) {
      throw new UsageError(
        `cannot read --pseudonym-key ${o.pseudonymKey}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; give the gateway's pseudonym.key`,
      );
    }
    if (o.name !== undefined) filter.nameDigest = bindDigest(key, o.name);
    if (o.namespace !== undefined) filter.namespaceDigest = bindDigest(key, o.namespace);
  }
  if (
    o.decision !== undefined &&
    !/^(allow|deny|requireApproval)$/.test(o.decision) &&
    !/[*?]/.test(o.decision)
  )
    throw new UsageError(`--decision "${o.decision}" is not one of allow, deny, requireApproval`);
  const limit = o.limit === undefined ? Number.POSITIVE_INFINITY : Number(o.limit);
  if (!(limit > 0)) throw new UsageError("--limit must be a positive integer");
  let n = 0;
  // the header goes out with the first row (or at the end): a filter the walk refuses
  // (--since "yesterday") is then one line on stderr, with nothing on stdout before it
  let header = o.json === true;
  const showHeader = () => {
    if (header) return;
    header = true;
    out(
      `${pad("TIME", 28)} ${pad("GATEWAY", 10)} ${pad("SEQ", 8)} ${pad("USER", 24)} ${pad("VERB", 8)} ${pad("OBJECT", 40)} ${pad("DECISION", 16)} RULE\n`,
    );
  };
  const status = walkStatus("query");
  for await (const f of queryRecords(gitDir, filter, status.onProgress)) {
    status.matched(n + 1);
    showHeader();
    const r = f.record;
    if (o.json) out(`${JSON.stringify(r)}\n`);
    else {
      const ref = r.objectRef ?? {};
      const obj = `${ref.resource ?? ""}${ref.subresource ? `/${ref.subresource}` : ""} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name ?? ""}`;
      out(
        `${pad(r.stageTimestamp, 28)} ${pad(f.gatewayId, 10)} ${pad(String(r.custos.seq ?? ""), 8)} ${pad(r.user.username, 24)} ${pad(r.verb, 8)} ${pad(obj.trim() || r.requestURI, 40)} ${pad(r.custos.decision, 16)} ${r.custos.ruleId}\n`,
      );
    }
    if (++n >= limit) break;
  }
  status.done();
  showHeader();
  if (!o.json) err(`${n} record(s)\n`);
  return 0;
}

async function reportCommand(
  repo: string,
  o: { since?: string; until?: string; format: string; gateway?: string },
): Promise<number> {
  if (o.format !== "md" && o.format !== "json")
    throw new UsageError(`--format "${o.format}" must be md or json`);
  const gitDir = await resolveGitDir(repo);
  const ro: Parameters<typeof buildReport>[0] = { gitDir };
  if (o.since !== undefined) ro.since = o.since;
  if (o.until !== undefined) ro.until = o.until;
  if (o.gateway !== undefined) ro.gatewayId = o.gateway;
  const status = walkStatus("report");
  if (status.onProgress) ro.onProgress = status.onProgress;
  const report = await buildReport(ro).finally(() => status.done());
  out(
    o.format === "json"
      ? `${JSON.stringify(report, null, 2)}\n`
      : reportMarkdown(report, { repo, generatedAt: new Date().toISOString() }),
  );
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command("custos audit")
    .description("verify, query and report on a clone of the custos evidence repository")
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });
  const wrap =
    <A extends unknown[]>(fn: (...a: A) => Promise<number>) =>
    async (...a: A) => {
      code = await fn(...a);
    };
  program
    .command("verify")
    .description("prove the evidence is signed, append-only, gap-free and consistent with saved checkpoints")
    .argument("<repo>", "a clone of the evidence repository (working tree or bare)")
    .requiredOption(
      "--allowed-signers <file>",
      "allowed_signers file with the gateways' keys, obtained out of band",
    )
    .option(
      "--checkpoint <file>",
      "a checkpoint saved outside the writer's control (repeatable)",
      collect,
      [],
    )
    .option("--since <commit>", "verify only commits after this one (verified before)")
    .option("--max-findings <n>", "list at most n findings per code", "1000")
    .option("--workers <n>", "worker threads parsing records (0 = none; default: automatic)")
    .option("--json", "machine-readable result on stdout")
    .exitOverride()
    .action(wrap(verifyCommand));
  program
    .command("query")
    .description("find who accessed what: matching records, as a table or JSON lines")
    .argument("<repo>", "a clone of the evidence repository")
    .option("--resource <r>", "objectRef.resource, e.g. pods, secrets (globs allowed)")
    .option("--namespace <ns>", "objectRef.namespace")
    .option("--name <n>", "objectRef.name")
    .option(
      "--pseudonym-key <file>",
      "the gateway's pseudonym.key: --name and --namespace then also find records that name the object or namespace masked (record-[MASKED:mrn]#<digest>)",
    )
    .option("--user <u>", "user.username")
    .option("--verb <v>", "get, list, watch, create, update, patch, delete, ...")
    .option("--decision <d>", "allow | deny | requireApproval")
    .option("--gateway <id>", "only this gateway's records")
    .option(
      "--request-id <id>",
      "custos.approval.requestId: a call needing approval and its approval records",
    )
    .option("--fingerprint <fp>", "custos.approval.fingerprint (sha256:...): every record of one operation")
    .option("--grant-id <id>", "custos.approval.grantId: the grant and the call that used it")
    .option("--since <time>", "stageTimestamp >= time (RFC 3339 or YYYY-MM-DD)")
    .option("--until <time>", "stageTimestamp < time")
    .option("--limit <n>", "stop after n records")
    .option("--json", "one JSON record per line")
    .exitOverride()
    .action(wrap(queryCommand));
  program
    .command("report")
    .description(
      "a summary an auditor can file: decisions, rules, users, denials, approvals, masking, sessions",
    )
    .argument("<repo>", "a clone of the evidence repository")
    .option("--since <time>", "period start (RFC 3339 or YYYY-MM-DD)")
    .option("--until <time>", "period end (exclusive)")
    .option("--gateway <id>", "only this gateway's records")
    .option("--format <fmt>", "md | json", "md")
    .exitOverride()
    .action(wrap(reportCommand));
  cliConventions(program);
  try {
    if (argv.length === 0) {
      // no subcommand is a usage error: the help goes to stderr
      program.outputHelp({ error: true });
      return 2;
    }
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError || e instanceof QueryInputError || e instanceof AllowedSignersError) {
      err(`custos audit: ${e.message}\n`);
      return 2;
    }
    if (e instanceof GitReadError) {
      err(`custos audit: ${e.message}\n`);
      return e.code === "NOT_A_REPO" ? 2 : 3;
    }
    err(`custos audit: ${(e as Error).message}\n`);
    return 3;
  }
}
