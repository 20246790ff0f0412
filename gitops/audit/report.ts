/**
 * `custos audit report`: a summary an auditor can file for a period — activity by decision,
 * rule and user, every denial, every approval, what masking hid (counts only, never values),
 * recorded sessions. Built from the same partition-pruned walk as `query`.
 */
import type { EvidenceRecord } from "../../gateway/ports.ts";
import { listSessions, type WalkOptions, walkRecords } from "./query.ts";

export interface ReportEntry {
  time: string;
  gatewayId: string;
  seq: number | null;
  user: string;
  verb: string;
  object: string;
  ruleId: string;
  reason: string;
}

export interface ApprovalEntry extends ReportEntry {
  requestId: string;
  grantId: string | null;
  url: string | null;
}

export interface AuditReport {
  period: { since: string | null; until: string | null };
  gateways: {
    gatewayId: string;
    records: number;
    firstSeq: number | null;
    lastSeq: number | null;
    first: string | null;
    last: string | null;
  }[];
  totals: {
    records: number;
    byDecision: Record<string, number>;
    byType: Record<string, number>;
  };
  byRule: { ruleId: string; count: number; allow: number; deny: number; requireApproval: number }[];
  byUser: { user: string; count: number; denied: number; approvalRequired: number }[];
  denials: ReportEntry[];
  /** denials beyond the listed ones */
  denialsOmitted: number;
  approvals: ApprovalEntry[];
  masking: { recordsMasked: number; valuesMasked: number; byRule: Record<string, number> };
  sessions: { recordings: number; records: number; files: string[] };
}

export interface ReportOptions extends WalkOptions {
  /** how many denials to list in full (all are counted) */
  maxDenials?: number;
}

function objectOf(r: EvidenceRecord): string {
  const o = r.objectRef;
  if (!o) return r.requestURI;
  const res = o.subresource ? `${o.resource ?? ""}/${o.subresource}` : (o.resource ?? "");
  const group = o.apiGroup ? `.${o.apiGroup}` : "";
  return `${res}${group}${o.namespace ? ` ${o.namespace}/` : " "}${o.name ?? "*"}`;
}

function entry(r: EvidenceRecord): ReportEntry {
  return {
    time: r.stageTimestamp,
    gatewayId: r.custos.gatewayId ?? "",
    seq: r.custos.seq ?? null,
    user: r.user.username,
    verb: r.verb,
    object: objectOf(r),
    ruleId: r.custos.ruleId,
    reason: r.custos.reason,
  };
}

const inc = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

export async function buildReport(opts: ReportOptions): Promise<AuditReport> {
  const maxDenials = opts.maxDenials ?? 500;
  const byDecision: Record<string, number> = {};
  const byType: Record<string, number> = {};
  const rules = new Map<string, AuditReport["byRule"][number]>();
  const users = new Map<string, AuditReport["byUser"][number]>();
  const gws = new Map<string, AuditReport["gateways"][number]>();
  const denials: ReportEntry[] = [];
  let denialsOmitted = 0;
  const approvals: ApprovalEntry[] = [];
  const masking = { recordsMasked: 0, valuesMasked: 0, byRule: {} as Record<string, number> };
  let records = 0;
  let sessionRecords = 0;
  const walk: WalkOptions = { gitDir: opts.gitDir };
  if (opts.since !== undefined) walk.since = opts.since;
  if (opts.until !== undefined) walk.until = opts.until;
  if (opts.gatewayId !== undefined) walk.gatewayId = opts.gatewayId;
  if (opts.onProgress) walk.onProgress = opts.onProgress;

  for await (const { record: r, gatewayId } of walkRecords(walk)) {
    records++;
    const c = r.custos;
    inc(byDecision, c.decision);
    inc(byType, c.type);
    const rule = rules.get(c.ruleId) ?? { ruleId: c.ruleId, count: 0, allow: 0, deny: 0, requireApproval: 0 };
    rule.count++;
    if (c.decision === "allow" || c.decision === "deny" || c.decision === "requireApproval")
      rule[c.decision]++;
    rules.set(c.ruleId, rule);
    const u = users.get(r.user.username) ?? {
      user: r.user.username,
      count: 0,
      denied: 0,
      approvalRequired: 0,
    };
    u.count++;
    if (c.decision === "deny") u.denied++;
    if (c.decision === "requireApproval") u.approvalRequired++;
    users.set(r.user.username, u);
    const g = gws.get(gatewayId) ?? {
      gatewayId,
      records: 0,
      firstSeq: null,
      lastSeq: null,
      first: null,
      last: null,
    };
    g.records++;
    if (typeof c.seq === "number") {
      g.firstSeq = g.firstSeq === null ? c.seq : Math.min(g.firstSeq, c.seq);
      g.lastSeq = g.lastSeq === null ? c.seq : Math.max(g.lastSeq, c.seq);
    }
    g.first ??= r.stageTimestamp;
    g.last = r.stageTimestamp;
    gws.set(gatewayId, g);
    if (c.decision === "deny") {
      if (denials.length < maxDenials) denials.push(entry(r));
      else denialsOmitted++;
    }
    if (c.approval || c.type === "approval")
      approvals.push({
        ...entry(r),
        requestId: c.approval?.requestId ?? "",
        grantId: c.approval?.grantId ?? null,
        url: c.approval?.url ?? null,
      });
    const counts = c.masking?.counts;
    if (counts && Object.keys(counts).length > 0) {
      masking.recordsMasked++;
      for (const [k, n] of Object.entries(counts)) {
        if (typeof n !== "number") continue;
        masking.valuesMasked += n;
        inc(masking.byRule, k, n);
      }
    }
    if (c.type === "session") sessionRecords++;
  }
  const files = await listSessions(walk);
  return {
    period: { since: opts.since ?? null, until: opts.until ?? null },
    gateways: [...gws.values()].sort((a, b) => (a.gatewayId < b.gatewayId ? -1 : 1)),
    totals: { records, byDecision, byType },
    byRule: [...rules.values()].sort((a, b) => b.count - a.count || (a.ruleId < b.ruleId ? -1 : 1)),
    byUser: [...users.values()].sort((a, b) => b.count - a.count || (a.user < b.user ? -1 : 1)),
    denials,
    denialsOmitted,
    approvals,
    masking,
    sessions: { recordings: files.length, records: sessionRecords, files: files.map((f) => f.path) },
  };
}

