import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, sha256Hex } from "../../sdk/lib/canonical.ts";
import type { GatewayConfig, Match, Rule } from "../../sdk/schema/config.ts";
import { SCHEMA_VERSION } from "../../sdk/schema/config.ts";
import type { DecisionInput, Identity } from "../ports.ts";
import { parseRequestInfo } from "../requestinfo/index.ts";
import { can, compileDecider, compileResources, evaluate, reach, rulesFor } from "./index.ts";

const src = { file: "policy.ts", line: 1, column: 1 };

function rule(id: string, decision: Rule["decision"], match: Match, extra: Partial<Rule> = {}): Rule {
  return {
    id,
    decision,
    reason: `because ${id}`,
    enforcement: "enforce",
    match,
    source: { ...src, line: id.length },
    ...extra,
  };
}

function config(rules: Rule[], over: Partial<GatewayConfig> = {}): GatewayConfig {
  const c: Omit<GatewayConfig, "policyHash"> = {
    schemaVersion: SCHEMA_VERSION,
    name: "test",
    defaultDecision: "deny",
    phiNamespaces: ["phi-*"],
    identities: {
      ci: { groups: ["ci"], source: src },
      ops: { subjects: ["alice", "bob@*"], source: src },
      deployer: { claims: { repository: ["acme/*"], ref: ["refs/heads/main"] }, source: src },
    },
    purposes: { treatment: { description: "t", source: src }, audit: { description: "a", source: src } },
    approvalGroups: {},
    rules,
    masks: [],
    detectors: [],
    ...over,
  };
  return { ...c, policyHash: `sha256:${sha256Hex(canonicalJson(c))}` } as GatewayConfig;
}

const ci: Identity = { subject: "job-1", groups: ["ci"], claims: {}, source: "oidc" };
const alice: Identity = { subject: "alice", groups: [], claims: {}, source: "token-file" };
const deployer: Identity = {
  subject: "x",
  groups: [],
  claims: { repository: "acme/app", ref: "refs/heads/main" },
  source: "oidc",
};

function input(
  identity: Identity,
  method: string,
  url: string,
  extra: Partial<DecisionInput> = {},
): DecisionInput {
  return { identity, request: parseRequestInfo(method, url), ...extra };
}

