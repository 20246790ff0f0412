/**
 * `custos explain` and `custos policy test` promise the decision, rule and masks the gateway
 * applies to the same request and caller. These properties generate requests and callers and
 * compare with the gateway's own stages: the purpose check of gateway/server/call.ts (an
 * unknown purpose is a 400, never decided), request info, the decision engine, and the masking
 * stage's choice of masks.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { evaluate } from "../../gateway/decision/index.ts";
import { compilePolicy as compileMasks } from "../../gateway/masking/compile.ts";
import { parseRequestInfo } from "../../gateway/requestinfo/index.ts";
import { hipaaBaseline } from "../../templates/hipaa/baseline.ts";
import { compilePolicy } from "../compiler/index.ts";
import {
  allow,
  customResource,
  deny,
  field,
  identities,
  mask,
  policy,
  purposes,
  READ,
  redact,
} from "../index.ts";
import { compileIdentitySelector } from "../lib/match.ts";
import type { GatewayConfig } from "../schema/config.ts";
import { explainRequest, identityFor, masksFor, parseRequestWords } from "./common.ts";
import { runCase } from "./policy.ts";

const KEY = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"B".repeat(43)} r`;

function compiled(def: Parameters<typeof compilePolicy>[0]): GatewayConfig {
  const r = compilePolicy(def);
  if (r.config === undefined) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

const hipaa = compiled(hipaaBaseline({ reviewers: [{ githubId: 7, login: "r1", keys: [KEY] }] }));

const ids = identities({
  ops: { groups: ["operators"] },
  bots: { subjects: ["runner-[0-9]*", "{ci,cd}-bot"] },
  deployer: { claims: { repository: ["acme/{app,web}"], ref: ["refs/heads/main"] } },
});
/** a policy that names no purposes (the engine then accepts any; the gateway still refuses unknown ones) */
const noPurposes = compiled(
  policy({
    name: "np",
    identities: ids,
    rules: [
      deny("no-secrets", { resources: ["secrets"], reason: "no" }),
      allow("ops-read", { who: [ids.ops, ids.bots, ids.deployer], verbs: READ, reason: "reads" }),
      allow("present", { purpose: "required", verbs: ["get"], resources: ["pods"], reason: "p" }),
    ],
    masks: [
      mask("widgets", {
        apiGroups: ["*.example.com"],
        resources: [customResource("widgets")],
        fields: [field("spec.owner", redact())],
      }),
      mask("pods", { resources: ["pods"], phi: true, fields: [field("spec.nodeName", redact())] }),
      mask("cm", { apiGroups: [""], resources: ["config*" as never], fields: [field("data.*", redact())] }),
    ],
  }),
);
const why = purposes({ treatment: "t", operations: "o" });
const withPurposes = compiled(
  policy({
    name: "wp",
    identities: ids,
    purposes: why,
    rules: [
      deny("purpose-in-phi", { phi: true, purpose: "absent", reason: "declare" }),
      allow("ops-read", { who: [ids.ops], verbs: READ, purpose: [why.treatment], reason: "reads" }),
      allow("any-purpose", { purpose: "required", verbs: ["list"], reason: "p" }),
    ],
  }),
);
const CONFIGS: Record<string, GatewayConfig> = { hipaa, noPurposes, withPurposes };

// ---------------------------------------------------------------------------------------
// what the gateway does (gateway/server/call.ts identify + decide)

type GatewayAnswer = { status: 400; code: string } | { status: "decided"; decision: string; rule: string };

function gateway(
  config: GatewayConfig,
  c: { method: string; url: string; subject: string; groups: string[]; claims: Record<string, string> },
  purpose: string | undefined,
): GatewayAnswer {
  if (purpose !== undefined && !Object.hasOwn(config.purposes, purpose))
    return { status: 400, code: "PURPOSE_UNKNOWN" };
  const request = parseRequestInfo(c.method, c.url);
  const input: Parameters<typeof evaluate>[1] = {
    identity: { subject: c.subject, groups: c.groups, claims: c.claims, source: "oidc" },
    request,
  };
  if (purpose !== undefined) input.purpose = purpose;
  const out = evaluate(config, input);
  return { status: "decided", decision: out.decision, rule: out.ruleId };
}

