/**
 * Compile problems: collected, never thrown one at a time (like Zod issues), each with a
 * stable code, a path into the policy, and the source location of the offending line.
 */
import type { SourceLocation } from "../schema/config.ts";

/** Every code the compiler and its analyser report. Tests assert these, not the wording. */
export const PROBLEM_CODES = {
  // loading and evaluating
  POLICY_NOT_FOUND: "error",
  SYNTAX_ERROR: "error",
  TYPE_ERROR: "error",
  POLICY_THREW: "error",
  NO_DEFAULT_EXPORT: "error",
  NOT_A_POLICY: "error",
  // building the config
  DUPLICATE_ID: "error",
  UNKNOWN_IDENTITY: "error",
  UNKNOWN_PURPOSE: "error",
  UNKNOWN_APPROVAL_GROUP: "error",
  UNKNOWN_DETECTOR: "error",
  DEFINITION_CONFLICT: "error",
  INVALID_DURATION: "error",
  INVALID_FIELD_PATH: "error",
  INVALID_PATTERN: "error",
  INVALID_API_GROUP: "error",
  INVALID_KEY: "error",
  MISSING_APPROVAL: "error",
  UNEXPECTED_APPROVAL: "error",
  SCHEMA_INVALID: "error",
  // static analysis
  APPROVAL_UNSATISFIABLE: "error",
  REVIEWER_WITHOUT_KEYS: "warning",
  RULE_SHADOWED: "warning",
  RULE_NEVER_MATCHES: "warning",
  ALLOW_DENY_OVERLAP: "warning",
  MASK_PATH_IMPOSSIBLE: "warning",
  PHI_READ_UNMASKED: "warning",
  IDENTITY_MATCHES_EVERYONE: "warning",
  SUBRESOURCE_NOT_COVERED: "warning",
} as const satisfies Record<string, "error" | "warning">;

export type ProblemCode = keyof typeof PROBLEM_CODES;

export interface Problem {
  code: ProblemCode;
  severity: "error" | "warning";
  /** where in the policy, e.g. "rules[3].approval.group" */
  path: string;
  message: string;
  location?: SourceLocation;
}

export class Problems {
  readonly list: Problem[] = [];
  add(code: ProblemCode, path: string, message: string, location?: SourceLocation): void {
    const p: Problem = { code, severity: PROBLEM_CODES[code], path, message };
    if (location !== undefined) p.location = location;
    this.list.push(p);
  }
  get hasErrors(): boolean {
    return this.list.some((p) => p.severity === "error");
  }
}

/** `file:line:col: error CODE: message (at path)` — the form editors and CI annotate. */
export function formatProblem(p: Problem): string {
  const where =
    p.location === undefined ? "" : `${p.location.file}:${p.location.line}:${p.location.column}: `;
  return `${where}${p.severity} ${p.code}: ${p.message}${p.path === "" ? "" : ` (at ${p.path})`}`;
}