describe("evaluate", () => {
  it("denies by default and names the fix", () => {
    const r = evaluate(config([]), input(ci, "GET", "/api/v1/namespaces/a/pods"));
    expect(r).toMatchObject({
      decision: "deny",
      effective: "deny",
      ruleId: "default-deny",
      dryRunMatches: [],
    });
    expect(r.reason).toContain("list pods in namespace a");
    expect(r.remediation).toBeDefined();
  });

  it("first matching rule decides", () => {
    const c = config([
      rule("deny-secrets", "deny", { resources: ["secrets"] }),
      rule("allow-all", "allow", {}),
    ]);
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/secrets/s")).ruleId).toBe("deny-secrets");
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/s")).ruleId).toBe("allow-all");
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/s")).source).toEqual({ ...src, line: 9 });
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/s")).policyHash).toBe(c.policyHash);
  });

  it("records dry-run matches without letting them decide", () => {
    const c = config([
      rule("dry-deny", "deny", { resources: ["pods"] }, { enforcement: "dry-run" }),
      rule("allow-pods", "allow", { resources: ["pods"] }),
    ]);
    const r = evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods"));
    expect(r).toMatchObject({
      decision: "allow",
      effective: "allow",
      ruleId: "allow-pods",
      dryRunMatches: ["dry-deny"],
    });
    const none = evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/configmaps"));
    expect(none).toMatchObject({ ruleId: "default-deny", dryRunMatches: [] });
  });

  it("returns the approval requirement", () => {
    const approval = {
      group: "g",
      count: 1,
      ttlSeconds: 60,
      use: "once" as const,
      wait: null,
      allowUnsigned: false,
    };
    const c = config([
      rule(
        "rb",
        "requireApproval",
        { resources: ["rolebindings"], apiGroups: ["rbac.authorization.k8s.io"] },
        { approval },
      ),
    ]);
    const r = evaluate(c, input(ci, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings"));
    expect(r.decision).toBe("requireApproval");
    expect(r.approval).toEqual(approval);
    expect(can(c, input(ci, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings"))).toBe(
      false,
    );
  });

  it("matches verbs, api groups, names and namespaces by glob", () => {
    const c = config([
      rule("a", "allow", {
        verbs: ["get", "list"],
        apiGroups: ["apps"],
        resources: ["deployments"],
        namespaces: ["team-*"],
        names: ["web-*"],
      }),
    ]);
    expect(can(c, input(ci, "GET", "/apis/apps/v1/namespaces/team-x/deployments/web-1"))).toBe(true);
    expect(can(c, input(ci, "GET", "/apis/apps/v1/namespaces/team-x/deployments/db-1"))).toBe(false);
    expect(can(c, input(ci, "GET", "/apis/apps/v1/namespaces/other/deployments/web-1"))).toBe(false);
    expect(can(c, input(ci, "DELETE", "/apis/apps/v1/namespaces/team-x/deployments/web-1"))).toBe(false);
    expect(can(c, input(ci, "GET", "/apis/extensions/v1/namespaces/team-x/deployments/web-1"))).toBe(false);
    // a list has no name: a name-restricted rule does not match it
    expect(can(c, input(ci, "GET", "/apis/apps/v1/namespaces/team-x/deployments"))).toBe(false);
    // ... unless a metadata.name field selector names it (as kube-apiserver does)
    expect(
      can(
        c,
        input(ci, "GET", "/apis/apps/v1/namespaces/team-x/deployments?fieldSelector=metadata.name%3Dweb-2"),
      ),
    ).toBe(true);
    // a namespace glob never matches an all-namespaces list
    expect(can(c, input(ci, "GET", "/apis/apps/v1/deployments"))).toBe(false);
  });

  it('matches the core group with "" and every group with *', () => {
    const core = config([rule("a", "allow", { apiGroups: [""] })]);
    expect(can(core, input(ci, "GET", "/api/v1/namespaces/a/pods"))).toBe(true);
    expect(can(core, input(ci, "GET", "/apis/apps/v1/namespaces/a/deployments"))).toBe(false);
    const all = config([rule("a", "allow", { apiGroups: ["*"] })]);
    expect(can(all, input(ci, "GET", "/api/v1/namespaces/a/pods"))).toBe(true);
    const glob = config([rule("a", "allow", { apiGroups: ["*.k8s.io"] })]);
    expect(can(glob, input(ci, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"))).toBe(true);
  });

  it("matches RBAC resource forms", () => {
    const m = (p: string[], r: string, s = "") => compileResources(p)(r, s);
    expect(m(["pods"], "pods")).toBe(true);
    expect(m(["pods"], "pods", "exec")).toBe(false);
    expect(m(["pods/exec"], "pods", "exec")).toBe(true);
    expect(m(["pods/exec"], "pods", "log")).toBe(false);
    expect(m(["pods/*"], "pods", "log")).toBe(true);
    expect(m(["pods/*"], "pods")).toBe(false);
    expect(m(["*"], "pods", "exec")).toBe(true);
    expect(m(["*/scale"], "deployments", "scale")).toBe(true);
    expect(m(["*/scale"], "deployments")).toBe(false);
    expect(m(["{nodes,services}/proxy"], "services", "proxy")).toBe(true);
  });

  it("maps exec, attach and portforward to create on the subresource", () => {
    const c = config([
      rule("exec", "requireApproval", {
        verbs: ["create"],
        resources: ["pods/exec", "pods/attach", "pods/portforward"],
      }),
      rule("get", "allow", { verbs: ["get"] }),
    ]);
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/p/exec?command=sh", {})).ruleId).toBe(
      "exec",
    );
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/p/portforward")).ruleId).toBe("exec");
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods/p/log")).ruleId).toBe("get");
  });

  it("classifies PHI namespaces, cluster scope and all-namespaces lists", () => {
    const c = config([rule("phi", "deny", { phi: true }), rule("rest", "allow", { phi: false })]);
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/phi-a/pods")).ruleId).toBe("phi");
    expect(evaluate(c, input(ci, "DELETE", "/api/v1/namespaces/phi-a")).ruleId).toBe("phi");
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods")).ruleId).toBe("rest");
    expect(evaluate(c, input(ci, "GET", "/api/v1/nodes")).ruleId).toBe("rest");
    // listing pods across all namespaces reaches PHI namespaces too
    expect(evaluate(c, input(ci, "GET", "/api/v1/pods")).ruleId).toBe("phi");
    expect(evaluate(c, input(ci, "GET", "/api/v1/pods")).namespaceClass).toBe("all-namespaces");
    // phi is a resource-request field: it does not match /version
    expect(evaluate(c, input(ci, "GET", "/version")).ruleId).toBe("default-deny");
  });

  it("matches non-resource URLs RBAC-style", () => {
    const c = config([
      rule("disco", "allow", {
        verbs: ["get"],
        nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/version"],
      }),
    ]);
    for (const u of ["/api", "/api/v1", "/apis/apps/v1", "/openapi/v3/api/v1", "/version"]) {
      expect(can(c, input(ci, "GET", u)), u).toBe(true);
    }
    expect(can(c, input(ci, "GET", "/metrics"))).toBe(false);
    expect(can(c, input(ci, "POST", "/version"))).toBe(false);
    expect(can(c, input(ci, "GET", "/api/v1/namespaces/a/pods"))).toBe(false);
  });

  it("matches identities by subject glob, group and claims", () => {
    const c = config([
      rule("ci", "allow", { identities: ["ci"], resources: ["pods"] }),
      rule("ops", "allow", { identities: ["ops"], resources: ["configmaps"] }),
      rule("deployer", "allow", { identities: ["deployer"], resources: ["deployments"] }),
      rule("ghost", "allow", { identities: ["nobody-defined"] }),
    ]);
    expect(can(c, input(ci, "GET", "/api/v1/namespaces/a/pods"))).toBe(true);
    expect(can(c, input(alice, "GET", "/api/v1/namespaces/a/pods"))).toBe(false);
    expect(can(c, input(alice, "GET", "/api/v1/namespaces/a/configmaps"))).toBe(true);
    expect(
      can(c, input({ ...alice, subject: "bob@example.com" }, "GET", "/api/v1/namespaces/a/configmaps")),
    ).toBe(true);
    expect(can(c, input(deployer, "GET", "/apis/apps/v1/namespaces/a/deployments"))).toBe(true);
    expect(
      can(
        c,
        input(
          { ...deployer, claims: { repository: "acme/app", ref: "refs/heads/dev" } },
          "GET",
          "/apis/apps/v1/namespaces/a/deployments",
        ),
      ),
    ).toBe(false);
    expect(
      can(
        c,
        input(
          { ...deployer, claims: { repository: "evil/app", ref: "refs/heads/main" } },
          "GET",
          "/apis/apps/v1/namespaces/a/deployments",
        ),
      ),
    ).toBe(false);
    expect(can(c, input(alice, "GET", "/api/v1/namespaces/a/secrets"))).toBe(false);
  });

  it("matches purposes", () => {
    const c = config([
      rule("need", "deny", { phi: true, purpose: { kind: "absent" } }),
      rule("treat", "allow", { phi: true, purpose: { kind: "anyOf", ids: ["treatment"] } }),
      rule("any", "allow", { purpose: { kind: "present" }, resources: ["configmaps"] }),
    ]);
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/phi-a/pods")).ruleId).toBe("need");
    expect(
      evaluate(c, input(ci, "GET", "/api/v1/namespaces/phi-a/pods", { purpose: "treatment" })).ruleId,
    ).toBe("treat");
    expect(
      evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/configmaps", { purpose: "audit" })).ruleId,
    ).toBe("any");
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/configmaps")).ruleId).toBe("default-deny");
    // a purpose the policy does not name is no purpose at all
    expect(
      evaluate(c, input(ci, "GET", "/api/v1/namespaces/phi-a/pods", { purpose: "because" })).ruleId,
    ).toBe("need");
    expect(
      evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/configmaps", { purpose: "because" })).ruleId,
    ).toBe("default-deny");
  });

  it("evaluates body predicates existentially", () => {
    const privileged = {
      op: "some" as const,
      path: ["spec", "containers"],
      where: { op: "eq" as const, path: ["securityContext", "privileged"], value: true },
    };
    const c = config([
      rule("priv", "deny", { resources: ["pods"], verbs: ["create"], body: privileged }),
      rule("ok", "allow", { resources: ["pods"] }),
    ]);
    const pod = (priv: boolean) => ({
      spec: { containers: [{ name: "a" }, { name: "b", securityContext: { privileged: priv } }] },
    });
    expect(evaluate(c, input(ci, "POST", "/api/v1/namespaces/a/pods", { body: pod(true) })).ruleId).toBe(
      "priv",
    );
    expect(evaluate(c, input(ci, "POST", "/api/v1/namespaces/a/pods", { body: pod(false) })).ruleId).toBe(
      "ok",
    );
    // no body, or a JSON Patch: the predicate cannot judge the object, so the deny applies (fail closed)
    expect(evaluate(c, input(ci, "POST", "/api/v1/namespaces/a/pods")).ruleId).toBe("priv");
    // ...but reads carry no object and are judged on nothing
    expect(evaluate(c, input(ci, "GET", "/api/v1/namespaces/a/pods")).ruleId).toBe("ok");
  });

  it("fails closed on bodies a predicate cannot judge (missing, JSON Patch)", () => {
    const priv = { op: "eq" as const, path: ["spec", "template", "spec", "hostNetwork"], value: true };
    const c = config([
      rule("deny-host-net", "deny", { resources: ["deployments"], body: priv }),
      rule("allow-safe", "allow", { resources: ["deployments"], body: { op: "not", arg: priv } }),
    ]);
    const url = "/apis/apps/v1/namespaces/a/deployments/web";
    const jsonPatch = [{ op: "replace", path: "/spec/template/spec/hostNetwork", value: true }];
    expect(evaluate(c, input(ci, "PATCH", url, { body: jsonPatch })).ruleId).toBe("deny-host-net");
    expect(evaluate(c, input(ci, "PUT", url)).ruleId).toBe("deny-host-net");
    const merge = { spec: { template: { spec: { hostNetwork: false } } } };
    expect(evaluate(c, input(ci, "PATCH", url, { body: merge })).ruleId).toBe("allow-safe");
    // an allow rule with a predicate never matches an undecidable body, even without the deny before it
    const allowOnly = config([
      rule("allow-safe", "allow", { resources: ["deployments"], body: { op: "not", arg: priv } }),
    ]);
    expect(evaluate(allowOnly, input(ci, "PATCH", url, { body: jsonPatch })).ruleId).toBe("default-deny");
    // connect subresources carry no object: a predicate rule does not capture them
    const exec = config([rule("deny-body", "deny", { body: priv }), rule("all", "allow", {})]);
    expect(evaluate(exec, input(ci, "POST", "/api/v1/namespaces/a/pods/p/exec")).ruleId).toBe("all");
  });

  it("evaluates each predicate op", () => {
    const body = { a: { b: [1, 5, "x"], c: "hello-world", d: null, e: { k1: { v: 1 }, k2: { v: 2 } } } };
    const ok = (p: NonNullable<Match["body"]>) =>
      can(
        config([rule("r", "allow", { body: p })]),
        input(ci, "POST", "/api/v1/namespaces/a/pods", { body }),
      );
    expect(ok({ op: "exists", path: ["a", "c"] })).toBe(true);
    expect(ok({ op: "exists", path: ["a", "d"] })).toBe(false);
    expect(ok({ op: "exists", path: ["a", "zz"] })).toBe(false);
    expect(ok({ op: "eq", path: ["a", "b", "*"], value: 5 })).toBe(true);
    expect(ok({ op: "eq", path: ["a", "b", "1"], value: 5 })).toBe(true);
    expect(ok({ op: "eq", path: ["a", "b", "0"], value: 5 })).toBe(false);
    expect(ok({ op: "eq", path: ["a", "e", "k1"], value: { v: 1 } })).toBe(true);
    expect(ok({ op: "in", path: ["a", "c"], values: ["x", "hello-world"] })).toBe(true);
    expect(ok({ op: "glob", path: ["a", "c"], pattern: "hello-*" })).toBe(true);
    expect(ok({ op: "glob", path: ["a", "b", "*"], pattern: "*" })).toBe(true);
    expect(ok({ op: "gt", path: ["a", "b", "*"], value: 4 })).toBe(true);
    expect(ok({ op: "gt", path: ["a", "b", "*"], value: 5 })).toBe(false);
    expect(ok({ op: "lt", path: ["a", "b", "*"], value: 2 })).toBe(true);
    expect(ok({ op: "some", path: ["a", "e"], where: { op: "eq", path: ["v"], value: 2 } })).toBe(true);
    expect(ok({ op: "some", path: ["a", "e"], where: { op: "eq", path: ["v"], value: 3 } })).toBe(false);
    expect(ok({ op: "not", arg: { op: "exists", path: ["nope"] } })).toBe(true);
    expect(
      ok({
        op: "and",
        args: [
          { op: "exists", path: ["a"] },
          { op: "exists", path: ["nope"] },
        ],
      }),
    ).toBe(false);
    expect(
      ok({
        op: "or",
        args: [
          { op: "exists", path: ["a"] },
          { op: "exists", path: ["nope"] },
        ],
      }),
    ).toBe(true);
  });

  it("reach fans out with * and never throws on odd shapes (property)", () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.array(fc.constantFrom("*", "0", "a", "b", "1"), { maxLength: 4 }),
        (v, path) => {
          const got = reach(v as never, path.length === 0 ? ["*"] : path);
          expect(Array.isArray(got)).toBe(true);
        },
      ),
    );
  });

  it("caches per policy and handles many calls quickly", () => {
    const rules = Array.from({ length: 200 }, (_, i) =>
      rule(`r${i}`, "allow", { namespaces: [`ns-${i}-*`], resources: ["pods"], verbs: ["get"] }),
    );
    const c = config(rules);
    const d = compileDecider(c);
    const inp = input(ci, "GET", "/api/v1/namespaces/ns-199-x/pods/p");
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) d.evaluate(inp);
    const perCall = (performance.now() - t0) / 10_000;
    expect(d.evaluate(inp).ruleId).toBe("r199");
    expect(perCall).toBeLessThan(0.5);
  });
});

describe("rulesFor", () => {
  it("lists the allow rules for an identity in a namespace", () => {
    const c = config([
      rule("deny-secrets", "deny", { identities: ["ci"], resources: ["secrets"] }),
      rule("pods", "allow", {
        identities: ["ci"],
        verbs: ["get", "list"],
        resources: ["pods"],
        namespaces: ["team-*"],
      }),
      rule("ops", "allow", { identities: ["ops"], resources: ["*"] }),
      rule("disco", "allow", { verbs: ["get"], nonResourceURLs: ["/api/*"] }),
    ]);
    const r = rulesFor(c, { identity: ci, namespace: "team-a" });
    expect(r.resourceRules).toEqual([{ verbs: ["get", "list"], apiGroups: ["*"], resources: ["pods"] }]);
    expect(r.nonResourceRules).toEqual([{ verbs: ["get"], nonResourceURLs: ["/api/*"] }]);
    expect(r.incomplete).toBe(true);
    expect(rulesFor(c, { identity: ci, namespace: "other" }).resourceRules).toEqual([]);
  });
});
