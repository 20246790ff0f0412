/**
 * End to end, issue 6: real kubectl (operator context) applies a RoleBinding through a gateway
 * composed from a YAML config exactly as `custos gateway` composes it (HIPAA template compiled
 * with a test reviewer key, git evidence repo, local approvals backend), in front of the
 * Kubernetes API simulator. The call is refused with a 403 naming the request and the command;
 * the real `custos approve` (a child process) signs; kubectl's retry succeeds; the RoleBinding
 * exists upstream; `custos audit verify` accepts the evidence repo (with the published
 * checkpoints) and `custos audit query --request-id` links request -> review + signature ->
 * grant -> use -> the call's record. Then the hold mode (rule `wait`, after a hot reload): a
 * held kubectl completes once a reviewer approves in parallel.
 */
import { execFile, execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compose, type Composed } from "../gateway/config/compose.ts";
import { parseGatewayFileConfig } from "../gateway/config/file.ts";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { type RunningGateway, startGateway } from "../gateway/server/gateway.ts";
import { silentLogger } from "../gateway/server/runtime.ts";
import { LocalApprovalRepo } from "../gitops/approvals/local-repo.ts";
import { signingPayload, verifyEd25519 } from "../gitops/approvals/signature.ts";
import { parsePublicKey } from "../gitops/approvals/sshkey.ts";
import { compilePolicy } from "../sdk/compiler/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { hipaaBaseline } from "../templates/hipaa/baseline.ts";
import { kubeconfigYaml, kubectl, tempDir } from "./gateway-helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CUSTOS = path.join(ROOT, "bin", "custos.mjs");
const OPERATOR_TOKEN = "operator-token-e2e-0123456789";
const REVIEWER_ID = 4242;
const GATEWAY_ID = "gw-e2e";

function custos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("node", [CUSTOS, ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({
        code: err ? Number((err as { code?: number }).code ?? 1) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
      });
    });
  });
}

function compileHipaa(reviewerPub: string, wait: "20s" | false): { text: string; policyHash: string } {
  const r = compilePolicy(
    hipaaBaseline({
      reviewers: [{ githubId: REVIEWER_ID, login: "rita", keys: [reviewerPub] }],
      approvals: { count: 1, ttl: "10m", wait },
    }),
  );
  expect(r.problems.filter((p) => p.severity === "error")).toEqual([]);
  return { text: r.text!, policyHash: r.config!.policyHash };
}

function roleBinding(name: string): string {
  return [
    "apiVersion: rbac.authorization.k8s.io/v1",
    "kind: RoleBinding",
    "metadata:",
    `  name: ${name}`,
    "  namespace: default",
    "roleRef:",
    "  apiGroup: rbac.authorization.k8s.io",
    "  kind: ClusterRole",
    "  name: view",
    "subjects:",
    "  - kind: User",
    "    apiGroup: rbac.authorization.k8s.io",
    "    name: debug-bot",
    "",
  ].join("\n");
}

let sim: Simulator;
let dir: string;
let composed: Composed;
let gw: RunningGateway;
let operatorKc: string;
let simKc: string;
let reviewerKey: string;
let reviewerPub: string;
let gatewayPub: string;
let approvalsDir: string;
let evidenceDir: string;
let closed = false;

