/**
 * The `custos gateway` command itself wires approvals and git evidence: a spawned gateway
 * with `approvals: { kind: local }` answers kubectl's RoleBinding with the 403 naming the
 * local `custos approve` command; a policy file change reloads and the new policy lands in
 * the evidence repo; SIGTERM flushes, publishes the final checkpoint to
 * <stateDir>/checkpoints.txt and exits 0; `custos audit verify` accepts the repo with it.
 * Configuration mistakes exit 2 with a one-line fix.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicy } from "../sdk/compiler/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { hipaaBaseline } from "../templates/hipaa/baseline.ts";
import { kubeconfigYaml, kubectl, tempDir } from "./gateway-helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CUSTOS = path.join(ROOT, "bin", "custos.mjs");
const TOKEN = "operator-token-e2e-cli-0123456789";

function custos(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "node",
      [CUSTOS, ...args],
      { cwd, timeout: 20_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } },
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

function policyText(pub: string, name: string): string {
  const r = compilePolicy(hipaaBaseline({ name, reviewers: [{ githubId: 77, login: "rita", keys: [pub] }] }));
  return r.text!;
}

let sim: Simulator;
let dir: string;
let pub: string;

beforeAll(async () => {
  dir = await tempDir("custos-e2e-cli-");
  sim = await startSimulator({ token: "sim-token-e2e-cli" });
  for (const n of ["reviewer", "gateway"])
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", n, "-f", path.join(dir, n)]);
  pub = (await readFile(path.join(dir, "reviewer.pub"), "utf8")).trim();
  await writeFile(path.join(dir, "policy.json"), policyText(pub, "first"));
  await writeFile(path.join(dir, "upstream.kubeconfig"), sim.kubeconfig());
  await writeFile(path.join(dir, "tokens.csv"), `${TOKEN},oscar,u-oscar,"operators"\n`);
});
afterAll(async () => {
  await sim?.stop();
});

const common = [
  "stateDir: state",
  "policy: policy.json",
  "upstream: { kubeconfig: upstream.kubeconfig }",
  "auth: { tokenFile: tokens.csv, login: false }",
  "evidence: { kind: git, dir: evidence.git }",
  "signingKey: gateway",
  "gatewayId: gw-cli",
];

describe("custos gateway with approvals and git evidence", () => {
  it("configuration mistakes exit 2 naming the fix", async () => {
    await writeFile(
      path.join(dir, "gh.yaml"),
      [
        ...common,
        "approvals: { kind: github, owner: acme, repo: approvals, tokenEnv: CUSTOS_NO_SUCH_TOKEN }",
        "",
      ].join("\n"),
    );
    const gh = await custos(["gateway", "--config", "gh.yaml"], dir);
    expect(gh.code).toBe(2);
    expect(gh.stderr).toContain("CUSTOS_NO_SUCH_TOKEN");
    await writeFile(
      path.join(dir, "bad.yaml"),
      [...common, "approvals: { kind: lokal, dir: a }", ""].join("\n"),
    );
    const bad = await custos(["gateway", "--config", "bad.yaml"], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/approvals/);
    const flag = await custos(
      [
        "gateway",
        "--policy",
        "policy.json",
        "--upstream-kubeconfig",
        "upstream.kubeconfig",
        "--durability",
        "machine",
      ],
      dir,
    );
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("--durability applies to a git evidence repository");
  });

  it("403 names the local approve command; reload records the policy; SIGTERM publishes the checkpoint", async () => {
    await writeFile(
      path.join(dir, "gateway.yaml"),
      [
        "listen: 127.0.0.1:0",
        "ops: { listen: 127.0.0.1:0 }",
        ...common,
        "approvals: { kind: local, dir: approvals }",
        "",
      ].join("\n"),
    );
    const child: ChildProcess = spawn("node", [CUSTOS, "gateway", "--config", "gateway.yaml"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        const t = setTimeout(() => reject(new Error(`gateway did not start: ${stderr}`)), 20_000);
        child.stdout?.on("data", (c: Buffer) => {
          out += c.toString();
          const m = /listening on (https:\/\/\S+)/.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
      });
      const caPem = await readFile(path.join(dir, "state", "ca.crt"), "utf8");
      const kc = path.join(dir, "operator.kubeconfig");
      await writeFile(kc, kubeconfigYaml({ server: url, caPem, token: TOKEN }));
      const rb = path.join(dir, "rb.yaml");
      await writeFile(
        rb,
        [
          "apiVersion: rbac.authorization.k8s.io/v1",
          "kind: RoleBinding",
          "metadata: { name: cli-debug, namespace: default }",
          "roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view }",
          "subjects: [{ kind: User, apiGroup: rbac.authorization.k8s.io, name: debug-bot }]",
          "",
        ].join("\n"),
      );
      const r = await kubectl(kc, ["apply", "-f", rb]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(
          `custos approve \\S+ --local ${path.join(dir, "approvals").replace(/[/.]/g, "\\$&")} --key`,
        ),
      );

      // a changed policy file reloads (watched); its text goes into the evidence repo first
      await writeFile(path.join(dir, "policy.json"), policyText(pub, "second"));
      const deadline = Date.now() + 10_000;
      while (!/policy reloaded/.test(stderr) && Date.now() < deadline)
        await new Promise((x) => setTimeout(x, 100));
      expect(stderr).toContain("policy reloaded");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);

    const tree = execFileSync(
      "git",
      ["--git-dir", path.join(dir, "evidence.git"), "ls-tree", "-r", "--name-only", "evidence/gw-cli"],
      { encoding: "utf8" },
    );
    expect(tree.split("\n").filter((l) => l.startsWith("policies/"))).toHaveLength(2);
    const gwPub = (await readFile(path.join(dir, "gateway.pub"), "utf8")).trim();
    await writeFile(path.join(dir, "allowed_signers"), `gw-cli@custos.local ${gwPub}\n`);
    const v = await custos(
      [
        "audit",
        "verify",
        "evidence.git",
        "--allowed-signers",
        "allowed_signers",
        "--checkpoint",
        "state/checkpoints.txt",
      ],
      dir,
    );
    expect(v.stdout).toMatch(/checkpoint state\/checkpoints\.txt \(gw-cli, \d+ records\): consistent\n/);
    expect(v.code).toBe(0);
  }, 40_000);
});
