/** The text a reviewer reads: a pull-request body (or the CLI's summary) readable in ten seconds. */
import type { RequestFile } from "./fingerprint.ts";

const MAX_EXCERPT_LINES = 40;

export function describeWhat(f: RequestFile): string {
  const r = f.operation.request;
  const gv = r.apiGroup ? `${r.apiGroup}/${r.apiVersion}` : r.apiVersion || "";
  const body = f.maskedBody;
  const bodyName =
    body &&
    typeof body === "object" &&
    !Array.isArray(body) &&
    body.metadata &&
    typeof body.metadata === "object" &&
    !Array.isArray(body.metadata)
      ? body.metadata.name
      : undefined;
  const name = r.name || (typeof bodyName === "string" ? bodyName : "");
  const res = r.subresource ? `${r.resource}/${r.subresource}` : r.resource;
  if (!res) return `${r.verb.toUpperCase()} ${r.path}`;
  return `${r.verb} ${res}${name ? ` \`${name}\`` : ""}${gv ? ` (${gv})` : ""}`;
}

export function describeWhere(f: RequestFile): string {
  const ns = f.operation.request.namespace;
  return ns ? `namespace \`${ns}\`` : "cluster-wide";
}

export function describeWho(f: RequestFile): string {
  const claims = Object.entries(f.operation.identity.claims)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const groups = f.requester.groups.length ? ` (groups: ${f.requester.groups.join(", ")})` : "";
  return `\`${f.requester.subject}\`${groups}${claims ? `; ${claims}` : ""}`;
}

export function maskedExcerpt(f: RequestFile): string {
  if (f.maskedBody === null) return "(no request body)";
  const lines = JSON.stringify(f.maskedBody, null, 2).split("\n");
  const cut = lines.length > MAX_EXCERPT_LINES;
  return [
    ...lines.slice(0, MAX_EXCERPT_LINES),
    ...(cut ? [`… ${lines.length - MAX_EXCERPT_LINES} more lines in requests/${f.requestId}.json`] : []),
  ].join("\n");
}

export function pullRequestTitle(f: RequestFile): string {
  return `custos approval: ${describeWhat(f).replaceAll("`", "")} in ${f.operation.request.namespace || "cluster"} for ${f.requester.subject}`;
}

export function pullRequestBody(f: RequestFile, approveCommand: string, denyCommand: string): string {
  const rule = f.rule;
  return [
    `### custos approval request \`${f.requestId}\``,
    "",
    `| | |`,
    `|---|---|`,
    `| **What** | ${describeWhat(f)} |`,
    `| **Where** | ${describeWhere(f)} |`,
    `| **Who** | ${describeWho(f)} |`,
    `| **Why** | ${f.purpose ? `purpose \`${f.purpose}\`` : "no purpose declared"} |`,
    `| **Rule** | \`${rule.id}\`: ${rule.count} ${rule.allowUnsigned ? "" : "signed "}approval${rule.count > 1 ? "s" : ""} from group \`${rule.group}\`; grant ${rule.use === "once" ? "used once" : "reusable"} for ${rule.ttlSeconds}s |`,
    `| **Expires** | ${f.expiresAt} |`,
    "",
    "<details><summary>Masked request body</summary>",
    "",
    "```json",
    maskedExcerpt(f),
    "```",
    "</details>",
    "",
    "**Approve** (signs with your registered ed25519 key):",
    "```",
    approveCommand,
    "```",
    "**Deny**:",
    "```",
    denyCommand,
    "```",
    "",
    `Fingerprint \`${f.fingerprint}\` · policy \`${rule.policyHash}\` · request file \`requests/${f.requestId}.json\`. ` +
      "An approval counts only on this PR's current head, from a reviewer of the group (by GitHub user id), with a valid custos signature, before expiry.",
  ].join("\n");
}

/** The plain-text summary the CLI shows before asking for confirmation. */
export function terminalSummary(f: RequestFile, where: string): string {
  return [
    `request     ${f.requestId}  (${where})`,
    `what        ${describeWhat(f).replaceAll("`", "")}`,
    `where       ${describeWhere(f).replaceAll("`", "")}`,
    `who         ${describeWho(f).replaceAll("`", "")}`,
    `why         ${f.purpose ?? "(no purpose declared)"}`,
    `rule        ${f.rule.id}: ${f.rule.count} of group ${f.rule.group}, ${f.rule.use === "once" ? "single use" : `reusable for ${f.rule.ttlSeconds}s`}`,
    `expires     ${f.expiresAt}`,
    `fingerprint ${f.fingerprint}\n            (recomputed from the request file: OK)`,
    "masked body:",
    ...maskedExcerpt(f)
      .split("\n")
      .map((l) => `  ${l}`),
  ].join("\n");
}