beforeAll(async () => {
  dir = await tempDir("custos-e2e-approval-");
  sim = await startSimulator({ token: "sim-token-e2e-approval" });
  for (const name of ["reviewer", "gateway"])
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.join(dir, name)]);
  reviewerKey = path.join(dir, "reviewer");
  reviewerPub = (await readFile(`${reviewerKey}.pub`, "utf8")).trim();
  gatewayPub = (await readFile(path.join(dir, "gateway.pub"), "utf8")).trim();
  await writeFile(path.join(dir, "policy.json"), compileHipaa(reviewerPub, false).text);
  await writeFile(path.join(dir, "upstream.kubeconfig"), sim.kubeconfig());
  await writeFile(path.join(dir, "tokens.csv"), `${OPERATOR_TOKEN},oscar,u-oscar,"operators"\n`);
  await writeFile(
    path.join(dir, "gateway.yaml"),
    [
      "listen: 127.0.0.1:0",
      "ops: { listen: 127.0.0.1:0 }",
      "stateDir: state",
      "policy: policy.json",
      "upstream: { kubeconfig: upstream.kubeconfig, timeoutSeconds: 10 }",
      "auth: { tokenFile: tokens.csv, login: false }",
      "evidence:",
      "  kind: git",
      "  dir: evidence.git",
      "  durability: machine",
      "  checkpointEvery: 1000",
      "signingKey: gateway",
      `gatewayId: ${GATEWAY_ID}`,
      "approvals:",
      "  kind: local",
      "  dir: approvals",
      "  pollIntervalSeconds: 0",
      "approvalPollMs: 150",
      "",
    ].join("\n"),
  );
  const { parse } = await import("yaml");
  const file = path.join(dir, "gateway.yaml");
  const c = parseGatewayFileConfig(parse(await readFile(file, "utf8")), file);
  approvalsDir = path.join(dir, "approvals");
  evidenceDir = path.join(dir, "evidence.git");
  composed = await compose(c, silentLogger);
  gw = await startGateway(composed.options);
  composed.bind(gw);
  operatorKc = path.join(dir, "operator.kubeconfig");
  await writeFile(operatorKc, kubeconfigYaml({ server: gw.url, caPem: gw.caPem, token: OPERATOR_TOKEN }));
  simKc = path.join(dir, "sim.kubeconfig");
  await writeFile(simKc, sim.kubeconfig());
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  if (!closed) await composed?.close();
  await sim?.stop();
});

/** kubectl apply -f <file> for a RoleBinding named `name` */
async function applyRoleBinding(name: string) {
  const f = path.join(dir, `${name}.yaml`);
  await writeFile(f, roleBinding(name));
  return kubectl(operatorKc, ["apply", "-f", f]);
}

const pendingId = (stderr: string) => /request (\S+) is pending/.exec(stderr)?.[1];

let firstRequestId = "";
let heldRequestId = "";