// ---------------------------------------------------------------------------------------
// generators

const NAMESPACES = ["phi-clinic", "phi-records", "default", "team-a", "kube-system"];
const TARGETS: { prefix: string; resource: string; namespaced: boolean; subs: string[] }[] = [
  {
    prefix: "/api/v1",
    resource: "pods",
    namespaced: true,
    subs: ["", "exec", "attach", "portforward", "log", "status", "ephemeralcontainers", "eviction", "proxy"],
  },
  { prefix: "/api/v1", resource: "configmaps", namespaced: true, subs: [""] },
  { prefix: "/api/v1", resource: "secrets", namespaced: true, subs: [""] },
  { prefix: "/api/v1", resource: "services", namespaced: true, subs: ["", "proxy"] },
  { prefix: "/api/v1", resource: "nodes", namespaced: false, subs: ["", "proxy"] },
  { prefix: "/api/v1", resource: "persistentvolumes", namespaced: false, subs: [""] },
  { prefix: "/apis/apps/v1", resource: "deployments", namespaced: true, subs: ["", "scale", "status"] },
  { prefix: "/apis/rbac.authorization.k8s.io/v1", resource: "rolebindings", namespaced: true, subs: [""] },
  { prefix: "/apis/rbac.authorization.k8s.io/v1", resource: "clusterroles", namespaced: false, subs: [""] },
  { prefix: "/apis/clinic.example.com/v1", resource: "widgets", namespaced: true, subs: ["", "status"] },
];
const NON_RESOURCE = ["/version", "/healthz", "/openapi/v3", "/apis", "/metrics", "/logs/kube.log"];

const requestArb: fc.Arbitrary<{ method: string; url: string }> = fc.oneof(
  fc
    .record({
      t: fc.constantFrom(...TARGETS),
      ns: fc.option(fc.constantFrom(...NAMESPACES), { nil: undefined }),
      name: fc.option(fc.constantFrom("web-0", "intake", "phi-clinic"), { nil: undefined }),
      subIndex: fc.nat(),
      method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"),
      watch: fc.boolean(),
      nsObject: fc.boolean(),
    })
    .map(({ t, ns, name, subIndex, method, watch, nsObject }) => {
      if (nsObject && ns !== undefined) return { method, url: `/api/v1/namespaces/${ns}` };
      let url = t.prefix;
      if (t.namespaced && ns !== undefined) url += `/namespaces/${ns}`;
      url += `/${t.resource}`;
      if (name !== undefined) {
        url += `/${name}`;
        const sub = t.subs[subIndex % t.subs.length]!;
        if (sub !== "") url += `/${sub}`;
      }
      return { method, url: watch && method === "GET" ? `${url}?watch=true` : url };
    }),
  fc.record({
    method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"),
    url: fc.constantFrom(...NON_RESOURCE),
  }),
);

const callerArb = fc.record({
  // subjects that happen to read like a policy's identity names or groups are still just subjects
  subject: fc.constantFrom(
    "alice",
    "operators",
    "operator",
    "ops",
    "ci-agents",
    "ciAgents",
    "admins",
    "runner-7",
    "cd-bot",
    "system:serviceaccount:ci:runner",
  ),
  groups: fc.subarray([
    "ci-agents",
    "operators",
    "platform-admins",
    "github-actions",
    "system:authenticated",
  ]),
  claims: fc.constantFrom<Record<string, string>>(
    {},
    { repository: "acme/app", ref: "refs/heads/main" },
    { repository: "acme/other", ref: "refs/heads/main" },
  ),
});
const purposeArb = fc.constantFrom(
  undefined,
  "treatment",
  "operations",
  "payment",
  "incident-response",
  "bogus",
);

