/**
 * The `custos gateway` and `custos login` commands as a user runs them: a YAML config, a
 * generated CA in the state dir, real kubectl, login tokens, TokenReview, policy hot reload
 * by file change, clean shutdown on SIGTERM.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { AGENT_TOKEN, kubeconfigYaml, kubectl, tempDir, testPolicy, TOKEN_FILE } from "./gateway-helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CUSTOS = path.join(ROOT, "bin", "custos.mjs");
const SA_TOKEN = "sa-token-for-bot-0123456789";

function custos(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("node", [CUSTOS, ...args], { cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
      });
    });
  });
}

let sim: Simulator;
let dir: string;
let child: ChildProcess;
let url: string;
let started = "";
let caPem: string;
let exited: Promise<number | null>;

beforeAll(async () => {
  sim = await startSimulator({
    token: "sim-token-cli",
    serviceAccountTokens: {
      [SA_TOKEN]: { username: "system:serviceaccount:default:bot", groups: ["agents"] },
    },
    seed: [
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web-0", namespace: "default" },
        spec: { containers: [{ name: "main", image: "x" }] },
      },
    ],
  });
  dir = await tempDir("custos-cli-");
  await writeFile(path.join(dir, "upstream.kubeconfig"), sim.kubeconfig());
  await writeFile(path.join(dir, "policy.json"), JSON.stringify(testPolicy()));
  await writeFile(path.join(dir, "tokens.csv"), TOKEN_FILE);
  await writeFile(
    path.join(dir, "gateway.yaml"),
    [
      "listen: 127.0.0.1:0",
      "ops: { listen: 127.0.0.1:0 }",
      "stateDir: state",
      "policy: policy.json",
      "upstream:",
      "  kubeconfig: upstream.kubeconfig",
      "  timeoutSeconds: 5",
      "auth:",
      "  tokenFile: tokens.csv",
      "  tokenReview: true",
      "evidence:",
      "  kind: jsonl",
      "  file: evidence/records.jsonl",
      "  fsync: true",
      "gatewayId: gw-cli",
      "",
    ].join("\n"),
  );
  child = spawn("node", [CUSTOS, "gateway", "--config", "gateway.yaml"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((r) => child.on("exit", (code) => r(code)));
  url = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out} ${err}`)), 20_000);
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      started = out;
      const m = /listening on (https:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
  });
  caPem = await readFile(path.join(dir, "state", "ca.crt"), "utf8");
});

afterAll(async () => {
  if (child.exitCode === null) child.kill("SIGKILL");
  await sim?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function kc(token: string, name: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, kubeconfigYaml({ server: url, caPem, token }));
  return f;
}

async function records(): Promise<EvidenceRecord[]> {
  return (await readFile(path.join(dir, "evidence", "records.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as EvidenceRecord);
}

describe("custos gateway (CLI)", () => {
  it("serves /livez, /readyz and /metrics on the ops listener from the YAML config", async () => {
    for (let i = 0; i < 50 && !/health and metrics on/.test(started); i++)
      await new Promise((r) => setTimeout(r, 50));
    const ops = /health and metrics on (http:\/\/127\.0\.0\.1:(\d+))/.exec(started);
    expect(ops?.[2]).toBeDefined();
    expect(ops![2]).not.toBe("9444"); // "ops: { listen: 127.0.0.1:0 }" was honoured
    expect(await (await fetch(`${ops![1]}/livez`)).text()).toBe("ok\n");
    expect((await fetch(`${ops![1]}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${ops![1]}/metrics`)).text()).toContain("custos_policy_info{policy_hash=");
  });

  it("--help documents the flags", async () => {
    const h = await custos(["gateway", "--help"], dir);
    expect(h.code).toBe(0);
    for (const flag of [
      "--config",
      "--listen",
      "--ops-listen",
      "--tls-cert",
      "--tls-ciphers",
      "--policy",
      "--upstream-kubeconfig",
      "--token-file",
      "--evidence",
      "--signing-key",
      "--pseudonym-key",
    ])
      expect(h.stdout).toContain(flag);
    const { loginCommand } = await import("../gateway/cli/login.ts");
    expect(loginCommand().helpInformation()).toContain("--purpose <id>");
  });

  it("--tls-ciphers: a list OpenSSL refuses is one line naming the fix, exit 2", async () => {
    const r = await custos(
      ["gateway", "--config", "gateway.yaml", "--tls-ciphers", "NOT-A-CIPHER", "--listen", "127.0.0.1:0"],
      dir,
    );
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain('tlsCiphers "NOT-A-CIPHER" is not a cipher list OpenSSL accepts');
    expect(r.stderr).toContain("remove it for the default");
  });

  it("serves kubectl with the generated CA; TokenReview identities work", async () => {
    const r = await kubectl(await kc(AGENT_TOKEN, "agent.kc"), ["get", "pods", "-o", "name"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("pod/web-0");
    const sa = await kubectl(await kc(SA_TOKEN, "sa.kc"), ["get", "pod", "web-0", "-o", "name"]);
    expect(sa.stdout.trim()).toBe("pod/web-0");
    const rec = (await records())
      .filter((x) => x.user.username === "system:serviceaccount:default:bot")
      .pop()!;
    expect(rec.user.extra?.["custos.dev/source"]).toEqual(["serviceaccount"]);
  });

  it("custos login exchanges a token for a purpose-bound one that plain kubectl uses", async () => {
    const tokenFile = path.join(dir, "agent.token");
    await writeFile(tokenFile, AGENT_TOKEN);
    const bad = await custos(
      [
        "login",
        "--server",
        url,
        "--token",
        `@${tokenFile}`,
        "--purpose",
        "nope",
        "--certificate-authority",
        "state/ca.crt",
      ],
      dir,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown purpose "nope"');
    const l = await custos(
      [
        "login",
        "--server",
        url,
        "--token",
        `@${tokenFile}`,
        "--purpose",
        "deploy",
        "--certificate-authority",
        "state/ca.crt",
      ],
      dir,
    );
    expect(l.stderr).toBe("");
    expect(l.code).toBe(0);
    const token = l.stdout.trim();
    expect(token.split(".")).toHaveLength(3);
    const r = await kubectl(await kc(token, "login.kc"), ["get", "pod", "web-0", "-o", "name"]);
    expect(r.stdout.trim()).toBe("pod/web-0");
    const rec = (await records()).filter((x) => x.objectRef?.name === "web-0").pop()!;
    expect(rec.custos.purpose).toBe("deploy");
    expect(rec.user.username).toBe("agent-1");
    expect(JSON.stringify(await records())).not.toContain(token);
  });

  it("custos login --key mints offline and writes a kubeconfig user and context", async () => {
    const { run } = await import("../gateway/cli/login.ts");
    const kcFile = path.join(dir, "ops.kubeconfig");
    await writeFile(kcFile, kubeconfigYaml({ server: url, caPem, token: "unused" }));
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string) => out.push(String(c)) > 0) as typeof process.stdout.write;
    let code: number;
    try {
      code = await run([
        "--key",
        path.join(dir, "state", "login.key"),
        "--as",
        "oper",
        "--as-group",
        "operators",
        "agents",
        "--purpose",
        "incident-42",
        "--ttl",
        "600",
        "--kubeconfig",
        kcFile,
        "--context",
        "incident",
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    expect(out.join("")).toContain("wrote user custos-incident-42 and context incident");
    const r = await kubectl(kcFile, ["--context", "incident", "get", "pod", "web-0", "-o", "name"]);
    expect(r.stdout.trim()).toBe("pod/web-0");
    const rec = (await records()).filter((x) => x.user.username === "oper").pop()!;
    expect(rec.custos.purpose).toBe("incident-42");
    expect(rec.user.extra?.["custos.dev/source"]).toEqual(["login"]);
  });

  it("reloads when the policy file changes and records the switch", async () => {
    const next = testPolicy([
      {
        id: "freeze",
        decision: "deny",
        reason: "change freeze",
        enforcement: "enforce",
        match: { resources: ["pods"] },
        source: { file: "p.ts", line: 1, column: 1 },
      },
    ]);
    const old = testPolicy().policyHash;
    await writeFile(path.join(dir, "policy.json"), JSON.stringify(next));
    const deadline = Date.now() + 5000;
    let rec: EvidenceRecord | undefined;
    while (!rec && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      rec = (await records()).find((x) => x.custos.type === "policy-reload");
    }
    expect(rec?.custos.extra).toEqual({ oldPolicyHash: old, newPolicyHash: next.policyHash });
    const r = await kubectl(await kc(AGENT_TOKEN, "agent2.kc"), ["get", "pods"]);
    expect(r.stderr).toContain("freeze");
    // an invalid policy is refused; the last good one stays
    await writeFile(path.join(dir, "policy.json"), "{not json");
    await new Promise((r) => setTimeout(r, 500));
    const again = await kubectl(await kc(AGENT_TOKEN, "agent3.kc"), ["get", "pods"]);
    expect(again.stderr).toContain("freeze");
  });

  it("stops cleanly on SIGTERM", async () => {
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const seqs = (await records()).map((r) => r.custos.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });
});