describe("approval end to end (local backend, git evidence)", () => {
  it("kubectl is told to get approval; custos approve signs; the retry succeeds", async () => {
    const first = await applyRoleBinding("debug-access");
    expect(first.code).not.toBe(0);
    expect(first.stderr).toContain("Forbidden");
    const id = pendingId(first.stderr);
    expect(id, first.stderr).toBeDefined();
    firstRequestId = id!;
    // the message names the exact command a reviewer runs
    expect(first.stderr).toContain(`custos approve ${id} --local ${approvalsDir} --key`);
    // nothing reached the API server
    expect((await kubectl(simKc, ["get", "rolebinding", "debug-access", "-n", "default"])).code).not.toBe(0);

    // the same command again is still pending on the SAME request (no duplicate request)
    const again = await applyRoleBinding("debug-access");
    expect(pendingId(again.stderr)).toBe(id);

    const approve = await custos(["approve", "--local", approvalsDir, "--key", reviewerKey, id!, "--yes"]);
    expect(approve.stderr).not.toMatch(/error/i);
    expect(approve.code).toBe(0);

    const retry = await applyRoleBinding("debug-access");
    expect(retry.stderr).toBe("");
    expect(retry.code).toBe(0);
    expect(retry.stdout).toContain("rolebinding.rbac.authorization.k8s.io/debug-access created");
    const upstream = await kubectl(simKc, [
      "get",
      "rolebinding",
      "debug-access",
      "-n",
      "default",
      "-o",
      "json",
    ]);
    expect(upstream.code).toBe(0);
    expect(JSON.parse(upstream.stdout).subjects[0].name).toBe("debug-bot");

    // the single-use grant is spent: the identical operation (same bytes: the object is gone
    // again, so kubectl apply sends the same create) needs a new approval
    expect((await kubectl(simKc, ["delete", "rolebinding", "debug-access", "-n", "default"])).code).toBe(0);
    const reuse = await applyRoleBinding("debug-access");
    expect(reuse.code).not.toBe(0);
    const nextId = pendingId(reuse.stderr);
    expect(nextId).toBeDefined();
    expect(nextId).not.toBe(id);
  }, 40_000);

  it("hold mode: after a hot reload to a policy that waits, a held kubectl completes once approved", async () => {
    const next = compileHipaa(reviewerPub, "20s");
    await composed.recordPolicy(next.text);
    await gw.reload(JSON.parse(next.text), "test");
    expect(gw.config().policyHash).toBe(next.policyHash);

    const repo = new LocalApprovalRepo(approvalsDir);
    const before = new Set(repo.listRequestIds());
    const started = Date.now();
    const held = applyRoleBinding("held-access");
    // the call is held: a new request appears while kubectl waits
    let id: string | undefined;
    for (let i = 0; i < 100 && !id; i++) {
      await new Promise((r) => setTimeout(r, 100));
      id = repo.listRequestIds().find((x) => !before.has(x));
    }
    expect(id).toBeDefined();
    heldRequestId = id!;
    const approve = await custos(["approve", "--local", approvalsDir, "--key", reviewerKey, id!, "--yes"]);
    expect(approve.code).toBe(0);
    const r = await held;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("rolebinding.rbac.authorization.k8s.io/held-access created");
    expect(Date.now() - started).toBeLessThan(20_000);
    expect((await kubectl(simKc, ["get", "rolebinding", "held-access", "-n", "default"])).code).toBe(0);
  }, 40_000);

  it("kubectl retries a create answered 429 + Retry-After silently (what a held call's slice relies on)", async () => {
    const f = path.join(dir, "retry.yaml");
    await writeFile(f, roleBinding("retry-access"));
    const before = sim.requests.length;
    const remove = sim.injectFault({
      method: "POST",
      path: /rolebindings/,
      times: 2,
      action: {
        kind: "status",
        status: 429,
        reason: "TooManyRequests",
        message: "custos: request x is still pending",
        headers: { "retry-after": "1" },
      },
    });
    try {
      const r = await kubectl(simKc, ["apply", "-f", f]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    } finally {
      remove();
    }
    const posts = sim.requests
      .slice(before)
      .filter((q) => q.method === "POST" && q.url.includes("rolebindings"));
    expect(posts).toHaveLength(3);
  }, 20_000);

  it("the evidence repo verifies and links operation -> request -> signed review -> grant -> use -> call", async () => {
    await gw.stop();
    await composed.close(); // flush + final checkpoint (published to <stateDir>/checkpoints.txt)
    closed = true;
    const allowed = path.join(dir, "allowed_signers");
    await writeFile(allowed, `${GATEWAY_ID}@custos.local ${gatewayPub}\n`);
    const checkpoints = path.join(dir, "state", "checkpoints.txt");
    expect(await readFile(checkpoints, "utf8")).toMatch(new RegExp(`^custos-evidence/${GATEWAY_ID}\\n`));
    const verify = await custos([
      "audit",
      "verify",
      evidenceDir,
      "--allowed-signers",
      allowed,
      "--checkpoint",
      checkpoints,
    ]);
    expect(verify.stdout).toContain("OK:");
    expect(verify.code).toBe(0);

    // both compiled policies (initial + reloaded) are in the repo
    const tree = execFileSync(
      "git",
      ["--git-dir", evidenceDir, "ls-tree", "-r", "--name-only", `evidence/${GATEWAY_ID}`],
      {
        encoding: "utf8",
      },
    );
    const policies = tree.split("\n").filter((l) => l.startsWith("policies/"));
    expect(policies).toHaveLength(2);
    expect(policies).toContain(
      `policies/${JSON.parse(await readFile(path.join(dir, "policy.json"), "utf8")).policyHash.slice(7)}.json`,
    );

    const q = await custos(["audit", "query", evidenceDir, "--request-id", firstRequestId, "--json"]);
    expect(q.code).toBe(0);
    const recs = q.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EvidenceRecord);
    const kind = (r: EvidenceRecord) =>
      r.custos.type === "approval"
        ? String(r.custos.extra?.event)
        : r.custos.type === "session"
          ? `session:${r.annotations?.["custos.dev/session"]}`
          : `call:${r.responseStatus?.code}`;
    // the granted create is in the evidence (write-ahead, stage RequestReceived) before the API
    // server sees it, then its call record
    expect(recs.map(kind)).toEqual([
      "request-opened",
      "call:403",
      "call:403",
      "review",
      "granted",
      "used",
      "session:received",
      "call:201",
    ]);
    const fp = recs[0]!.custos.approval!.fingerprint;
    expect(fp).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const r of recs) {
      expect(r.custos.approval?.requestId).toBe(firstRequestId);
      expect(r.custos.approval?.fingerprint).toBe(fp);
    }
    // reviewer -> signature: the review names the registered reviewer and carries a signature
    // that verifies with the policy's key over this fingerprint and request
    const review = recs.find((r) => kind(r) === "review")!;
    expect(review.custos.extra).toMatchObject({ reviewerId: REVIEWER_ID, verdict: "ok", counted: true });
    const sig = String(review.custos.extra?.signature);
    const pub = parsePublicKey(reviewerPub).publicKey;
    expect(
      verifyEd25519(signingPayload("approve", fp, firstRequestId), Buffer.from(sig, "base64"), pub),
    ).toBe(true);
    // grant -> use -> execution -> result: the same grant id on the grant, its use and the call
    const granted = recs.find((r) => kind(r) === "granted")!;
    const grantId = granted.custos.approval!.grantId!;
    expect(recs.find((r) => kind(r) === "used")!.custos.approval!.grantId).toBe(grantId);
    const call = recs.at(-1)!;
    expect(call.custos.approval!.grantId).toBe(grantId);
    // decided requireApproval, executed under the grant: 201 from the API server
    expect(call.custos.decision).toBe("requireApproval");
    expect(call.custos.effective).toBe("allow");
    expect(recs[1]!.custos.effective).toBe("deny"); // the first attempt, refused while pending
    expect(call.custos.ruleId).toBe("rbac-changes");
    expect(call.responseStatus?.code).toBe(201);
    expect(call.verb).toBe("create");
    expect(call.objectRef).toMatchObject({ resource: "rolebindings", namespace: "default" });
    expect(call.custos.bodySha256).toBe(granted.custos.bodySha256);
    // the held call: one record, no 403 in between, executed under its grant
    const held = await custos(["audit", "query", evidenceDir, "--request-id", heldRequestId, "--json"]);
    const heldRecs = held.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EvidenceRecord);
    expect(heldRecs.map(kind)).toEqual([
      "request-opened",
      "review",
      "granted",
      "used",
      "session:received",
      "call:201",
    ]);
    expect(heldRecs.at(-1)!.custos.policyHash).not.toBe(call.custos.policyHash); // decided by the reloaded policy
    // the same trail by fingerprint and by grant id
    const byGrant = await custos(["audit", "query", evidenceDir, "--grant-id", grantId, "--json"]);
    expect(
      byGrant.stdout
        .trim()
        .split("\n")
        .map((l) => kind(JSON.parse(l))),
    ).toEqual(["granted", "used", "session:received", "call:201"]);
    const byFp = await custos(["audit", "query", evidenceDir, "--fingerprint", fp, "--json"]);
    // the spent grant's follow-up attempt opened a new request for the same fingerprint
    expect(byFp.stdout.trim().split("\n").length).toBeGreaterThan(recs.length);
  }, 40_000);
});