describe("policy test and explain decide as the gateway does", () => {
  it("a literal caller ({ subject, groups, claims }) gets the gateway's answer: decision and rule, or its 400", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(CONFIGS)),
        requestArb,
        callerArb,
        purposeArb,
        (name, req, caller, purpose) => {
          const config = CONFIGS[name]!;
          const want = gateway(config, { ...req, ...caller }, purpose);
          const t = {
            name: "generated",
            as: { subject: caller.subject, groups: caller.groups, claims: caller.claims },
            request: `${req.method} ${req.url}`,
            expect: { decision: "allow" as const },
            ...(purpose === undefined ? {} : { purpose }),
          };
          if (want.status === 400) {
            expect(() => runCase(config, t)).toThrow(/purpose/);
            return;
          }
          const got = runCase(config, t).actual;
          expect({ decision: got.decision, rule: got.rule }).toEqual({
            decision: want.decision,
            rule: want.rule,
          });
        },
      ),
      { numRuns: 600 },
    );
  });

  it("explain refuses a purpose the gateway refuses, even in a policy that names no purposes", () => {
    const req = parseRequestWords(["get", "pod", "web-0", "-n", "team-a"]);
    expect(() => explainRequest(noPurposes, req, { as: "alice" }, "treatment")).toThrow(/purpose/);
    expect(() => explainRequest(withPurposes, req, { as: "alice" }, "tretment")).toThrow(/purpose/);
    expect(explainRequest(withPurposes, req, { as: "alice" }, "treatment").decision.ruleId).toBe(
      "default-deny",
    );
  });

  it("the stand-in for a named identity is a caller the gateway takes for that identity", () => {
    const globs = fc.constantFrom(
      "repo:acme/*:ref:refs/heads/main",
      "runner-[0-9]*",
      "{ci,cd}-bot",
      "bot-?",
      "svc-@(a|b)",
      "team-+(x)",
      "acme/{app,web}",
      "[a-c]*",
      "**",
      "exact-name",
    );
    fc.assert(
      fc.property(
        fc.array(globs, { minLength: 1, maxLength: 3 }),
        fc.option(fc.array(globs, { minLength: 1, maxLength: 2 }), { nil: undefined }),
        (subjects, claimGlobs) => {
          const sel = {
            subjects,
            ...(claimGlobs === undefined ? {} : { claims: { repository: claimGlobs } }),
          };
          const config = {
            ...noPurposes,
            identities: { who: { ...sel, source: { file: "p.ts", line: 1, column: 1 } } },
          };
          const { identity, named } = identityFor(config, { as: "who" });
          expect(named).toBe("who");
          expect(compileIdentitySelector(sel)(identity)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the masks explain lists are the masks the gateway's masking stage applies", () => {
    fc.assert(
      fc.property(fc.constantFrom("hipaa", "noPurposes"), requestArb, (name, req) => {
        const config = CONFIGS[name]!;
        const info = parseRequestInfo(req.method, req.url);
        if (!info.isResourceRequest || info.namespace === "") return;
        const listed = masksFor(config, info)
          .filter((m) => m.whenLabels === undefined)
          .map((m) => m.id)
          .sort();
        const policy = compileMasks(config);
        const applied = [
          ...policy.applied(policy.requestCandidates(info), info.namespace, {}).maskIds,
        ].sort();
        expect(listed).toEqual(applied);
      }),
      { numRuns: 600 },
    );
  });

  it("a mask's apiGroups and resources globs select what they read as, in the gateway too", () => {
    const widget = parseRequestInfo("GET", "/apis/clinic.example.com/v1/namespaces/team-a/widgets/w1");
    const cm = parseRequestInfo("GET", "/api/v1/namespaces/team-a/configmaps/c1");
    const policy = compileMasks(noPurposes);
    expect(policy.applied(policy.requestCandidates(widget), "team-a", {}).maskIds).toEqual(["widgets"]);
    expect(policy.applied(policy.requestCandidates(cm), "team-a", {}).maskIds).toEqual(["cm"]);
  });
});