const cell = (v: string | number | null) =>
  String(v ?? "")
    .replace(/\|/g, "\\|")
    .replace(/\n/g, " ");
function table(head: string[], rows: (string | number | null)[][]): string {
  if (rows.length === 0) return "_none_\n";
  return (
    [
      `| ${head.join(" | ")} |`,
      `|${head.map(() => " --- ").join("|")}|`,
      ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
    ].join("\n") + "\n"
  );
}

/** The report as Markdown, ready to attach to an audit file. */
export function reportMarkdown(r: AuditReport, meta: { repo: string; generatedAt: string }): string {
  const period = `${r.period.since ?? "the first record"} to ${r.period.until ?? "the last record"}`;
  const out: string[] = [];
  out.push("# custos evidence report", "");
  out.push(`- Repository: ${meta.repo}`, `- Period: ${period}`, `- Generated: ${meta.generatedAt}`);
  out.push(`- Records: ${r.totals.records}`, "");
  out.push(
    "Run `custos audit verify` on the same clone (with the allowed_signers file and saved checkpoints) before relying on this report: it summarises what the repository says, verify proves the repository was not altered.",
    "",
  );
  out.push(
    "## Gateways",
    "",
    table(
      ["gateway", "records", "seq range", "first", "last"],
      r.gateways.map((g) => [
        g.gatewayId,
        g.records,
        g.firstSeq === null ? "" : `${g.firstSeq}..${g.lastSeq}`,
        g.first,
        g.last,
      ]),
    ),
  );
  out.push(
    "## Decisions",
    "",
    table(
      ["decision", "records"],
      Object.entries(r.totals.byDecision)
        .sort()
        .map(([k, v]) => [k, v]),
    ),
  );
  out.push(
    "## Record types",
    "",
    table(
      ["type", "records"],
      Object.entries(r.totals.byType)
        .sort()
        .map(([k, v]) => [k, v]),
    ),
  );
  out.push(
    "## By rule",
    "",
    table(
      ["rule", "records", "allow", "deny", "approval required"],
      r.byRule.map((x) => [x.ruleId, x.count, x.allow, x.deny, x.requireApproval]),
    ),
  );
  out.push(
    "## By user",
    "",
    table(
      ["user", "records", "denied", "approval required"],
      r.byUser.map((x) => [x.user, x.count, x.denied, x.approvalRequired]),
    ),
  );
  out.push(
    `## Denials (${r.denials.length + r.denialsOmitted})`,
    "",
    table(
      ["time", "user", "verb", "object", "rule", "reason"],
      r.denials.map((d) => [d.time, d.user, d.verb, d.object, d.ruleId, d.reason]),
    ),
  );
  if (r.denialsOmitted > 0)
    out.push(
      `${r.denialsOmitted} more denials not listed; use \`custos audit query --decision deny\` for all of them.`,
      "",
    );
  out.push(
    `## Approvals (${r.approvals.length})`,
    "",
    table(
      ["time", "user", "verb", "object", "request", "grant", "link"],
      r.approvals.map((a) => [a.time, a.user, a.verb, a.object, a.requestId, a.grantId, a.url]),
    ),
  );
  out.push(
    "## Masking",
    "",
    `${r.masking.recordsMasked} responses or bodies had values masked; ${r.masking.valuesMasked} values in all (counts only: the evidence holds no PHI).`,
    "",
  );
  out.push(
    table(
      ["mask / detector", "values masked"],
      Object.entries(r.masking.byRule)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, v]),
    ),
  );
  out.push(
    "## Sessions",
    "",
    `${r.sessions.recordings} session recordings (asciicast), ${r.sessions.records} session records.`,
    "",
  );
  if (r.sessions.files.length > 0) out.push(...r.sessions.files.map((f) => `- \`${f}\``), "");
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}
