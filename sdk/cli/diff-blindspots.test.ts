/**
 * `custos policy diff` promises every change in effective access between two configs, and
 * nothing that did not change. Each case below is a change a reviewer must see.
 */
import { describe, expect, it } from "vitest";
import { compilePolicy } from "../compiler/index.ts";
import {
  allow,
  approvalGroup,
  customResource,
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
} from "../index.ts";
import type { PolicySpec } from "../builders/policy.ts";
import type { PurposeDef } from "../builders/types.ts";
import type { GatewayConfig } from "../schema/config.ts";
import { diffConfigs, formatDiffMarkdown } from "./diff.ts";

const KEY = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"C".repeat(43)} k`;
const group = approvalGroup("sec", {
  reviewers: [
    { githubId: 1, login: "a", keys: [KEY] },
    { githubId: 2, login: "b", keys: [KEY] },
  ],
});

function build(spec: Partial<PolicySpec> & Pick<PolicySpec, "rules">): GatewayConfig {
  const r = compilePolicy(policy({ name: "p", ...spec }));
  if (r.config === undefined) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

describe("policy diff shows every change in effective access", () => {
  const ids = identities({ ops: { groups: ["operators"] } });
  const strict = requireApproval("exec-phi", {
    verbs: ["create"],
    resources: ["pods/exec"],
    phi: true,
    approval: { group, count: 2 },
    recordSession: true,
    reason: "exec into PHI",
  });
  const loose = requireApproval("exec-any", {
    verbs: ["create"],
    resources: ["pods/exec"],
    approval: { group, count: 1 },
    reason: "exec",
  });

  it("a rule reordered so another rule with a weaker approval now decides", () => {
    const before = build({ identities: ids, rules: [strict, loose] });
    const after = build({ identities: ids, rules: [loose, strict] });
    const d = diffConfigs(before, after);
    expect(d.empty).toBe(false);
    const row = d.access.find((c) => c.resource === "pods/exec" && c.namespaceClass === "phi");
    expect(row).toMatchObject({ before: { rule: "exec-phi" }, after: { rule: "exec-any" } });
    expect(formatDiffMarkdown(d)).toContain("1 of sec");
  });

  it("an identity's selector widened (a group added) is a change", () => {
    const rules = [
      allow("ops-read", {
        who: [identities({ ops: { groups: ["operators"] } }).ops],
        verbs: READ,
        reason: "r",
      }),
    ];
    const before = build({ rules });
    const widened = identities({ ops: { groups: ["operators", "system:authenticated"] } });
    const after = build({ rules: [allow("ops-read", { who: [widened.ops], verbs: READ, reason: "r" })] });
    const d = diffConfigs(before, after);
    expect(d.empty).toBe(false);
    expect(formatDiffMarkdown(d)).toContain("system:authenticated");
  });

  it("PHI namespaces narrowed, so a phi: true mask no longer applies to some namespaces", () => {
    const spec = {
      identities: ids,
      rules: [allow("ops-read", { who: [ids.ops], verbs: READ, reason: "r" })],
      masks: [mask("cm", { resources: ["configmaps"], phi: true, fields: [field("data.*", redact())] })],
    };
    const before = build({ ...spec, phiNamespaces: ["phi-*"] });
    const after = build({ ...spec, phiNamespaces: ["phi-clinic"] });
    const d = diffConfigs(before, after);
    expect(d.empty).toBe(false);
    expect(formatDiffMarkdown(d)).toContain("phi-clinic");
  });

  it("a detector's validation or context pattern changed", () => {
    const mk = (validate: "none" | "luhn") =>
      build({
        identities: ids,
        rules: [allow("ops-read", { who: [ids.ops], verbs: READ, reason: "r" })],
        detectors: [
          detector("card", { category: "account", pattern: /\d{16}/, scope: "everywhere", validate }),
        ],
      });
    const d = diffConfigs(mk("none"), mk("luhn"));
    expect(d.empty).toBe(false);
    expect(d.masks.map((m) => m.id)).toContain("detector:card");
  });

  it("a deny on named objects removed (names are decided, not only one sample name)", () => {
    const allowAll = allow("ops-all", {
      who: [ids.ops],
      verbs: ["delete"],
      resources: ["pods"],
      reason: "r",
    });
    const guard = deny("keep-db", { verbs: ["delete"], resources: ["pods"], names: ["db-*"], reason: "no" });
    const d = diffConfigs(
      build({ identities: ids, rules: [guard, allowAll] }),
      build({ identities: ids, rules: [allowAll] }),
    );
    expect(d.empty).toBe(false);
    expect(d.access.some((c) => c.before.rule === "keep-db" && c.after.decision === "allow")).toBe(true);
  });

  it("still: a mask removed, an approval count lowered, a purpose removed, text-only edits give nothing", () => {
    const base = build({
      identities: ids,
      rules: [strict, allow("ops-read", { who: [ids.ops], verbs: READ, reason: "r" })],
      masks: [mask("cm", { resources: ["configmaps"], fields: [field("data.*", redact())] })],
    });
    const noMask = build({
      identities: ids,
      rules: [strict, allow("ops-read", { who: [ids.ops], verbs: READ, reason: "r" })],
    });
    expect(diffConfigs(base, noMask).empty).toBe(false);
    const lowered = build({
      identities: ids,
      rules: [
        requireApproval("exec-phi", { ...strict.spec, approval: { group, count: 1 } }),
        allow("ops-read", { who: [ids.ops], verbs: READ, reason: "r" }),
      ],
      masks: [mask("cm", { resources: ["configmaps"], fields: [field("data.*", redact())] })],
    });
    expect(diffConfigs(base, lowered).empty).toBe(false);
    const reworded = build({
      identities: ids,
      rules: [strict, allow("ops-read", { who: [ids.ops], verbs: READ, reason: "reworded" })],
      masks: [mask("cm", { resources: ["configmaps"], fields: [field("data.*", redact())] })],
    });
    expect(diffConfigs(base, reworded).empty).toBe(true);
    const why = purposes({ treatment: "t", operations: "o" });
    const withPurposes = (p: PurposeDef[]) =>
      build({
        identities: ids,
        purposes: why,
        rules: [allow("ops-read", { who: [ids.ops], verbs: READ, purpose: p, reason: "r" })],
      });
    expect(
      diffConfigs(withPurposes([why.treatment, why.operations]), withPurposes([why.treatment])).empty,
    ).toBe(false);
  });

  it("the rows come out in the same order in every locale", () => {
    const before = build({ identities: ids, rules: [] });
    const after = build({
      identities: ids,
      rules: [
        allow("ops-crs", {
          who: [ids.ops],
          verbs: ["get"],
          apiGroups: ["example.com"],
          resources: [customResource("tigers"), customResource("zebras")],
          reason: "r",
        }),
      ],
    });
    const plain = JSON.stringify(diffConfigs(before, after));
    const original = String.prototype.localeCompare;
    // Estonian collation puts "z" between "s" and "t", Lithuanian "y" next to "i"
    String.prototype.localeCompare = function (this: string, that: string) {
      return new Intl.Collator("et").compare(this, that);
    } as typeof original;
    try {
      const estonian = diffConfigs(before, {
        ...after,
        policyHash: after.policyHash.replace(/.$/, (c) => (c === "0" ? "1" : "0")),
      });
      expect(JSON.stringify({ ...estonian, after: JSON.parse(plain).after })).toBe(plain);
    } finally {
      String.prototype.localeCompare = original;
    }
  });
});
