import { describe, expect, it } from "vitest";
import { request as fixtureRequest } from "../../test/masking-fixtures.ts";
import type { Identity } from "../ports.ts";
import { type CallFacts, callRecord, recordStatics } from "./record.ts";

const identity: Identity = {
  subject: "ci-bot",
  groups: ["ci-agents"],
  claims: { repository: "clinic/app", runId: "42" },
  source: "oidc",
};
const request = fixtureRequest({ path: "/api/v1/namespaces/phi-a/pods/p", name: "p" });
const facts: CallFacts = {
  auditID: "a1",
  requestURI: "/api/v1/namespaces/phi-a/pods/p",
  method: "GET",
  sourceIP: "127.0.0.1",
  received: new Date("2026-11-26T04:00:00.123Z"),
  completed: new Date("2026-11-26T04:00:00.456Z"),
  identity,
  request,
  code: 200,
  decision: "allow",
  effective: "allow",
  enforcement: "enforce",
  ruleId: "read",
  reason: "r",
  policyHash: "sha256:00",
};

describe("call records", () => {
  it("a record from parts prepared while the upstream worked equals one built at the end", () => {
    expect(callRecord(facts, recordStatics(facts))).toEqual(callRecord(facts));
    const { identity: _i, request: _r, ...anon } = facts;
    expect(callRecord(anon, recordStatics(anon))).toEqual(callRecord(anon));
  });

  it("records built from the same prepared parts share no objects", () => {
    const statics = recordStatics(facts);
    const a = callRecord(facts, statics);
    const b = callRecord({ ...facts, code: 500 }, statics);
    a.user.groups.push("changed");
    a.objectRef!.name = "changed";
    a.custos.jobRun!.runId = "changed";
    expect(b.user.groups).toEqual(["ci-agents"]);
    expect(b.objectRef!.name).toBe("p");
    expect(b.custos.jobRun!.runId).toBe("42");
    expect(callRecord(facts, statics)).toEqual(callRecord(facts));
  });
});
