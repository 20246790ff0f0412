/**
 * End to end with the GitHub backend, composed from a YAML config as `custos gateway` does it:
 * token from the environment, GitHub Enterprise base URL, the webhook listener on its own port.
 * Real kubectl gets a 403 naming the pull request on the GitHub API stand-in; the real
 * `custos approve <PR URL>` submits a signed review; the stand-in delivers a signed
 * pull_request_review webhook to the gateway's listener (polling is off and re-checks are
 * throttled, so the webhook is what makes the grant happen); kubectl's retry succeeds, the
 * pull request is labelled and closed, and the call's record carries the PR URL and grant id.
 */
import { execFile, execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type Composed, compose } from "../gateway/config/compose.ts";
import { parseGatewayFileConfig } from "../gateway/config/file.ts";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { type RunningGateway, startGateway } from "../gateway/server/gateway.ts";
import { silentLogger } from "../gateway/server/runtime.ts";
import { LABEL_GRANTED } from "../gitops/approvals/github.ts";
import { compilePolicy } from "../sdk/compiler/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { hipaaBaseline } from "../templates/hipaa/baseline.ts";
import { kubeconfigYaml, kubectl, tempDir } from "./gateway-helpers.ts";
import { GitHubStandIn } from "./github/server.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CUSTOS = path.join(ROOT, "bin", "custos.mjs");
const OPERATOR_TOKEN = "operator-token-e2e-gh-0123456789";
const SECRET = "e2e-webhook-secret-0123456789";

function custos(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "node",
      [CUSTOS, ...args],
      { cwd: ROOT, timeout: 20_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } },
      (err, stdout, stderr) => {
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

let sim: Simulator;
let gh: GitHubStandIn;
let dir: string;
let composed: Composed;
let gw: RunningGateway;
let operatorKc: string;
let reviewer: { id: number; login: string; token: string };

beforeAll(async () => {
  dir = await tempDir("custos-e2e-gh-");
  sim = await startSimulator({ token: "sim-token-e2e-gh" });
  gh = await new GitHubStandIn().start();
  const bot = gh.addUser("custos-gateway[bot]", "Bot");
  reviewer = gh.addUser("rita");
  gh.addRepo("acme", "approvals");
  execFileSync("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "rita",
    "-f",
    path.join(dir, "reviewer"),
  ]);
  const pub = (await readFile(path.join(dir, "reviewer.pub"), "utf8")).trim();
  const r = compilePolicy(
    hipaaBaseline({ reviewers: [{ githubId: reviewer.id, login: "rita", keys: [pub] }] }),
  );
  await writeFile(path.join(dir, "policy.json"), r.text!);
  await writeFile(path.join(dir, "upstream.kubeconfig"), sim.kubeconfig());
  await writeFile(path.join(dir, "tokens.csv"), `${OPERATOR_TOKEN},oscar,u-oscar,"operators"\n`);
  const yaml = [
    "listen: 127.0.0.1:0",
    "ops: { listen: 127.0.0.1:0 }",
    "stateDir: state",
    "policy: policy.json",
    "upstream: { kubeconfig: upstream.kubeconfig }",
    "auth: { tokenFile: tokens.csv, login: false }",
    "evidence: { kind: jsonl, file: evidence.jsonl, fsync: false }",
    "approvals:",
    "  kind: github",
    `  baseUrl: ${gh.enterpriseUrl}`,
    "  owner: acme",
    "  repo: approvals",
    "  tokenEnv: CUSTOS_E2E_GH_TOKEN",
    "  webhookSecretEnv: CUSTOS_E2E_WEBHOOK_SECRET",
    "  webhook: { listen: 127.0.0.1:0, tls: false }",
    "  pollIntervalSeconds: 0",
    "  recheckIntervalSeconds: 600",
    "",
  ].join("\n");
  const file = path.join(dir, "gateway.yaml");
  await writeFile(file, yaml);
  const c = parseGatewayFileConfig(parseYaml(yaml), file);
  composed = await compose(c, silentLogger, {
    env: { CUSTOS_E2E_GH_TOKEN: bot.token, CUSTOS_E2E_WEBHOOK_SECRET: SECRET },
  });
  gw = await startGateway(composed.options);
  composed.bind(gw);
  gh.addHook({ url: composed.approval!.webhookUrl!, secret: SECRET });
  operatorKc = path.join(dir, "operator.kubeconfig");
  await writeFile(operatorKc, kubeconfigYaml({ server: gw.url, caPem: gw.caPem, token: OPERATOR_TOKEN }));
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await composed?.close();
  await gh?.stop();
  await sim?.stop();
});

