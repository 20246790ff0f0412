import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  allow,
  deny,
  field,
  identities,
  mask,
  policy,
  purposes,
  READ,
  redact,
  requireApproval,
} from "../index.ts";
import { compilePolicy, serializeConfig } from "../compiler/index.ts";
import type { GatewayConfig } from "../schema/config.ts";
import { parseRequestWords } from "./common.ts";
import { diffConfigs, formatDiffMarkdown } from "./diff.ts";
import { run as explain } from "./explain.ts";
import { run as policyCmd } from "./policy.ts";

const KEY = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"C".repeat(43)} k`;
const ids = identities({ ci: { groups: ["ci"] }, ops: { groups: ["ops"] } });
const why = purposes({ treatment: "t" });

function config(
  opts: { reason?: string; ciSecrets?: boolean; dropMask?: boolean; count?: number } = {},
): GatewayConfig {
  const r = compilePolicy(
    policy({
      name: "p",
      identities: ids,
      purposes: why,
      rules: [
        deny("purpose", { phi: true, purpose: "absent", reason: opts.reason ?? "declare a purpose" }),
        ...(opts.ciSecrets === true
          ? []
          : [deny("ci-secrets", { who: [ids.ci], resources: ["secrets"], reason: "no" })]),
        requireApproval("rbac", {
          resources: ["rolebindings"],
          apiGroups: ["rbac.authorization.k8s.io"],
          approval: {
            group: {
              kind: "approvalGroup",
              name: "g",
              reviewers: [
                { githubId: 1, login: "a", keys: [KEY] },
                { githubId: 2, login: "b", keys: [KEY] },
              ],
              source: { file: "x", line: 1, column: 1 },
            },
            count: opts.count ?? 2,
          },
          reason: "rbac",
        }),
        allow("reads", {
          who: [ids.ci, ids.ops],
          verbs: READ,
          resources: ["pods", "configmaps", "secrets"],
          reason: "reads",
        }),
      ],
      masks:
        opts.dropMask === true
          ? []
          : [mask("data", { resources: ["configmaps", "secrets"], fields: [field("data.*", redact())] })],
    }),
  );
  if (r.config === undefined) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

function tmp(name: string, content: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "custos-cli-"));
  const f = path.join(dir, name);
  writeFileSync(f, content);
  return f;
}

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const w = process.stdout.write;
  const e = process.stderr.write;
  let out = "";
  let err = "";
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
  }
}

describe("request words", () => {
  it.each([
    ["get pods -n a", "list", "pods", "", "a", ""],
    ["get pod web-0 -n a", "get", "pods", "", "a", "web-0"],
    ["get po/web-0", "get", "pods", "", "default", "web-0"],
    ["get pods -A", "list", "pods", "", "", ""],
    ["get pods -w -n a", "watch", "pods", "", "a", ""],
    ["logs web-0 -n a", "get", "pods", "log", "a", "web-0"],
    ["exec web-0 -n a -- ls", "create", "pods", "exec", "a", "web-0"],
    ["port-forward web-0", "create", "pods", "portforward", "default", "web-0"],
    ["delete namespace phi-a", "delete", "namespaces", "", "phi-a", "phi-a"],
    ["delete cm --all -n a", "deletecollection", "configmaps", "", "a", ""],
    ["create rolebinding -n a", "create", "rolebindings", "", "a", ""],
    ["scale deploy web -n a", "patch", "deployments", "scale", "a", "web"],
    ["get nodes", "list", "nodes", "", "", ""],
    ["get widgets.example.com -n a", "list", "widgets", "", "a", ""],
    ["GET /api/v1/namespaces/a/pods/x/log", "get", "pods", "log", "a", "x"],
  ])("%s", (words, verb, resource, sub, ns, name) => {
    const { info } = parseRequestWords([words]);
    expect([info.verb, info.resource, info.subresource, info.namespace, info.name]).toEqual([
      verb,
      resource,
      sub,
      ns,
      name,
    ]);
  });
});

describe("custos explain", () => {
  it("prints the decision, rule, source line and masks", async () => {
    const cfg = tmp("c.json", serializeConfig(config()));
    const { code, out } = await capture(() =>
      explain(["--config", cfg, "--as", "ci", "get", "secrets", "-n", "team"]),
    );
    expect(code).toBe(0);
    expect(out).toContain("decision:    deny");
    expect(out).toMatch(/rule:\s+ci-secrets at sdk\/cli\/cli\.test\.ts:\d+:\d+/);
    expect(out).toContain("data: fields data.*");
    const json = await capture(() =>
      explain(["--config", cfg, "--as", "ops", "--json", "--exit-code", "get", "secrets", "-n", "team"]),
    );
    expect(JSON.parse(json.out).decision).toMatchObject({ decision: "allow", ruleId: "reads" });
    expect(json.code).toBe(0);
    const denied = await capture(() =>
      explain(["--config", cfg, "--as", "ops", "--exit-code", "get", "secrets", "-n", "phi-a"]),
    );
    expect(denied.code).toBe(1);
    const bad = await capture(() =>
      explain(["--config", cfg, "--as", "ops", "GET", "/api/v1/namespaces/a/secrets%2Fx"]),
    );
    expect(bad.code).toBe(2);
    expect(bad.err.split("\n").filter((l) => l !== "")).toHaveLength(1);
  });
});

describe("custos policy test", () => {
  const cfg = () => tmp("c.json", serializeConfig(config()));
  const suite = (tests: string) => tmp("t.yaml", `tests:\n${tests}`);
  it("passes, fails and refuses an empty suite", async () => {
    const c = cfg();
    const ok =
      suite(`  - { name: ci secrets, as: ci, request: get secrets -n a, expect: { decision: deny, rule: ci-secrets, masks: [data], maskedFields: ["data.*"] } }
  - { name: purpose, as: ops, purpose: treatment, request: get pods -n phi-a, expect: { decision: allow, rule: reads } }
  - { name: raw caller, as: { subject: x, groups: [ops] }, request: create rolebinding -n a, expect: { decision: requireApproval, rule: rbac } }
