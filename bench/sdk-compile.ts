/**
 * Policy compile time and decision throughput.
 *   node --import tsx bench/sdk-compile.ts
 * Prints a JSON summary line, then a table.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { compileDecider } from "../gateway/decision/index.ts";
import type { Identity } from "../gateway/ports.ts";
import { parseRequestInfo } from "../gateway/requestinfo/index.ts";
import { compilePolicyFile } from "../sdk/compiler/index.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const template = path.join(root, "templates/hipaa/policy.ts");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const full: number[] = [];
const typecheck: number[] = [];
const fast: number[] = [];
let config: Awaited<ReturnType<typeof compilePolicyFile>>["config"];
let coldCpuMs = 0;
for (let i = 0; i < 3; i++) {
  const cpu0 = process.cpuUsage();
  const r = await compilePolicyFile(template);
  if (i === 0) {
    const u = process.cpuUsage(cpu0);
    coldCpuMs = Math.round((u.user + u.system) / 1000);
  }
  full.push(r.timings.totalMs);
  typecheck.push(r.timings.typecheckMs);
  config = r.config;
}
for (let i = 0; i < 5; i++)
  fast.push((await compilePolicyFile(template, { skipTypeCheck: true })).timings.totalMs);
if (config === undefined) throw new Error("template did not compile");

const decider = compileDecider(config);
const ci: Identity = { subject: "job", groups: ["ci-agents"], claims: {}, source: "oidc" };
const ops: Identity = { subject: "op", groups: ["operators"], claims: {}, source: "oidc" };
const requests = [
  {
    identity: ci,
    request: parseRequestInfo("GET", "/api/v1/namespaces/phi-clinic/pods"),
    purpose: "operations",
  },
  { identity: ci, request: parseRequestInfo("GET", "/api/v1/namespaces/default/secrets/x") },
  {
    identity: ops,
    request: parseRequestInfo("GET", "/api/v1/namespaces/phi-clinic/configmaps/c"),
    purpose: "treatment",
  },
  {
    identity: ops,
    request: parseRequestInfo("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings"),
  },
  { identity: ci, request: parseRequestInfo("GET", "/apis/apps/v1") },
];
const n = 200_000;
let t = performance.now();
for (let i = 0; i < n; i++) decider.evaluate(requests[i % requests.length]!);
const decideUs = ((performance.now() - t) * 1000) / n;
t = performance.now();
for (let i = 0; i < n; i++)
  parseRequestInfo("GET", "/api/v1/namespaces/phi-clinic/pods/web-0/log?container=main&follow=true");
const parseUs = ((performance.now() - t) * 1000) / n;

const summary = {
  templateRules: config.rules.length,
  compileColdMs: Math.round(full[0]!),
  compileFullMs: Math.round(median(full.slice(1))),
  typecheckMs: Math.round(median(typecheck.slice(1))),
  compileColdCpuMs: coldCpuMs,
  compileNoTypecheckMs: Math.round(median(fast)),
  decisionUs: Number(decideUs.toFixed(2)),
  parseRequestInfoUs: Number(parseUs.toFixed(2)),
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.stdout.write(
  [
    "",
    "| measure | median |",
    "| --- | --- |",
    `| compile HIPAA template, first in the process (cold type-check + evaluate + analyse) | ${summary.compileColdMs} ms |`,
    `| CPU time of that cold compile | ${summary.compileColdCpuMs} ms |`,
    `| compile HIPAA template again in the same process (warm) | ${summary.compileFullMs} ms |`,
    `| of which TypeScript type-check (warm) | ${summary.typecheckMs} ms |`,
    `| compile without type-check | ${summary.compileNoTypecheckMs} ms |`,
    `| one decision (${summary.templateRules} rules) | ${summary.decisionUs} µs |`,
    `| parseRequestInfo | ${summary.parseRequestInfoUs} µs |`,
    "",
  ].join("\n"),
);
