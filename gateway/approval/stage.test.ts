import { describe, expect, it } from "vitest";
import type { ApprovalRequirement } from "../../sdk/schema/config.ts";
import type { ApprovalOperation, ApprovalOutcome, ApprovalService } from "../ports.ts";
import { NoApprovalBackend } from "./local.ts";
import { approvalStage } from "./stage.ts";

const op: ApprovalOperation = {
  identity: { subject: "a", groups: [], claims: {}, source: "token-file" },
  request: {
    isResourceRequest: true,
    path: "/api/v1/namespaces/d/pods/p",
    verb: "delete",
    apiPrefix: "api",
    apiGroup: "",
    apiVersion: "v1",
    namespace: "d",
    resource: "pods",
    subresource: "",
    name: "p",
    query: {},
  },
  bodySha256: "",
  ruleId: "r1",
  policyHash: "sha256:00",
};
const req = (o: Partial<ApprovalRequirement> = {}): ApprovalRequirement => ({
  group: "g",
  count: 1,
  ttlSeconds: 60,
  use: "ttl",
  wait: null,
  allowUnsigned: false,
  ...o,
});

function scripted(
  outcomes: ApprovalOutcome["status"][],
  consumeOk = true,
): ApprovalService & { consumed: string[]; checks: number } {
  const s = {
    consumed: [] as string[],
    checks: 0,
    async check(): Promise<ApprovalOutcome> {
      const st = outcomes[Math.min(s.checks++, outcomes.length - 1)];
      if (st === "granted") return { status: "granted", requestId: "q1", fingerprint: "f", grantId: "g1" };
      if (st === "denied") return { status: "denied", requestId: "q1", fingerprint: "f", reason: "no" };
      return {
        status: "pending",
        requestId: "q1",
        fingerprint: "f",
        reviewCommand: "custos approve q1",
        url: "https://x/pr/1",
      };
    },
    async consume(id: string) {
      s.consumed.push(id);
      return consumeOk;
    },
    async close() {},
  };
  return s;
}

function clock() {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
  };
}

describe("approval stage", () => {
  it("the stand-in backend denies with 'approval required'", async () => {
    const c = clock();
    const r = await approvalStage({ service: new NoApprovalBackend(), ...c }, op, req());
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain("approval required: no approval backend configured");
  });
  it("pending without wait: 403 naming the request and the review command", async () => {
    const r = await approvalStage({ service: scripted(["pending"]), ...clock() }, op, req());
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.httpStatus).toBe(403);
      expect(r.error.message).toContain("custos approve q1");
    }
  });
  it("holds the call while pending, then proceeds once granted (ttl grants are not consumed)", async () => {
    const s = scripted(["pending", "pending", "granted"]);
    const r = await approvalStage(
      { service: s, ...clock(), pollMs: 1000 },
      op,
      req({ wait: { timeoutSeconds: 10 } }),
    );
    expect(r).toEqual({ ok: true, approval: { requestId: "q1", fingerprint: "f", grantId: "g1" } });
    expect(s.checks).toBe(3);
    expect(s.consumed).toEqual([]);
  });
  it("gives up at the wait timeout", async () => {
    const s = scripted(["pending"]);
    const r = await approvalStage(
      { service: s, ...clock(), pollMs: 1000 },
      op,
      req({ wait: { timeoutSeconds: 3 } }),
    );
    expect(r.ok).toBe(false);
    expect(s.checks).toBe(4);
  });
  it("holds one attempt at most holdSliceMs, then 429 + Retry-After; retries do not extend the wait", async () => {
    const s = scripted(["pending"]);
    const c = clock();
    const deps = { service: s, ...c, pollMs: 2000, holdSliceMs: 50_000 };
    const rule = req({ wait: { timeoutSeconds: 300 } });
    const answers: { at: number; status: number; retryAfter?: string }[] = [];
    for (let attempt = 0; attempt < 12; attempt++) {
      const r = await approvalStage(deps, op, rule);
      if (r.ok) throw new Error("expected pending");
      const retryAfter = r.error.headers["retry-after"];
      answers.push({ at: c.now(), status: r.error.httpStatus, ...(retryAfter ? { retryAfter } : {}) });
      expect(r.approval).toEqual({ requestId: "q1", fingerprint: "f", url: "https://x/pr/1" });
      if (r.error.httpStatus === 403) {
        expect(r.error.code).toBe("APPROVAL_PENDING");
        break;
      }
      expect(r.error.code).toBe("APPROVAL_PENDING_RETRY");
      expect(r.error.reason).toBe("TooManyRequests");
      expect(r.error.message).toContain("custos approve q1");
      await c.sleep(Number(retryAfter) * 1000); // the client waits Retry-After, then retries
    }
    // 429 after each 50 s slice, 403 once 300 s have passed since the FIRST attempt
    expect(answers.map((a) => a.status)).toEqual([429, 429, 429, 429, 429, 403]);
    expect(answers.slice(0, 5).every((a) => a.retryAfter === "1")).toBe(true);
    expect(answers.at(-1)!.at).toBe(300_000);
    // after the wait timed out, a later attempt starts a fresh wait
    const again = await approvalStage(deps, op, rule);
    expect(!again.ok && again.error.httpStatus).toBe(429);
  });
  it("a held call granted in a later attempt proceeds", async () => {
    const s = scripted(["pending", "pending", "pending", "granted"]);
    const c = clock();
    const deps = { service: s, ...c, pollMs: 10_000, holdSliceMs: 15_000 };
    const rule = req({ wait: { timeoutSeconds: 60 } });
    const first = await approvalStage(deps, op, rule);
    expect(!first.ok && first.error.httpStatus).toBe(429);
    const second = await approvalStage(deps, op, rule);
    expect(second.ok).toBe(true);
  });
  it("single-use grants are consumed; a failed consume refuses the call", async () => {
    const ok = scripted(["granted"]);
    expect((await approvalStage({ service: ok, ...clock() }, op, req({ use: "once" }))).ok).toBe(true);
    expect(ok.consumed).toEqual(["g1"]);
    const used = await approvalStage(
      { service: scripted(["granted"], false), ...clock() },
      op,
      req({ use: "once" }),
    );
    expect(used.ok).toBe(false);
    if (!used.ok) expect(used.error.code).toBe("APPROVAL_ALREADY_USED");
  });
});
