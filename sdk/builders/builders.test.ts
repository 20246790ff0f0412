import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  allow,
  and,
  annotation,
  approvalGroup,
  body,
  customResource,
  deny,
  detector,
  detectors,
  drop,
  extendPolicy,
  field,
  identities,
  label,
  mask,
  not,
  or,
  partial,
  policy,
  pseudonymize,
  purposes,
  READ,
  redact,
  requireApproval,
  when,
} from "../index.ts";
import { compilePolicy } from "../compiler/index.ts";
import { FieldPathError, formatFieldPath, parseFieldPath } from "./fieldpath.ts";

describe("field paths", () => {
  it.each([
    ["data.*", ["data", "*"]],
    ["spec.containers[*].env[*].value", ["spec", "containers", "*", "env", "*", "value"]],
    [
      'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
      ["metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"],
    ],
    ["metadata.labels['a.b/c']", ["metadata", "labels", "a.b/c"]],
    ["items[0].data", ["items", "0", "data"]],
    ["stringData.*", ["stringData", "*"]],
  ])("%s", (text, segs) => {
    expect(parseFieldPath(text)).toEqual(segs);
  });
  it.each(["", "data.", ".data", "data[", "data[x]", "a..b", 'a[""]', "a b", "a]"])("refuses %j", (text) => {
    expect(() => parseFieldPath(text)).toThrow(FieldPathError);
  });
  it("round-trips through formatFieldPath (property)", () => {
    const seg = fc.oneof(
      fc.constant("*"),
      fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,6}$/),
      fc.stringMatching(/^[a-z./-]{1,12}$/),
      fc.nat(20).map(String),
    );
    fc.assert(
      fc.property(
        fc.tuple(fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,6}$/), fc.array(seg, { maxLength: 5 })),
        ([head, rest]) => {
          const segs = [head, ...rest];
          expect(parseFieldPath(formatFieldPath(segs))).toEqual(segs);
        },
      ),
    );
  });
});

