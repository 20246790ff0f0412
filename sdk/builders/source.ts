/**
 * Where a builder was called from: the first stack frame outside the sdk's own builder
 * files, mapped through the module's source map (tsx transpiles policies; Node keeps their
 * maps once source maps are enabled). The compiler rewrites the absolute file into a path
 * relative to the project root.
 */
import { findSourceMap } from "node:module";
import { fileURLToPath } from "node:url";
import type { SourceLocation } from "../schema/config.ts";

const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));

interface CallSite {
  getFileName(): string | null | undefined;
  getScriptNameOrSourceURL?(): string | null | undefined;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

function toPath(raw: string): string {
  const noQuery = raw.replace(/[?#].*$/, "");
  return noQuery.startsWith("file://") ? fileURLToPath(noQuery) : noQuery;
}

function isSdkInternal(file: string): boolean {
  if (file.endsWith(".test.ts")) return false;
  return (
    file.startsWith(`${SDK_DIR}builders/`) || file === `${SDK_DIR}index.ts` || file.includes("/node_modules/")
  );
}

function rawCallSites(): CallSite[] {
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  Error.stackTraceLimit = 50;
  Error.prepareStackTrace = (_err, sites) => sites;
  const holder: { stack?: unknown } = {};
  Error.captureStackTrace(holder, callerLocation);
  const sites = holder.stack as CallSite[] | undefined;
  Error.stackTraceLimit = limit;
  Error.prepareStackTrace = prepare;
  return Array.isArray(sites) ? sites : [];
}

/** Map a generated position to the original one when the module has a source map. */
export function originalPosition(rawFile: string, line: number, column: number): SourceLocation {
  const map = findSourceMap(rawFile);
  if (map !== undefined) {
    const entry = map.findEntry(line - 1, column - 1) as {
      originalSource?: string;
      originalLine?: number;
      originalColumn?: number;
    };
    if (entry.originalLine !== undefined && entry.originalColumn !== undefined) {
      const source =
        entry.originalSource !== undefined && entry.originalSource !== ""
          ? toPath(entry.originalSource)
          : toPath(rawFile);
      return { file: source, line: entry.originalLine + 1, column: entry.originalColumn + 1 };
    }
  }
  return { file: toPath(rawFile), line, column };
}

/** The caller's location (absolute file path; 1-based line and column). */
export function callerLocation(): SourceLocation {
  for (const site of rawCallSites()) {
    const raw = site.getFileName() ?? site.getScriptNameOrSourceURL?.() ?? undefined;
    if (raw === undefined || raw === null || raw.startsWith("node:")) continue;
    const file = toPath(raw);
    if (isSdkInternal(file)) continue;
    return originalPosition(raw, site.getLineNumber() ?? 0, site.getColumnNumber() ?? 0);
  }
  return { file: "<unknown>", line: 0, column: 0 };
}
