/**
 * What an approval binds: the query too. A grant is looked up by the operation's fingerprint;
 * before, the fingerprint held the path without its query, so a reviewer who approved
 * `deletecollection configmaps?labelSelector=app=tmp` (or `exec web-0 -- ls`) had also approved
 * `deletecollection configmaps` with no selector (or `exec web-0 -- rm …`) for as long as the
 * grant lasted. Through the gateway, the local approvals service and the simulator; the request
 * file shows the query masked (an identifier in an argument is never stored) and binds it whole.
 */

import { readFile } from "node:fs/promises";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonlEvidenceSink } from "../gateway/evidence/jsonl-sink.ts";
import { createMasker } from "../gateway/masking/index.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import { LocalApprovalService } from "../gitops/approvals/index.ts";
import type { Rule } from "../sdk/schema/config.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import {
  AGENT_TOKEN,
  call,
  startTestGateway,
  type TestGateway,
  tempDir,
  testPolicy,
  withHash,
} from "./gateway-helpers.ts";
import { detectors } from "./masking-fixtures.ts";

const SSN = "900-12-3456";
const SRC = { file: "approval-binding.test.ts", line: 1, column: 1 };

let sim: Simulator;
let t: TestGateway;
let approvalsDir: string;

const approveFirst: Rule = {
  id: "approve-bulk-and-exec",
  decision: "requireApproval",
  enforcement: "enforce",
  reason: "bulk deletes and exec need a reviewer",
  match: {
    verbs: ["deletecollection", "create"],
    resources: ["configmaps", "pods/exec"],
    identities: ["agents"],
  },
  approval: { group: "leads", count: 1, ttlSeconds: 600, use: "ttl", wait: null, allowUnsigned: false },
  source: SRC,
};

beforeAll(async () => {
  sim = await startSimulator({});
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  const { policyHash: _h, ...base } = testPolicy([approveFirst]);
  const config = withHash({ ...base, detectors: detectors() });
  const dir = await tempDir("custos-approval-binding-");
  approvalsDir = path.join(dir, "approvals");
  const sink = await JsonlEvidenceSink.open({
    file: path.join(dir, "evidence.jsonl"),
    gatewayId: "gw-b",
    fsync: false,
  });
  const approvals = new LocalApprovalService({
    dir: approvalsDir,
    approvalGroups: () => config.approvalGroups,
    evidence: sink,
    log: () => {},
  });
  await approvals.init();
  t = await startTestGateway(new Upstream(kc, { timeoutMs: 10_000 }), {
    config,
    sink,
    approval: approvals,
    maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(5) }),
  });
}, 30_000);

afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

/** the pending request a refused call names */
async function pending(method: string, p: string): Promise<string> {
  const r = await call(t.gw.url, method, p, { token: AGENT_TOKEN });
  expect(r.status, r.body).toBe(403);
  const s = JSON.parse(r.body);
  const id = /request (\S+) is pending/.exec(s.message)?.[1];
  expect(id, r.body).toBeDefined();
  // the Status says it to a program too: the code, the rule and the request
  expect(s.details.causes.map((c: { reason: string }) => c.reason)).toEqual([
    "custos.dev/APPROVAL_PENDING",
    "custos.dev/rule",
    "custos.dev/approval-request",
  ]);
  expect(s.details.causes[1].message).toBe("approve-bulk-and-exec");
  expect(s.details.causes[2].message).toBe(id);
  return id!;
}

async function requestFile(
  id: string,
): Promise<{ fingerprint: string; operation: { request: { path: string } } }> {
  return JSON.parse(await readFile(path.join(approvalsDir, "requests", `${id}.json`), "utf8"));
}

describe("an approval binds the query", () => {
  it("deletecollection: a selector is part of the operation; a wait parameter is not", async () => {
    const cms = "/api/v1/namespaces/default/configmaps";
    const some = await pending("DELETE", `${cms}?labelSelector=app%3Dtmp`);
    const all = await pending("DELETE", cms);
    expect(all).not.toBe(some);
    const [a, b] = [await requestFile(some), await requestFile(all)];
    expect(a.fingerprint).not.toBe(b.fingerprint);
    // what the reviewer reads names the selector
    expect(a.operation.request.path).toBe(`${cms}?labelSelector=app%3Dtmp`);
    // the same operation with another client timeout is the same pending request
    expect(await pending("DELETE", `${cms}?labelSelector=app%3Dtmp&timeoutSeconds=17`)).toBe(some);
  });

  it("exec: the command is part of the operation, masked in the request file", async () => {
    const exec = "/api/v1/namespaces/default/pods/web-0/exec";
    const q = (args: string[]) =>
      `?${args.map((a) => `command=${encodeURIComponent(a)}`).join("&")}&container=main&stdout=true`;
    const ls = await pending("POST", `${exec}${q(["ls"])}`);
    const rm = await pending("POST", `${exec}${q(["rm", "-rf", "/data"])}`);
    const swapped = await pending("POST", `${exec}${q(["-rf", "rm", "/data"])}`);
    expect(new Set([ls, rm, swapped]).size).toBe(3);
    expect((await requestFile(rm)).operation.request.path).toBe(
      `${exec}?command=rm&command=-rf&command=/data&container=main&stdout=true`,
    );
    // an identifier in an argument: masked for people to read, bound by its keyed digest
    const cat = await pending("POST", `${exec}${q(["cat", `/data/${SSN}`])}`);
    const f = await requestFile(cat);
    expect(f.operation.request.path).toMatch(
      /\/exec\?command=cat&command=\/data\/\[MASKED:ssn\]&container=main&stdout=true#[0-9a-f]+$/,
    );
    expect(JSON.stringify(f)).not.toContain(SSN);
    const other = await pending("POST", `${exec}${q(["cat", "/data/900-12-3457"])}`);
    expect((await requestFile(other)).fingerprint).not.toBe(f.fingerprint);
  });
});
