/**
 * The policy compiler: TypeScript policy file -> GatewayConfig.
 *
 * 1. type-check the program with ts-morph (SYNTAX_ERROR / TYPE_ERROR with file:line:col)
 * 2. evaluate it (tsx's `tsImport`, a fresh module graph every time)
 * 3. build the config from the builder data (one handler per kind) and validate it (zod)
 * 4. analyse it (shadowed rules, overlaps, approvals, masks, PHI reads)
 * 5. canonical JSON and policyHash
 *
 * Problems are collected; a config is returned only when there are no errors.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { PolicyDef } from "../builders/types.ts";
import type { GatewayConfig, SourceLocation } from "../schema/config.ts";
import { originalPosition } from "../builders/source.ts";
import { analyse } from "./analyse.ts";
import { buildConfig, serializeConfig } from "./build.ts";
import { PROBLEM_CODES, type Problem, type ProblemCode, Problems } from "./problems.ts";
import { checkMaskPaths, typeCheck } from "./typescript.ts";

export { matchCovers, matchesMayOverlap } from "./analyse.ts";
export { durationSeconds, policyHashOf, serializeConfig } from "./build.ts";
export { formatProblem, PROBLEM_CODES } from "./problems.ts";
export type { Problem, ProblemCode } from "./problems.ts";

const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));

export interface CompileResult {
  /** present only when there are no errors */
  config?: GatewayConfig;
  /** the bytes to write (serializeConfig(config)) */
  text?: string;
  problems: Problem[];
  timings: { typecheckMs: number; evaluateMs: number; buildMs: number; totalMs: number };
}

export interface CompileFileOptions {
  /** skip the TypeScript type-check (and the mask-path check that needs it); default false */
  skipTypeCheck?: boolean;
  /** directory source locations are relative to; default: the nearest folder with package.json */
  root?: string;
}

/** The nearest ancestor folder holding a package.json (the project root), or the file's folder. */
export function projectRoot(file: string): string {
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.dirname(path.resolve(file));
    dir = up;
  }
}

