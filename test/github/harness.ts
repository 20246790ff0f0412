/** Shared pieces of the approvals tests: keys made by real ssh-keygen, an operation, a memory evidence sink. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApprovalOperation, EvidenceRecord, EvidenceSink } from "../../gateway/ports.ts";
import type { ApprovalGroup, ApprovalRequirement } from "../../sdk/schema/config.ts";
import { type Ed25519PrivateKey, parsePrivateKey } from "../../gitops/approvals/sshkey.ts";

export interface TestKey {
  path: string;
  publicLine: string;
  key: Ed25519PrivateKey;
}

/** An ed25519 key pair made by the real ssh-keygen in a temp dir. */
export function sshKeygen(dir: string, name: string): TestKey {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], { stdio: "ignore" });
  return {
    path,
    publicLine: readFileSync(`${path}.pub`, "utf8").trim(),
    key: parsePrivateKey(readFileSync(path, "utf8")),
  };
}

export function tempDir(prefix = "custos-approvals-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export class MemorySink implements EvidenceSink {
  readonly records: EvidenceRecord[] = [];
  async append(record: EvidenceRecord): Promise<{ seq: number }> {
    this.records.push(structuredClone(record));
    return { seq: this.records.length };
  }
  async appendArtifact(): Promise<void> {}
  async close(): Promise<void> {}
  events(): string[] {
    return this.records.map((r) => String(r.custos.extra?.event));
  }
}

export function operation(
  overrides: Partial<ApprovalOperation> = {},
  claims: Record<string, string> = {},
): ApprovalOperation {
  return {
    identity: {
      subject: "system:serviceaccount:ci:deployer",
      groups: ["ci", "agents"],
      claims: { repository: "acme/app", run_id: "42", ...claims },
      source: "oidc",
    },
    request: {
      isResourceRequest: true,
      path: "/apis/rbac.authorization.k8s.io/v1/namespaces/phi-records/rolebindings",
      verb: "create",
      apiPrefix: "apis",
      apiGroup: "rbac.authorization.k8s.io",
      apiVersion: "v1",
      namespace: "phi-records",
      resource: "rolebindings",
      subresource: "",
      name: "",
      query: {},
    },
    purpose: "incident-response",
    bodySha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    maskedBody: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "debug-access", namespace: "phi-records" },
      subjects: [{ kind: "User", name: "[MASKED:email]" }],
    },
    ruleId: "rbac-needs-approval",
    policyHash: `sha256:${"ab".repeat(32)}`,
    ...overrides,
  };
}

export function requirement(overrides: Partial<ApprovalRequirement> = {}): ApprovalRequirement {
  return {
    group: "security",
    count: 2,
    ttlSeconds: 600,
    use: "once",
    wait: null,
    allowUnsigned: false,
    ...overrides,
  };
}

export function group(reviewers: { githubId: number; login: string; keys: string[] }[]): ApprovalGroup {
  return { description: "security on-call", reviewers, source: { file: "policy.ts", line: 1, column: 1 } };
}

/** A clock the test moves by hand. */
export class TestClock {
  constructor(public t = Date.parse("2026-11-25T12:00:00.000Z")) {}
  now = (): Date => new Date(this.t);
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}
