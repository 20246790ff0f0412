import { describe, expect, it } from "vitest";
import {
  allow,
  approvalGroup,
  deny,
  detector,
  field,
  identities,
  mask,
  policy,
  purposes,
  READ,
  redact,
  requireApproval,
  reviewer,
  when,
  WRITE,
} from "../index.ts";
import type { PolicyDef, RuleDef } from "../builders/types.ts";
import { compilePolicy } from "./index.ts";

const KEY = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"A".repeat(43)} k`;
const ids = identities({ ci: { groups: ["ci"] }, ops: { groups: ["ops"] } });
const why = purposes({ treatment: "Treatment" });
const sec = approvalGroup("security", {
  reviewers: [
    reviewer({ githubId: 1, login: "a", keys: [KEY] }),
    reviewer({ githubId: 2, login: "b", keys: [KEY] }),
  ],
});

function compile(rules: RuleDef[], extra: Partial<Parameters<typeof policy>[0]> = {}) {
  return compilePolicy(
    policy({ name: "t", identities: ids, purposes: why, approvalGroups: [sec], rules, ...extra }),
  );
}
const codes = (r: ReturnType<typeof compile>) => r.problems.map((p) => `${p.code}@${p.path}`);

describe("build problems", () => {
  it("accepts a clean policy", () => {
    const r = compile([
      allow("a", {
        who: [ids.ci],
        verbs: READ,
        resources: ["deployments"],
        apiGroups: ["apps"],
        reason: "r",
      }),
    ]);
    expect(r.problems).toEqual([]);
    expect(r.config?.identities.ci).toMatchObject({ groups: ["ci"] });
  });

  it("DUPLICATE_ID for rules, masks and detectors", () => {
    const d1 = detector("d", { category: "ssn", pattern: /\d{3}-\d{2}-\d{4}/ });
    const d2 = detector("d", { category: "ssn", pattern: /\d{9}/ });
    const r = compile(
      [deny("x", { reason: "r", resources: ["secrets"] }), deny("x", { reason: "r", resources: ["nodes"] })],
      {
        masks: [mask("m", { detectors: [d1] }), mask("m", { detectors: [d2] })],
      },
    );
    expect(codes(r)).toEqual(
      expect.arrayContaining([
        "DUPLICATE_ID@rules[1]",
        "DUPLICATE_ID@masks[1]",
        "DUPLICATE_ID@masks[1].detectors[0]",
      ]),
    );
    expect(r.config).toBeUndefined();
  });

  it("UNKNOWN_IDENTITY, UNKNOWN_PURPOSE, UNKNOWN_APPROVAL_GROUP, UNKNOWN_DETECTOR", () => {
    const r = compile(
      [
        allow("a", { who: ["nobody"], purpose: ["why-not"], resources: ["pods"], reason: "r" }),
        requireApproval("b", { resources: ["nodes"], approval: { group: "ghosts" }, reason: "r" }),
      ],
      { masks: [mask("m", { resources: ["pods"], detectors: ["nope"] })] },
    );
    expect(codes(r)).toEqual(
      expect.arrayContaining([
        "UNKNOWN_IDENTITY@rules[0].who[0]",
        "UNKNOWN_PURPOSE@rules[0].purpose[0]",
        "UNKNOWN_APPROVAL_GROUP@rules[1].approval.group",
        "UNKNOWN_DETECTOR@masks[0].detectors[0]",
      ]),
    );
  });

  it("registers identities referenced only by rules, and refuses conflicting definitions", () => {
    const other = identities({ ci: { groups: ["someone-else"] } });
    const r = compile([allow("a", { who: [other.ci], resources: ["pods"], reason: "r" })]);
    expect(codes(r)).toContain("DEFINITION_CONFLICT@rules[0].who[0]");
    const extra = identities({ bot: { subjects: ["bot"] } });
    const ok = compile([
      allow("a", {
        who: [extra.bot],
        verbs: ["get"],
        resources: ["deployments"],
        apiGroups: ["apps"],
        reason: "r",
      }),
    ]);
    expect(ok.config?.identities.bot).toMatchObject({ subjects: ["bot"] });
  });

  it("INVALID_DURATION, INVALID_KEY, INVALID_PATTERN, SCHEMA_INVALID", () => {
    const badKeys = approvalGroup("bad", {
      reviewers: [reviewer({ githubId: 3, login: "c", keys: ["ssh-rsa AAAAB3Nza..."] })],
    });
    const r = compile(
      [
        requireApproval("a", {
          resources: ["nodes"],
          approval: { group: sec, ttl: "1 week" as never },
          reason: "r",
        }),
        requireApproval("b", {
          resources: ["nodes"],
          approval: { group: badKeys, allowUnsigned: true },
          reason: "r",
        }),
        deny("Bad ID", { resources: ["nodes"], reason: "r" }),
      ],
      {
        masks: [
          mask("m", {
            detectors: [
              detector("empty", { category: "x", pattern: /a*/ }),
              detector("bad", { category: "x", pattern: /x/ }),
            ],
          }),
        ],
      },
    );
    // a RegExp cannot be invalid once built, so forge the pattern text as a generated policy might
    const forged = compile([], {
      detectors: [{ ...detector("forged", { category: "x", pattern: /x/ }), pattern: "(" }],
    });
    expect(codes(r)).toEqual(
      expect.arrayContaining([
        "INVALID_DURATION@rules[0].approval.ttl",
        "INVALID_KEY@rules[1].approval.group.reviewers[0].keys[0]",
        "INVALID_PATTERN@masks[0].detectors[0]",
        "SCHEMA_INVALID@rules[2].id",
      ]),
    );
    expect(codes(forged)).toEqual(["INVALID_PATTERN@detectors[0]"]);
    // a context pattern is checked the same way, and carried into the config when valid
    const ctxBad = compile([], {
      detectors: [
        { ...detector("ctx-forged", { category: "x", pattern: /x/ }), contextPattern: "[" },
        detector("ctx-empty", { category: "x", pattern: /y/, contextPattern: /z*/ }),
      ],
    });
    expect(codes(ctxBad)).toEqual(["INVALID_PATTERN@detectors[0]", "INVALID_PATTERN@detectors[1]"]);
    const ok = compile([], {
      detectors: [detector("ctx", { category: "name", pattern: /x/, contextPattern: /[A-Z]\w+/u })],
    });
    expect(ok.problems).toEqual([]);
    expect(ok.config?.detectors.find((d) => d.id === "ctx")?.contextPattern).toBe("[A-Z]\\w+");
  });

  it("MISSING_APPROVAL and UNEXPECTED_APPROVAL (data from untyped code)", () => {
    const noApproval = {
      ...requireApproval("a", { resources: ["nodes"], approval: { group: sec }, reason: "r" }),
      spec: { resources: ["nodes"], reason: "r" },
    } as RuleDef;
    const stray = {
      ...deny("b", { resources: ["nodes"], reason: "r" }),
      spec: { resources: ["nodes"], reason: "r", approval: { group: sec } },
    } as RuleDef;
    expect(codes(compile([noApproval, stray]))).toEqual([
      "MISSING_APPROVAL@rules[0]",
      "UNEXPECTED_APPROVAL@rules[1].approval",
    ]);
  });

  it('INVALID_API_GROUP: "core", "v1" and "apps/v1" are not API groups (the core group is "")', () => {
    const r = compile(
      [
        deny("a", { verbs: WRITE, apiGroups: ["core"], resources: ["pods"], reason: "r" }),
        deny("b", { verbs: WRITE, apiGroups: ["", "v1"], resources: ["secrets"], reason: "r" }),
        allow("c", {
          who: [ids.ci],
          verbs: READ,
          apiGroups: ["apps/v1"],
          resources: ["deployments"],
          reason: "r",
        }),
      ],
      {
        masks: [
          mask("m", { apiGroups: ["core"], resources: ["configmaps"], fields: [field("data.*", redact())] }),
        ],
      },
    );
    expect(codes(r)).toEqual([
      "INVALID_API_GROUP@rules[0].apiGroups[0]",
      "INVALID_API_GROUP@rules[1].apiGroups[1]",
      "INVALID_API_GROUP@rules[2].apiGroups[0]",
      "INVALID_API_GROUP@masks[0].apiGroups[0]",
    ]);
    const [core, , versioned] = r.problems;
    expect(core?.location?.file).toMatch(/analyse\.test\.ts$/);
    expect(core?.location?.line).toBeGreaterThan(0);
    expect(core?.message).toContain('apiGroups: [""]');
    expect(versioned?.message).toContain('"apps"');
    // the core group and real groups are fine
    expect(
      compile([
        deny("d", { verbs: WRITE, apiGroups: [""], resources: ["pods"], reason: "r" }),
        deny("e", {
          verbs: WRITE,
          apiGroups: ["apps", "*.example.com"],
          resources: ["deployments"],
          reason: "r",
        }),
      ]).problems,
    ).toEqual([]);
  });

  it("NOT_A_POLICY for foreign objects in the lists", () => {
    const p = { ...policy({ name: "t", rules: [] }), rules: [{ id: "x" }] } as unknown as PolicyDef;
    expect(compilePolicy(p).problems.map((x) => x.code)).toEqual(["NOT_A_POLICY"]);
  });
});

describe("analyser", () => {
  it("RULE_SHADOWED", () => {
    const r = compile([
      allow("wide", {
        who: [ids.ci],
        verbs: READ,
        resources: ["pods/*", "deployments"],
        apiGroups: ["", "apps"],
        reason: "r",
      }),
      deny("narrow", {
        who: [ids.ci],
        verbs: ["get"],
        resources: ["pods/log"],
        apiGroups: [""],
        namespaces: ["a"],
        reason: "r",
      }),
    ]);
    // (the wide allow also reads pods in PHI namespaces with no mask)
    expect(codes(r)).toEqual(["PHI_READ_UNMASKED@rules[0]", "RULE_SHADOWED@rules[1]"]);
    expect(r.problems.every((p) => p.severity === "warning")).toBe(true);
    expect(r.config).toBeDefined();
  });

  it("does not call a rule shadowed when the earlier one is narrower", () => {
    const r = compile([
      deny("narrow", {
        who: [ids.ci],
        verbs: ["get"],
        resources: ["pods/log"],
        namespaces: ["a"],
        reason: "r",
      }),
      allow("wide", { who: [ids.ci], verbs: ["get"], resources: ["pods/*"], phi: false, reason: "r" }),
    ]);
    expect(r.problems).toEqual([]);
  });

  it("does not call a deny shadowed by an allow with the same body predicate: a write with no judgeable body only meets the deny", () => {
    const admin = when("RoleBinding", (rb) => rb.roleRef.name.eq("cluster-admin"));
    const on = {
      who: [ids.ci],
      apiGroups: ["rbac.authorization.k8s.io"],
      resources: ["rolebindings"],
    } as const;
    const r = compile([
      allow("admin-ok", { ...on, verbs: ["create", "patch"], body: admin, reason: "r" }),
      deny("admin-no", { ...on, verbs: ["create", "patch"], body: admin, reason: "r" }),
    ]);
    // a create with a cluster-admin body is allowed by the first rule; a JSON Patch (no judgeable
    // body) is denied by the second: it is reached, and the overlap is what to report
    expect(codes(r)).toEqual(["ALLOW_DENY_OVERLAP@rules[1]"]);
    // two allows (or a deny before an allow) with the same body do cover each other
    const allows = compile([
      allow("a1", { ...on, verbs: ["create"], body: admin, reason: "r" }),
      allow("a2", { ...on, verbs: ["create"], body: admin, reason: "r" }),
      deny("d1", { ...on, verbs: ["create"], body: admin, reason: "r" }),
      allow("a3", { ...on, verbs: ["create"], body: admin, reason: "r" }),
    ]);
    expect(codes(allows)).toContain("RULE_SHADOWED@rules[1]");
    expect(codes(allows)).toContain("RULE_SHADOWED@rules[3]");
    // and a deny that only meets requests the body always judges (no object writes) is shadowed
    const deletes = compile([
      allow("a", { ...on, verbs: ["delete"], body: admin, reason: "r" }),
      deny("d", { ...on, verbs: ["delete"], body: admin, reason: "r" }),
    ]);
    expect(codes(deletes)).toEqual(["RULE_SHADOWED@rules[1]"]);
  });

  it("RULE_NEVER_MATCHES", () => {
    const r = compile(
      [
        deny("empty", { verbs: [], reason: "r" }),
        deny("exec-get", { verbs: ["get"], resources: ["pods/exec"], reason: "r" }),
        deny("phi-default", { phi: true, namespaces: ["default"], reason: "r" }),
        deny("both", { resources: ["pods"], nonResourceURLs: ["/x"], reason: "r" }),
        deny("named-create", { verbs: ["create"], resources: ["configmaps"], names: ["x"], reason: "r" }),
        deny("ns-nodes", { resources: ["nodes"], namespaces: ["a"], reason: "r" }),
      ],
      { phiNamespaces: ["phi-*"] },
    );
    expect(codes(r)).toEqual(
      ["empty", "exec-get", "phi-default", "both", "named-create", "ns-nodes"].map(
        (_, i) => `RULE_NEVER_MATCHES@rules[${i}]`,
      ),
    );
  });

  it("RULE_NEVER_MATCHES: phi: true on cluster-scoped resources (they are never in a PHI namespace)", () => {
    const r = compile(
      [
        deny("phi-pvs", {
          verbs: ["delete"],
          resources: ["persistentvolumes", "nodes"],
          phi: true,
          reason: "r",
        }),
        deny("phi-ns", { verbs: ["delete"], resources: ["namespaces"], phi: true, reason: "r" }),
        deny("phi-pods", { verbs: ["delete"], resources: ["pods", "nodes"], phi: true, reason: "r" }),
      ],
      { phiNamespaces: ["phi-*"] },
    );
    expect(codes(r).filter((c) => c.startsWith("RULE_NEVER_MATCHES"))).toEqual([
      "RULE_NEVER_MATCHES@rules[0]",
    ]);
  });

  it("ALLOW_DENY_OVERLAP when an allow comes before an overlapping deny", () => {
    const r = compile([
      allow("reads", {
        who: [ids.ci],
        verbs: READ,
        resources: ["configmaps", "deployments"],
        apiGroups: ["", "apps"],
        phi: false,
        reason: "r",
      }),
      deny("phi-cm", { who: [ids.ci], resources: ["configmaps"], phi: true, reason: "r" }),
      deny("cm", { who: [ids.ci], resources: ["configmaps"], reason: "r" }),
      deny("ops-cm", { who: [ids.ops], resources: ["configmaps"], reason: "r" }),
    ]);
    expect(codes(r)).toEqual(["ALLOW_DENY_OVERLAP@rules[2]"]);
  });

  it("APPROVAL_UNSATISFIABLE and REVIEWER_WITHOUT_KEYS", () => {
    const keyless = approvalGroup("keyless", {
      reviewers: [reviewer({ githubId: 5, login: "k", keys: [] })],
    });
    const r = compile([
      requireApproval("three", {
        resources: ["nodes"],
        verbs: ["delete"],
        approval: { group: sec, count: 3 },
        reason: "r",
      }),
      requireApproval("keyless", {
        resources: ["nodes"],
        verbs: ["patch"],
        approval: { group: keyless },
        reason: "r",
      }),
      requireApproval("unsigned-ok", {
        resources: ["nodes"],
        verbs: ["update"],
        approval: { group: keyless, allowUnsigned: true },
        reason: "r",
      }),
    ]);
    expect(codes(r)).toEqual([
      "APPROVAL_UNSATISFIABLE@rules[0].approval",
      "APPROVAL_UNSATISFIABLE@rules[1].approval",
      "REVIEWER_WITHOUT_KEYS@approvalGroups.keyless.reviewers[0]",
    ]);
    expect(r.config).toBeUndefined();
  });

  it("PHI_READ_UNMASKED unless a mask covers the resource in PHI namespaces or an earlier rule denies it", () => {
    const reads = allow("phi-reads", {
      who: [ids.ci],
      verbs: READ,
      resources: ["configmaps", "secrets"],
      phi: true,
      purpose: [why.treatment],
      reason: "r",
    });
    expect(codes(compile([reads]))).toEqual(["PHI_READ_UNMASKED@rules[0]", "PHI_READ_UNMASKED@rules[0]"]);
    const masked = compile(
      [deny("no-secrets", { who: [ids.ci], resources: ["secrets"], reason: "r" }), reads],
      {
        masks: [mask("cm", { resources: ["configmaps"], phi: true, fields: [field("data.*", redact())] })],
      },
    );
    expect(masked.problems).toEqual([]);
    const labelOnly = compile([reads], {
      masks: [
        mask("cm", {
          resources: ["configmaps", "secrets"],
          labels: { pii: "yes" },
          fields: [field("data.*", redact())],
        }),
      ],
    });
    expect(codes(labelOnly)).toHaveLength(2);
  });

  it("IDENTITY_MATCHES_EVERYONE", () => {
    const anyone = identities({ anyone: {} });
    const r = compile([
      allow("a", {
        who: [anyone.anyone],
        verbs: ["get"],
        resources: ["deployments"],
        apiGroups: ["apps"],
        reason: "r",
      }),
    ]);
    expect(codes(r)).toEqual(["IDENTITY_MATCHES_EVERYONE@identities.anyone"]);
  });

  it("typed body predicates compile to data", () => {
    const r = compile([
      deny("admin-binding", {
        verbs: ["create", "update", "patch"],
        resources: ["rolebindings"],
        apiGroups: ["rbac.authorization.k8s.io"],
        body: when("RoleBinding", (rb) => rb.roleRef.name.eq("cluster-admin")),
        reason: "r",
      }),
    ]);
    expect(r.config?.rules[0]?.match.body).toEqual({
      op: "eq",
      path: ["roleRef", "name"],
      value: "cluster-admin",
    });
  });
});

describe("SUBRESOURCE_NOT_COVERED: a deny/approval on a resource and an allow on its subresources", () => {
  const approval = { group: sec };
  const ciWritesAll = allow("ci-writes", { who: [ids.ci], verbs: WRITE, reason: "r" });
  const subWarnings = (r: ReturnType<typeof compile>) =>
    r.problems.filter((p) => p.code === "SUBRESOURCE_NOT_COVERED");

  it("warns at the deny/approval rule's line, naming the subresources, the allow rule and the fix", () => {
    const r = compile([
      requireApproval("pod-writes", {
        who: [ids.ci],
        verbs: ["create", "update", "patch"],
        resources: ["pods"],
        approval,
        reason: "r",
      }),
      ciWritesAll,
    ]);
    const w = subWarnings(r);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ severity: "warning", path: "rules[0]" });
    expect(w[0]?.location?.file).toMatch(/analyse\.test\.ts$/);
    for (const sub of ["ephemeralcontainers", "eviction", "exec", "attach", "portforward", "proxy", "status"])
      expect(w[0]?.message).toContain(`pods/${sub}`);
    expect(w[0]?.message).not.toContain("pods/log");
    expect(w[0]?.message).toContain('"ci-writes"');
    expect(w[0]?.message).toContain('"pods/*"');
    // a warning, not an error: the config is still produced
    expect(r.config).toBeDefined();
  });

  it("deployments/scale allowed after an approval on deployment updates", () => {
    const r = compile([
      requireApproval("deploy-changes", {
        verbs: ["update", "patch"],
        apiGroups: ["apps"],
        resources: ["deployments"],
        approval,
        reason: "r",
      }),
      allow("ci-scales", {
        who: [ids.ci],
        verbs: ["patch"],
        apiGroups: ["apps"],
        resources: ["deployments/scale"],
        reason: "r",
      }),
    ]);
    expect(codes(r)).toEqual(["SUBRESOURCE_NOT_COVERED@rules[0]"]);
    expect(r.problems[0]?.message).toContain("deployments/scale");
    expect(r.problems[0]?.message).not.toContain("deployments/status");
  });

  it("no warning when the rule names the subresources, the callers differ, or an earlier rule closes them", () => {
    const denyPods = (who: (typeof ids)[keyof typeof ids][], resources: string[]) =>
      deny("no-pod-writes", { who, verbs: WRITE, resources: resources as never, reason: "r" });
    expect(subWarnings(compile([denyPods([ids.ci], ["pods", "pods/*"]), ciWritesAll]))).toEqual([]);
    // only ops may write, ci is denied: different callers
    expect(
      subWarnings(
        compile([
          denyPods([ids.ci], ["pods"]),
          allow("ops-writes", { who: [ids.ops], verbs: WRITE, reason: "r" }),
        ]),
      ),
    ).toEqual([]);
    // the allow rule lets read only
    expect(
      subWarnings(
        compile([
          denyPods([ids.ci], ["pods"]),
          allow("ci-reads", { who: [ids.ci], verbs: READ, reason: "r" }),
        ]),
      ),
    ).toEqual([]);
    // an earlier deny closes every subresource write
    expect(
      subWarnings(
        compile([
          deny("no-pod-subresources", { resources: ["pods/*"], reason: "r" }),
          denyPods([ids.ci], ["pods"]),
          ciWritesAll,
        ]),
      ),
    ).toEqual([]);
    // a delete-only rule is not about status or finalizers (an eviction deletes, though)
    const nsDelete = compile([
      deny("no-ns-delete", { verbs: ["delete", "deletecollection"], resources: ["namespaces"], reason: "r" }),
      ciWritesAll,
    ]);
    expect(subWarnings(nsDelete)).toEqual([]);
    const podDelete = compile([
      deny("no-pod-delete", { verbs: ["delete"], resources: ["pods"], reason: "r" }),
      ciWritesAll,
    ]);
    expect(subWarnings(podDelete)).toHaveLength(1);
    expect(subWarnings(podDelete)[0]?.message).toContain("pods/eviction");
    expect(subWarnings(podDelete)[0]?.message).not.toContain("pods/status");
  });
});
