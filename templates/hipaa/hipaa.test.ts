import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createMasker } from "../../gateway/masking/index.ts";
import { run } from "../../sdk/cli/policy.ts";
import { compilePolicy, compilePolicyFile } from "../../sdk/compiler/index.ts";
import { ctx } from "../../test/masking-fixtures.ts";
import { hipaaBaseline } from "./baseline.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const write = process.stdout.write;
  const ewrite = process.stderr.write;
  let out = "";
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { code: await fn(), out };
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
  }
}

describe("HIPAA template", () => {
  it("compiles with no errors and no warnings, type-checked, in well under 5 s of its own work", async () => {
    const r = await compilePolicyFile(path.join(here, "policy.ts"));
    expect(r.problems).toEqual([]);
    expect(r.config?.rules.length).toBeGreaterThan(10);
    expect(r.config?.phiNamespaces).toEqual(["phi-*"]);
    // generous bound: shared CI machines; the measured figure is in docs/policy-guide.md
    expect(r.timings.totalMs).toBeLessThan(15_000);
  });

  it("passes its own policy tests", async () => {
    const { code, out } = await capture(() => run(["test", path.join(here, "policy.tests.yaml"), "--json"]));
    const result = JSON.parse(out);
    expect(result.failed).toBe(0);
    expect(result.total).toBeGreaterThanOrEqual(25);
    expect(code).toBe(0);
  });

  it("is parametrised: reviewers, PHI namespaces, approval count and identities", () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"B".repeat(43)} r`;
    const r = compilePolicy(
      hipaaBaseline({
        reviewers: [
          { githubId: 7, login: "r1", keys: [key] },
          { githubId: 8, login: "r2", keys: [key] },
        ],
        phiNamespaces: ["clinic-*"],
        approvals: { count: 2, ttl: "15m", wait: "5m" },
        identities: { ciAgents: { groups: ["github-actions"] } },
        phiAnnotations: ["clinic.example/patient-id"],
      }),
    );
    expect(r.problems).toEqual([]);
    const c = r.config!;
    expect(c.phiNamespaces).toEqual(["clinic-*"]);
    expect(c.approvalGroups["phi-approvers"]?.reviewers.map((x) => x.githubId)).toEqual([7, 8]);
    expect(c.rules.find((x) => x.id === "rbac-changes")?.approval).toMatchObject({
      count: 2,
      ttlSeconds: 900,
      wait: { timeoutSeconds: 300 },
    });
    expect(c.identities.ciAgents?.groups).toEqual(["github-actions"]);
    expect(c.masks.find((m) => m.id === "last-applied-and-identifiers")?.fields.map((f) => f.path)).toContain(
      'metadata.annotations["clinic.example/patient-id"]',
    );
  });

  it("masks identifiers in PHI namespaces but leaves pod IPs alone on objects; IPs in logs are masked", () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"B".repeat(43)} r`;
    const r = compilePolicy(hipaaBaseline({ reviewers: [{ githubId: 7, login: "r1", keys: [key] }] }));
    expect(r.problems).toEqual([]);
    const m = createMasker(r.config!, { pseudonymKey: new Uint8Array(32) });
    const pod = {
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name: "intake-0",
        namespace: "phi-records",
        annotations: { note: "patient SSN 123-45-6789" },
      },
      spec: { containers: [{ name: "app", image: "intake:1.2" }] },
      status: { podIP: "10.244.1.23", hostIP: "10.0.12.34", podIPs: [{ ip: "10.244.1.23" }] },
    };
    const out = m.maskJson(pod, ctx({ namespace: "phi-records", name: "intake-0" })).value as typeof pod;
    expect(out.metadata.annotations.note).not.toContain("123-45-6789");
    expect(out.status).toEqual(pod.status);
    // a pod log of the PHI namespace, masked as the gateway streams it
    const podLog = (lines: string[]) => {
      const t = m.textStream(ctx({ namespace: "phi-records", name: "intake-0", subresource: "log" }));
      return { lines: (t.push(`${lines.join("\n")}\n`) + t.end()).split("\n"), summary: t.summary() };
    };
    const text = podLog(["GET /chart from 203.0.113.7 ok"]).lines[0]!;
    expect(text).not.toContain("203.0.113.7");
    expect(text).toContain("[MASKED:ip]");
    // labelled names in free text; Kubernetes names (lower case) and unlabelled words pass
    const lines = [
      'GET /patients/42 name="Juan Placeholder" status=200',
      '{"patientName": "Mei Fictional", "ward": "B"}',
      "Patient: Jane Roe-Synthetic, seen today",
      "container name: api-server restarted; pod Name=web-0",
      "Started container Intake Worker",
    ];
    const { lines: masked, summary } = podLog(lines);
    for (const n of ["Juan Placeholder", "Mei Fictional", "Jane Roe-Synthetic"])
      expect(masked.join("\n")).not.toContain(n);
    expect(masked[0]).toBe('GET /patients/42 name="[MASKED:name]" status=200');
    expect(masked[3]).toBe(lines[3]);
    expect(masked[4]).toBe(lines[4]);
    expect(summary.counts.name).toBe(3);
    // unlabelled names count next to an identifier on the same line, and only there
    const prose = [
      "intake: received form for Juan Placeholder dob=1985-11-30 ssn=912-34-5678",
      "MRN-00481516,Jane Roe-Synthetic,900-12-3456",
      "2024-05-01T09:03:00Z INFO GET /patients/MRN-00623420 status=200",
      "Started container Intake Worker for Mei Fictional",
    ];
    const out3 = podLog(prose).lines;
    expect(out3[0]).toBe("intake: received form for [MASKED:name] dob=[MASKED:date] ssn=[MASKED:ssn]");
    expect(out3[1]).toBe("[MASKED:mrn],[MASKED:name],[MASKED:ssn]");
    expect(out3[2]).toBe("2024-05-01T09:03:00Z INFO GET /patients/[MASKED:mrn] status=200"); // no proper noun
    expect(out3[3]).toBe(prose[3]); // no identifier on the line: capitalised words are not names
    // the same in an object's strings (an Event's message)
    const ev = {
      kind: "Event",
      apiVersion: "v1",
      metadata: { name: "intake.1", namespace: "phi-records" },
      message: "queued Sean O'Neil (SSN 912-34-5678) for triage",
      reason: "Queued",
    };
    const evOut = m.maskJson(ev, ctx({ namespace: "phi-records", resource: "events", name: "" }))
      .value as typeof ev;
    expect(evOut.message).toBe("queued [MASKED:name] (SSN [MASKED:ssn]) for triage");
  });

  it("masks container env wherever Kubernetes copies a pod template: revisions, PodTemplates, ephemeral containers", () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"B".repeat(43)} r`;
    const r = compilePolicy(hipaaBaseline({ reviewers: [{ githubId: 7, login: "r1", keys: [key] }] }));
    expect(r.problems).toEqual([]);
    const m = createMasker(r.config!, { pseudonymKey: new Uint8Array(32) });
    const env = [{ name: "PATIENT_NAME", value: "Juan Placeholder" }];
    const spec = {
      containers: [{ name: "app", image: "intake:1.2", env }],
      initContainers: [{ name: "i", env }],
    };
    const cases = [
      {
        res: "controllerrevisions",
        obj: {
          kind: "ControllerRevision",
          apiVersion: "apps/v1",
          metadata: { name: "intake-7d9f8b6c5", namespace: "phi-records" },
          data: { spec: { template: { spec } } },
          revision: 2,
        },
      },
      {
        res: "podtemplates",
        obj: {
          kind: "PodTemplate",
          apiVersion: "v1",
          metadata: { name: "t", namespace: "phi-records" },
          template: { spec },
        },
      },
      {
        res: "pods",
        obj: {
          kind: "Pod",
          apiVersion: "v1",
          metadata: { name: "intake-0", namespace: "phi-records" },
          spec: { containers: [], ephemeralContainers: [{ name: "debugger", env }] },
        },
      },
    ];
    for (const { res, obj } of cases) {
      const group = obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0]! : "";
      const out = m.maskJson(
        obj,
        ctx({ namespace: "phi-records", resource: res, apiGroup: group, name: "x" }),
      );
      expect(JSON.stringify(out.value)).not.toContain("Juan Placeholder");
      expect(out.summary.counts.env).toBeGreaterThan(0);
    }
  });

  it("reports an unsatisfiable approval when count exceeds reviewers", () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${"B".repeat(43)} r`;
    const r = compilePolicy(
      hipaaBaseline({ reviewers: [{ githubId: 7, login: "r1", keys: [key] }], approvals: { count: 2 } }),
    );
    expect(r.problems.map((p) => p.code)).toContain("APPROVAL_UNSATISFIABLE");
  });
});