describe("mask builders", () => {
  it("make each strategy and field form", () => {
    expect(redact()).toEqual({ kind: "redact" });
    expect(partial({ keepLast: 4 })).toEqual({ kind: "partial", keepFirst: 0, keepLast: 4 });
    expect(pseudonymize()).toEqual({ kind: "pseudonymize" });
    expect(drop()).toEqual({ kind: "drop" });
    expect(annotation("a.b/c", drop())).toMatchObject({
      segments: ["metadata", "annotations", "a.b/c"],
      label: "annotation:a.b/c",
    });
    expect(label("team", pseudonymize())).toMatchObject({
      segments: ["metadata", "labels", "team"],
      label: "label:team",
    });
    expect(field("data.*", redact(), { base64: true, label: "secret" })).toMatchObject({
      base64: true,
      label: "secret",
    });
  });

  it("compile masks with selectors, fields and detectors (builder and library)", () => {
    const ssn = detector("my-ssn", {
      category: "ssn",
      pattern: /\b\d{3}-\d{2}-\d{4}\b/gi,
      strategy: partial({ keepLast: 4 }),
      validate: "ssn",
    });
    const r = compilePolicy(
      policy({
        name: "m",
        rules: [],
        masks: [
          mask("m1", {
            apiGroups: [""],
            resources: ["configmaps", customResource("widgets")],
            namespaces: ["phi-*"],
            labels: { pii: "true" },
            fields: [field("data.*", redact())],
            detectors: [ssn, detectors.email(), "my-ssn"],
          }),
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    const m = r.config!.masks[0]!;
    expect(m.match).toEqual({
      apiGroups: [""],
      resources: ["configmaps", "widgets"],
      namespaces: ["phi-*"],
      labels: { pii: "true" },
    });
    expect(m.detectors).toEqual(["my-ssn", "email"]);
    expect(r.config!.detectors.find((d) => d.id === "my-ssn")).toMatchObject({
      flags: "i",
      validate: "ssn",
      strategy: { kind: "partial", keepFirst: 0, keepLast: 4 },
    });
    expect(r.config!.detectors.find((d) => d.id === "email")?.source.file).toBe(
      "sdk/builders/builders.test.ts",
    );
  });
});

describe("rule builders", () => {
  it("return copies and never mutate their input", () => {
    const spec = { verbs: ["get" as const], resources: ["pods" as const], reason: "r" };
    const a = allow("a", spec);
    (spec.verbs as string[]).push("delete");
    expect(a.spec.verbs).toEqual(["get"]);
    expect(Object.isFrozen(a)).toBe(true);
    const base = policy({ name: "b", rules: [a] });
    const ext = extendPolicy(base, { rulesBefore: [deny("d", { resources: ["secrets"], reason: "r" })] });
    expect(base.rules.map((r) => r.id)).toEqual(["a"]);
    expect(ext.rules.map((r) => r.id)).toEqual(["d", "a"]);
  });

  it("record where they were called", () => {
    const r = deny("here", { resources: ["nodes"], reason: "r" });
    expect(r.source.file.endsWith("sdk/builders/builders.test.ts")).toBe(true);
    expect(r.source.line).toBeGreaterThan(0);
  });

  it("compile every matcher", () => {
    const ids = identities({ bot: { subjects: ["repo:acme/*"], claims: { workflow: ["deploy"] } } });
    const why = purposes({ treatment: "t", payment: "p" });
    const r = compilePolicy(
      policy({
        name: "all-matchers",
        phiNamespaces: ["phi-*", "clinic"],
        identities: ids,
        purposes: why,
        rules: [
          allow("every-field", {
            who: [ids.bot],
            verbs: READ,
            apiGroups: ["apps"],
            resources: ["deployments", "deployments/scale"],
            namespaces: ["team-*"],
            names: ["web-*"],
            phi: false,
            purpose: [why.treatment, "payment"],
            reason: "r",
            remediation: "x",
            description: "d",
            enforcement: "dry-run",
            framework: { name: "HIPAA", section: "164.312(b)" },
          }),
          allow("non-resource", {
            verbs: ["get"],
            nonResourceURLs: ["/healthz"],
            purpose: "required",
            reason: "r",
          }),
          deny("absent", { purpose: "absent", phi: true, reason: "r" }),
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    const [a, b, c] = r.config!.rules;
    expect(a!.match).toEqual({
      identities: ["bot"],
      verbs: ["get", "list", "watch"],
      apiGroups: ["apps"],
      resources: ["deployments", "deployments/scale"],
      namespaces: ["team-*"],
      names: ["web-*"],
      phi: false,
      purpose: { kind: "anyOf", ids: ["treatment", "payment"] },
    });
    expect(a).toMatchObject({
      enforcement: "dry-run",
      remediation: "x",
      description: "d",
      framework: { name: "HIPAA", section: "164.312(b)" },
    });
    expect(b!.match).toEqual({ verbs: ["get"], nonResourceURLs: ["/healthz"], purpose: { kind: "present" } });
    expect(c!.match.purpose).toEqual({ kind: "absent" });
    expect(r.config!.identities.bot).toMatchObject({
      subjects: ["repo:acme/*"],
      claims: { workflow: ["deploy"] },
    });
  });

  it("compile each approval form", () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"D".repeat(43)} k`;
    const g = approvalGroup("g", {
      reviewers: [
        { githubId: 1, login: "a", keys: [key] },
        { githubId: 2, login: "b", keys: [key] },
      ],
    });
    const r = compilePolicy(
      policy({
        name: "approvals",
        approvalGroups: [g],
        rules: [
          requireApproval("defaults", {
            verbs: ["create"],
            resources: ["rolebindings"],
            approval: { group: g },
            reason: "r",
          }),
          requireApproval("full", {
            verbs: ["update"],
            resources: ["rolebindings"],
            approval: { group: "g", count: 2, ttl: "8h", use: "ttl", wait: "10m", allowUnsigned: true },
            recordSession: true,
            reason: "r",
          }),
          requireApproval("seconds", {
            verbs: ["patch"],
            resources: ["rolebindings"],
            approval: { group: g, ttl: 90, wait: 30 },
            reason: "r",
          }),
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.config!.rules.map((x) => x.approval)).toEqual([
      { group: "g", count: 1, ttlSeconds: 3600, use: "once", wait: null, allowUnsigned: false },
      {
        group: "g",
        count: 2,
        ttlSeconds: 28800,
        use: "ttl",
        wait: { timeoutSeconds: 600 },
        allowUnsigned: true,
      },
      {
        group: "g",
        count: 1,
        ttlSeconds: 90,
        use: "once",
        wait: { timeoutSeconds: 30 },
        allowUnsigned: false,
      },
    ]);
    expect(r.config!.rules[1]!.recordSession).toBe(true);
  });
});

describe("typed predicates", () => {
  it("compile every op to data", () => {
    expect(when("Pod", (p) => p.spec.hostNetwork.eq(true))).toEqual({
      op: "eq",
      path: ["spec", "hostNetwork"],
      value: true,
    });
    expect(when("Pod", (p) => p.spec.containers.every((c) => c.image.glob("registry.acme.io/*")))).toEqual({
      op: "not",
      arg: {
        op: "some",
        path: ["spec", "containers"],
        where: { op: "not", arg: { op: "glob", path: ["image"], pattern: "registry.acme.io/*" } },
      },
    });
    expect(when("Pod", (p) => p.spec.containers.at(0).ports.each().containerPort.lt(1024))).toEqual({
      op: "lt",
      path: ["spec", "containers", "0", "ports", "*", "containerPort"],
      value: 1024,
    });
    expect(when("Deployment", (d) => d.spec.replicas.gt(10))).toEqual({
      op: "gt",
      path: ["spec", "replicas"],
      value: 10,
    });
    expect(when("ConfigMap", (c) => c.metadata.labels.team!.in(["a", "b"]))).toEqual({
      op: "in",
      path: ["metadata", "labels", "team"],
      values: ["a", "b"],
    });
    expect(when("Secret", (s) => s.type.exists())).toEqual({ op: "exists", path: ["type"] });
    expect(body((o) => o.get("spec.size").gt(3))).toEqual({ op: "gt", path: ["spec", "size"], value: 3 });
    expect(body((o) => o.get("spec").get("items[*].name").eq("x"))).toEqual({
      op: "eq",
      path: ["spec", "items", "*", "name"],
      value: "x",
    });
    const a = when("Pod", (p) => p.spec.hostPID.eq(true));
    const b = when("Pod", (p) => p.spec.hostIPC.eq(true));
    expect(and(a, or(b, not(a)))).toEqual({
      op: "and",
      args: [a, { op: "or", args: [b, { op: "not", arg: a }] }],
    });
  });

  it("refuse a comparison on the whole element", () => {
    expect(() =>
      when("Pod", (p) => p.spec.containers.some((c) => (c as unknown as { eq(v: unknown): never }).eq(1))),
    ).toThrow(/field path/);
  });
});