/** The file's real path (symlinks resolved), or the path itself when it does not exist. */
function realOf(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/**
 * Source files relative to the project root, both with symlinks resolved: Node loads modules
 * by their real path, so a root reached through a link (a symlinked checkout, /tmp on macOS)
 * would otherwise put "../../.." and the machine's directories into the config.
 */
function relocator(rawRoot: string): {
  rel: (file: string) => string;
  loc: (l: SourceLocation) => SourceLocation;
} {
  const root = realOf(rawRoot);
  const rel = (file: string) => {
    if (file.startsWith("<")) return file;
    const r = path.relative(root, realOf(file));
    return r.split(path.sep).join("/");
  };
  return { rel, loc: (l) => ({ file: rel(l.file), line: l.line, column: l.column }) };
}

/** Compile builder data already in memory (no type-check). */
export function compilePolicy(def: PolicyDef, options: { root?: string } = {}): CompileResult {
  const t0 = performance.now();
  const problems = new Problems();
  const { loc } = relocator(options.root ?? process.cwd());
  const out = finish(def, problems, loc);
  const totalMs = performance.now() - t0;
  return { ...out, timings: { typecheckMs: 0, evaluateMs: 0, buildMs: totalMs, totalMs } };
}

function finish(
  def: PolicyDef,
  problems: Problems,
  loc: (l: SourceLocation) => SourceLocation,
  after?: (c: GatewayConfig) => void,
) {
  const built = buildConfig(def, { relocate: loc }, problems);
  if (built.config !== undefined) {
    analyse(built.config, problems);
    after?.(built.config);
  }
  const result: Omit<CompileResult, "timings"> = { problems: sortProblems(problems.list) };
  if (built.config !== undefined && !problems.hasErrors) {
    result.config = built.config;
    result.text = serializeConfig(built.config);
  }
  return result;
}

function sortProblems(list: Problem[]): Problem[] {
  const key = (p: Problem) =>
    `${p.severity === "error" ? 0 : 1}|${p.location?.file ?? "~"}|${String(p.location?.line ?? 0).padStart(8, "0")}|${String(p.location?.column ?? 0).padStart(6, "0")}|${p.code}|${p.path}`;
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Where a thrown error came from: the first stack frame in a project file outside the sdk's builders. */
function throwLocation(
  err: unknown,
  root: string,
  rel: (f: string) => string,
  stackWasMapped: boolean,
): SourceLocation | undefined {
  const stack = err instanceof Error ? (err.stack ?? "") : "";
  for (const line of stack.split("\n").slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^\s()]*?):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    const raw = m[1]!;
    const pos = stackWasMapped
      ? {
          file: raw.startsWith("file://") ? fileURLToPath(raw.replace(/[?#].*$/, "")) : raw,
          line: Number(m[2]),
          column: Number(m[3]),
        }
      : originalPosition(raw, Number(m[2]), Number(m[3]));
    const file = pos.file;
    if (
      !file.startsWith(root) ||
      file.includes("/node_modules/") ||
      file.startsWith(path.join(SDK_DIR, "builders"))
    )
      continue;
    if (file.startsWith(path.join(SDK_DIR, "compiler")) && !file.includes("/fixtures/")) continue;
    return { file: rel(file), line: pos.line, column: pos.column };
  }
  return undefined;
}

/** Compile a policy file. Never throws for bad policies: everything wrong is in `problems`. */
export async function compilePolicyFile(
  file: string,
  options: CompileFileOptions = {},
): Promise<CompileResult> {
  const t0 = performance.now();
  const abs = realOf(path.resolve(file));
  const root = realOf(path.resolve(options.root ?? projectRoot(abs)));
  const { rel, loc } = relocator(root);
  const problems = new Problems();
  const timings = { typecheckMs: 0, evaluateMs: 0, buildMs: 0, totalMs: 0 };
  const done = (r: Omit<CompileResult, "timings">): CompileResult => {
    timings.totalMs = performance.now() - t0;
    return { ...r, timings };
  };
  if (!existsSync(abs) || !statSync(abs).isFile()) {
    problems.add(
      "POLICY_NOT_FOUND",
      "",
      `expected a TypeScript policy file at ${file}, found nothing; pass the path of your policy.ts`,
    );
    return done({ problems: problems.list });
  }

  let project: ReturnType<typeof typeCheck>["project"] | undefined;
  if (options.skipTypeCheck !== true) {
    const t = performance.now();
    project = typeCheck(abs, SDK_DIR, problems, rel).project;
    timings.typecheckMs = performance.now() - t;
    if (problems.hasErrors) return done({ problems: sortProblems(problems.list) });
  }

  const te = performance.now();
  let mod: { default?: unknown };
  try {
    // source-mapped stacks give builders the policy's own line numbers
    process.setSourceMapsEnabled(true);
    const { tsImport } = await import("tsx/esm/api");
    mod = (await tsImport(pathToFileURL(abs).href, import.meta.url)) as { default?: unknown };
  } catch (err) {
    timings.evaluateMs = performance.now() - te;
    const code = (err as { code?: unknown }).code;
    const known =
      typeof code === "string" && Object.hasOwn(PROBLEM_CODES, code) ? (code as ProblemCode) : "POLICY_THREW";
    const message = err instanceof Error ? err.message : String(err);
    // Node maps stack strings itself only when nothing else (a test runner) owns prepareStackTrace
    const mapped = process.sourceMapsEnabled && Error.prepareStackTrace === undefined;
    const at = throwLocation(err, root, rel, mapped) ?? { file: rel(abs), line: 1, column: 1 };
    problems.add(known, "", `evaluating the policy threw: ${message}`, at);
    return done({ problems: sortProblems(problems.list) });
  }
  timings.evaluateMs = performance.now() - te;

  // a policy file outside an ESM package ("type": "module") is loaded as CommonJS, whose
  // namespace wraps module.exports once more: unwrap that, so the file's location doesn't matter
  let def = mod.default;
  if (def !== null && typeof def === "object" && !("kind" in def) && "default" in def)
    def = (def as { default: unknown }).default;
  if (def === undefined) {
    problems.add(
      "NO_DEFAULT_EXPORT",
      "",
      `expected the policy file to \`export default policy({...})\`, found no default export`,
      { file: rel(abs), line: 1, column: 1 },
    );
    return done({ problems: problems.list });
  }
  if ((def as { kind?: unknown } | null)?.kind !== "policy") {
    problems.add(
      "NOT_A_POLICY",
      "",
      `expected the default export to be policy({...}) from "custos", found ${def === null ? "null" : typeof def}`,
      {
        file: rel(abs),
        line: 1,
        column: 1,
      },
    );
    return done({ problems: problems.list });
  }

  const tb = performance.now();
  const out = finish(def as PolicyDef, problems, loc, (config) => {
    if (project !== undefined) checkMaskPaths(config, project, SDK_DIR, problems);
  });
  timings.buildMs = performance.now() - tb;
  // checkMaskPaths ran after finish() sorted; re-sort so warnings it added are in order
  return done({ ...out, problems: sortProblems(problems.list) });
}
