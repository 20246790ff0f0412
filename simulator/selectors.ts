/**
 * Label and field selectors, with the grammar of k8s.io/apimachinery/pkg/labels and
 * pkg/fields: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`.
 * Field selectors accept any dotted path into the object (metadata.name, spec.nodeName,
 * involvedObject.uid, status.phase, ...), which is more lenient than kube-apiserver.
 */
import { errors } from "./errors.ts";

type Op = "=" | "!=" | "in" | "notin" | "exists" | "!" | ">" | "<";
export interface Requirement {
  key: string;
  op: Op;
  values: string[];
}

/** Split on commas that are not inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== "");
}

export function parseLabelSelector(s: string): Requirement[] {
  const reqs: Requirement[] = [];
  for (const term of splitTerms(s)) {
    let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
    if (m) {
      const values = m[3]!
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");
      reqs.push({ key: m[1]!, op: m[2] as Op, values });
      continue;
    }
    m = /^([^!=<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$/.exec(term);
    if (m) {
      const op = m[2] === "==" ? "=" : (m[2] as Op);
      reqs.push({ key: m[1]!, op, values: [m[3]!] });
      continue;
    }
    m = /^!\s*([^!=<>\s]+)$/.exec(term);
    if (m) {
      reqs.push({ key: m[1]!, op: "!", values: [] });
      continue;
    }
    if (/^[^!=<>\s(),]+$/.test(term)) {
      reqs.push({ key: term, op: "exists", values: [] });
      continue;
    }
    throw errors.badRequest(`unable to parse requirement: ${JSON.stringify(term)}: found unexpected token`, {
      selector: s,
    });
  }
  return reqs;
}

export function parseFieldSelector(s: string): Requirement[] {
  return splitTerms(s).map((term) => {
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${term}'`, { selector: s });
    return { key: m[1]!.trim(), op: m[2] === "!=" ? "!=" : "=", values: [m[3]!.trim()] };
  });
}

function matchOne(r: Requirement, value: string | undefined): boolean {
  switch (r.op) {
    case "=":
      return value !== undefined && value === r.values[0];
    case "!=":
      return value !== r.values[0];
    case "in":
      return value !== undefined && r.values.includes(value);
    case "notin":
      return value === undefined || !r.values.includes(value);
    case "exists":
      return value !== undefined;
    case "!":
      return value === undefined;
    case ">":
      return value !== undefined && Number(value) > Number(r.values[0]);
    case "<":
      return value !== undefined && Number(value) < Number(r.values[0]);
  }
}

export function matchLabels(reqs: Requirement[], labels: Record<string, unknown> | undefined): boolean {
  return reqs.every((r) => {
    const v = labels?.[r.key];
    return matchOne(r, typeof v === "string" ? v : undefined);
  });
}

export function fieldValue(obj: unknown, path: string): string | undefined {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return undefined;
  return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
}

export function matchFields(reqs: Requirement[], obj: unknown): boolean {
  return reqs.every((r) => {
    // an absent field compares as "" (kube-apiserver's field sets hold "" for unset strings)
    const v = fieldValue(obj, r.key) ?? "";
    return r.op === "=" ? v === r.values[0] : v !== r.values[0];
  });
}
