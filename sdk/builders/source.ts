/**
 * Where a builder was called from: the first stack frame outside the sdk's own builder
 * files. The compiler rewrites the absolute file into a path relative to the project root.
 */
import { fileURLToPath } from "node:url";
import type { SourceLocation } from "../schema/config.ts";

const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));
const FRAME = /\(?((?:file:\/\/)?\/[^\s()]*?):(\d+):(\d+)\)?\s*$/;

function frameFile(raw: string): string {
  const noQuery = raw.replace(/[?#].*$/, "");
  return noQuery.startsWith("file://") ? fileURLToPath(noQuery) : noQuery;
}

function isSdkInternal(file: string): boolean {
  return (
    file.startsWith(`${SDK_DIR}builders/`) || file === `${SDK_DIR}index.ts` || file.includes("/node_modules/")
  );
}

/** The caller's location (absolute file path; 1-based line and column). */
export function callerLocation(): SourceLocation {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 50;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  for (const line of stack.split("\n").slice(1)) {
    const m = FRAME.exec(line.trim());
    if (!m) continue;
    const file = frameFile(m[1]!);
    if (isSdkInternal(file) || file.startsWith("node:")) continue;
    return { file, line: Number(m[2]), column: Number(m[3]) };
  }
  return { file: "<unknown>", line: 0, column: 0 };
}