describe("approval end to end (GitHub backend through the config file)", () => {
  it("the config wires the webhook listener: forged and misdirected deliveries are refused", async () => {
    const url = composed.approval!.webhookUrl!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/custos\/v1\/github-webhook$/);
    const body = JSON.stringify({ action: "submitted", pull_request: { number: 1 } });
    const forged = await fetch(url, {
      method: "POST",
      headers: {
        "x-github-event": "pull_request_review",
        "x-hub-signature-256": GitHubStandIn.sign("not-the-secret", body),
      },
      body,
    });
    expect(forged.status).toBe(401);
    const wrongPath = await fetch(url.replace(/github-webhook$/, "other"), { method: "POST", body });
    expect(wrongPath.status).toBe(404);
    const get = await fetch(url);
    expect(get.status).toBe(405);
  });

  it("kubectl -> 403 naming the PR -> custos approve <PR URL> -> webhook -> retry succeeds", async () => {
    const f = path.join(dir, "rb.yaml");
    await writeFile(
      f,
      [
        "apiVersion: rbac.authorization.k8s.io/v1",
        "kind: RoleBinding",
        "metadata: { name: gh-debug, namespace: default }",
        "roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view }",
        "subjects: [{ kind: User, apiGroup: rbac.authorization.k8s.io, name: debug-bot }]",
        "",
      ].join("\n"),
    );
    const first = await kubectl(operatorKc, ["apply", "-f", f]);
    expect(first.code).not.toBe(0);
    const m = /pending at (\S+)\. A reviewer runs: custos approve (\S+)/.exec(first.stderr);
    expect(m, first.stderr).not.toBeNull();
    const prUrl = m![1]!;
    expect(m![2]).toBe(prUrl);
    expect(prUrl).toMatch(/\/acme\/approvals\/pull\/\d+$/);
    const number = Number(prUrl.split("/").pop());
    expect(gh.pull("acme", "approvals", number).state).toBe("open");

    const approve = await custos(["approve", prUrl, "--key", path.join(dir, "reviewer"), "--yes"], {
      GITHUB_TOKEN: reviewer.token,
    });
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stdout).toMatch(/^approved request \S+ as @rita/);
    await gh.flushWebhooks();
    expect(gh.deliveryStatuses.at(-1)).toBe(202);
    // the webhook alone (polling is off) made the grant: the PR is closed before kubectl retries
    expect(gh.pull("acme", "approvals", number).state).toBe("closed");
    expect(await readFile(path.join(dir, "evidence.jsonl"), "utf8")).toMatch(/"event":"granted"/);

    const retry = await kubectl(operatorKc, ["apply", "-f", f]);
    expect(retry.stderr).toBe("");
    expect(retry.code).toBe(0);
    expect(retry.stdout).toContain("rolebinding.rbac.authorization.k8s.io/gh-debug created");
    const pr = gh.pull("acme", "approvals", number);
    expect(pr.state).toBe("closed");
    expect(pr.labels).toContain(LABEL_GRANTED);

    await composed.sink.close();
    const records = (await readFile(path.join(dir, "evidence.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EvidenceRecord)
      .filter((r) => r.custos.approval?.url === prUrl);
    const events = records.map((r) =>
      r.custos.type === "approval"
        ? String(r.custos.extra?.event)
        : r.custos.type === "session"
          ? `session:${r.annotations?.["custos.dev/session"]}`
          : `call:${r.responseStatus?.code}`,
    );
    // the granted create is written ahead (RequestReceived) before the API server sees it
    expect(events).toEqual([
      "request-opened",
      "call:403",
      "review",
      "granted",
      "used",
      "session:received",
      "call:201",
    ]);
    const grantId = records.find((r) => r.custos.extra?.event === "granted")!.custos.approval!.grantId;
    expect(records.at(-1)!.custos.approval!.grantId).toBe(grantId);
    expect(records.find((r) => r.custos.extra?.event === "review")!.custos.extra).toMatchObject({
      reviewerId: reviewer.id,
      verdict: "ok",
    });
  }, 40_000);
});
