/**
 * `custos demo` as a newcomer runs it (`npm start`): the real command in a child process,
 * real kubectl against the kubeconfig it writes, the real `custos approve` in "a second
 * terminal", then SIGTERM and the auditor's checks on the evidence it leaves behind.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLANTED, PLANTED_VALUES } from "../simulator/seed/planted.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = path.join(ROOT, "bin", "custos.mjs");

interface Ready {
  url: string;
  opsUrl: string;
  kubeconfig: string;
  evidence: string;
  allowedSigners: string;
  approvals: string;
  reviewerKey: string;
}

let dir: string;
let child: ChildProcess;
let ready: Ready;
let stderr = "";

async function kubectl(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(
      "kubectl",
      ["--kubeconfig", ready.kubeconfig, "--cache-dir", path.join(dir, "kcache"), ...args],
      {
        timeout: 20_000,
      },
    );
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === "number" ? err.code : 1,
      out: `${err.stdout ?? ""}${err.stderr ?? ""}`,
    };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "custos-demo-"));
  child = spawn(process.execPath, [BIN, "demo", "--dir", path.join(dir, "demo"), "--json", "--quiet"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  ready = await new Promise<Ready>((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(JSON.parse(line) as Ready);
    });
    child.once("exit", (code) => reject(new Error(`demo exited ${code} before ready: ${stderr}`)));
  });
}, 90_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("custos demo", () => {
  /** what kubectl printed for API objects: field rules reach every planted value there */
  const outputs: string[] = [];
  /** what exec streamed: free text, where only the detectors' patterns apply */
  const streams: string[] = [];

  it("lets the CI agent read pods in the PHI namespace, with its declared purpose", async () => {
    const r = await kubectl(["get", "pods"]);
    outputs.push(r.out);
    expect(r.code).toBe(0);
    expect(r.out).toContain("ehr-api-7d9f8b6c5-x2k4q");
  });

  it("denies the CI agent's secret read with the rule and its reason", async () => {
    const r = await kubectl(["get", "secrets"]);
    outputs.push(r.out);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("Forbidden");
    expect(r.out).toContain("no-secret-reads-by-agents");
  });

  it("masks PHI in the operator's ConfigMap read", async () => {
    const r = await kubectl(["--context", "operator", "get", "configmap", "patient-index", "-o", "yaml"]);
    outputs.push(r.out);
    expect(r.code).toBe(0);
    expect(r.out).toContain("[MASKED:");
  });

  it("gates exec into a PHI pod on a signed approval made with custos approve", async () => {
    const exec = [
      "--context",
      "operator",
      "exec",
      "ehr-api-7d9f8b6c5-x2k4q",
      "--",
      "cat",
      "/data/patients.csv",
    ];
    const first = await kubectl(exec);
    outputs.push(first.out);
    expect(first.code).not.toBe(0);
    const id = /request (\S+) is pending/.exec(first.out)?.[1];
    expect(id, first.out).toBeTruthy();
    expect(first.out).toContain(`custos approve ${id}`);

    // exactly as the demo tells a newcomer: the approvals repo is found beside the key
    const approve = await run(process.execPath, [BIN, "approve", "--key", ready.reviewerKey, id!, "--yes"], {
      timeout: 30_000,
    });
    expect(approve.stdout).toContain(`approved request ${id}`);

    const second = await kubectl(exec);
    streams.push(second.out);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("mrn,name,ssn");

    const third = await kubectl(exec);
    expect(third.code, "a single-use grant must not open a second session").not.toBe(0);
  });

  it("serves health and metrics to the operator: the calls above are counted", async () => {
    expect((await fetch(`${ready.opsUrl}/readyz`)).status).toBe(200);
    const m = await (await fetch(`${ready.opsUrl}/metrics`)).text();
    const allowed =
      /^custos_records_total\{type="call",decision="allow",effective="allow",code="2xx"\} (\d+)$/m.exec(m);
    expect(Number(allowed?.[1])).toBeGreaterThan(0);
    expect(m).toMatch(
      /^custos_records_total\{type="call",decision="deny",effective="deny",code="4xx"\} \d+$/m,
    );
  });

  it("never shows a planted identifier to the agents", () => {
    const objects = outputs.join("\n");
    expect(PLANTED_VALUES.filter((v) => objects.includes(v))).toEqual([]);
    // in free text, names are beyond what patterns can find (Safe Harbor names are masked by
    // field rules); every other planted identifier must be caught in the exec stream too
    const text = streams.join("\n");
    const patterned = PLANTED_VALUES.filter((v) => !(PLANTED.names as readonly string[]).includes(v));
    expect(patterned.filter((v) => text.includes(v))).toEqual([]);
    expect(text).toContain("[MASKED:");
  });

  it("stops cleanly on SIGTERM and leaves evidence that custos and plain git verify", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);

    const verify = await run(process.execPath, [
      BIN,
      "audit",
      "verify",
      ready.evidence,
      "--allowed-signers",
      ready.allowedSigners,
      "--json",
    ]);
    const result = JSON.parse(verify.stdout) as { ok: boolean; stats: { records: number } };
    expect(result.ok).toBe(true);
    expect(result.stats.records).toBeGreaterThanOrEqual(5);

    const head = (await run("git", ["-C", ready.evidence, "rev-parse", "HEAD"])).stdout.trim();
    await run("git", [
      "-C",
      ready.evidence,
      "-c",
      "gpg.format=ssh",
      "-c",
      `gpg.ssh.allowedSignersFile=${ready.allowedSigners}`,
      "verify-commit",
      head,
    ]);

    // the approval trail: the exec call that ran carries the grant of the signed review
    const query = await run(process.execPath, [
      BIN,
      "audit",
      "query",
      ready.evidence,
      "--resource",
      "pods",
      "--verb",
      "create",
      "--json",
    ]);
    const records = query.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            objectRef?: { subresource?: string };
            responseStatus: { code: number };
            custos: { approval?: { grantId?: string } };
          },
      )
      .filter((r) => r.objectRef?.subresource === "exec");
    const granted = records.filter((r) => r.custos.approval?.grantId);
    expect(granted.length).toBeGreaterThanOrEqual(1);

    const stored = await readFile(path.join(dir, "demo", "policy.json"), "utf8");
    expect(JSON.parse(stored).name).toBe("hipaa-demo");
  });
});