`);
    const pass = await capture(() => policyCmd(["test", ok, "--config", c, "--json"]));
    expect(JSON.parse(pass.out)).toMatchObject({ ok: true, total: 3, passed: 3, failed: 0 });
    expect(pass.code).toBe(0);
    const wrong = suite(
      `  - { name: wrong, as: ci, request: get pods -n a, expect: { decision: deny, masks: [data] } }\n`,
    );
    const fail = await capture(() => policyCmd(["test", wrong, "--config", c]));
    expect(fail.code).toBe(1);
    expect(fail.out).toContain("FAIL wrong");
    expect(fail.out).toContain("decision: expected deny, got allow (rule reads)");
    expect(fail.out).toContain("masks: expected [data], got []");
    const empty = tmp("e.yaml", "tests: []\n");
    expect((await capture(() => policyCmd(["test", empty, "--config", c]))).code).toBe(1);
    const unknown = suite(`  - { name: u, as: nobody, request: get pods, expect: { decision: deny } }\n`);
    expect((await capture(() => policyCmd(["test", unknown, "--config", c]))).code).toBe(2);
    expect(
      (await capture(() => policyCmd(["test", tmp("x.yaml", "tests: [{}]\n"), "--config", c]))).code,
    ).toBe(2);
  });
});

describe("custos policy diff", () => {
  it("gives no diff for text-only changes", () => {
    const d = diffConfigs(config(), config({ reason: "a different reason text" }));
    expect(d.empty).toBe(true);
    expect(formatDiffMarkdown(d)).toContain("No change in effective access");
  });

  it("reports widened access, removed masks and weakened approvals", async () => {
    const before = config();
    const after = config({ ciSecrets: true, dropMask: true, count: 1 });
    const d = diffConfigs(before, after);
    expect(d.empty).toBe(false);
    const secrets = d.access.filter((c) => c.identity === "ci" && c.resource === "secrets");
    expect(secrets.length).toBeGreaterThan(0);
    expect(secrets.every((c) => c.before.rule === "ci-secrets" && c.after.decision === "allow")).toBe(true);
    expect(secrets.some((c) => c.verbs.includes("list") && c.verbs.includes("get"))).toBe(true);
    expect(d.access.every((c) => c.identity === "ci")).toBe(true);
    expect(d.masks).toEqual([
      { id: "data", change: "removed", details: [expect.stringContaining("sdk/cli/cli.test.ts")] },
    ]);
    expect(d.approvals).toEqual([{ rule: "rbac", details: ["count 2 -> 1"] }]);
    const md = formatDiffMarkdown(d);
    expect(md).toContain("| ci |");
    expect(md).toContain("**allow**");
    expect(md).toContain("### Masks and detectors removed, weakened or changed");
    const a = tmp("a.json", serializeConfig(before));
    const b = tmp("b.json", serializeConfig(after));
    const cli = await capture(() => policyCmd(["diff", a, b, "--exit-code"]));
    expect(cli.code).toBe(1);
    expect(cli.out).toContain("## custos policy diff");
  });
});
