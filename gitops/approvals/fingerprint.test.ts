import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ApprovalOperation } from "../../gateway/ports.ts";
import {
  buildRequestFile,
  computeFingerprint,
  parseRequestFile,
  requestIdFor,
  serializeRequestFile,
} from "./fingerprint.ts";

const op: ApprovalOperation = {
  identity: {
    subject: "ci:deployer",
    groups: ["b", "a"],
    claims: { repository: "acme/app" },
    source: "oidc",
  },
  request: {
    isResourceRequest: true,
    path: "/apis/rbac.authorization.k8s.io/v1/namespaces/phi/rolebindings",
    verb: "create",
    apiPrefix: "apis",
    apiGroup: "rbac.authorization.k8s.io",
    apiVersion: "v1",
    namespace: "phi",
    resource: "rolebindings",
    subresource: "",
    name: "",
    query: { dryRun: ["All"] },
  },
  bodySha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  ruleId: "r",
  policyHash: `sha256:${"0".repeat(64)}`,
};
const req = { group: "g", count: 1, ttlSeconds: 60, use: "once" as const, wait: null, allowUnsigned: false };

describe("approval fingerprints", () => {
  it("is exactly the documented formula", () => {
    // written out by hand, keys in sorted order, to pin the format
    const json =
      '{"bodySha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",' +
      '"identity":{"claims":{"repository":"acme/app"},"groups":["a","b"],"subject":"ci:deployer"},' +
      '"purpose":null,' +
      '"request":{"apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1","name":"","namespace":"phi",' +
      '"path":"/apis/rbac.authorization.k8s.io/v1/namespaces/phi/rolebindings","resource":"rolebindings","subresource":"","verb":"create"}}';
    expect(computeFingerprint(op)).toBe(`sha256:${createHash("sha256").update(json).digest("hex")}`);
  });

  it("ignores group order, rule and policy; changes with any bound field (property)", () => {
    expect(computeFingerprint({ ...op, identity: { ...op.identity, groups: ["a", "b"] } })).toBe(
      computeFingerprint(op),
    );
    const base = computeFingerprint(op);
    const fields = [
      "subject",
      "verb",
      "apiGroup",
      "apiVersion",
      "namespace",
      "resource",
      "subresource",
      "name",
      "path",
      "purpose",
      "bodySha256",
      "claim",
    ] as const;
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.string({ minLength: 1, maxLength: 12 }), (field, value) => {
        const o = structuredClone(op) as ApprovalOperation;
        if (field === "subject") o.identity.subject = `${o.identity.subject}${value}`;
        else if (field === "purpose") o.purpose = value;
        else if (field === "bodySha256") o.bodySha256 = `${o.bodySha256}${value}`;
        else if (field === "claim") o.identity.claims = { ...o.identity.claims, [`k${value}`]: value };
        else o.request[field] = `${o.request[field]}${value}`;
        return computeFingerprint(o) !== base;
      }),
    );
  });

  it("request files recompute their fingerprint; any edit to the operation is detected (property)", () => {
    const file = buildRequestFile({ ...op, maskedBody: { kind: "RoleBinding" } }, req, {
      createdAt: new Date(1_700_000_000_000),
      expiresAt: new Date(1_700_000_600_000),
    });
    expect(file.requestId).toBe(requestIdFor(file.fingerprint, new Date(1_700_000_000_000)));
    expect(parseRequestFile(serializeRequestFile(file))).toEqual(file);
    fc.assert(
      fc.property(
        fc.constantFrom("subject", "namespace", "verb", "bodySha256", "purpose"),
        fc.string({ minLength: 1, maxLength: 8 }),
        (field, v) => {
          const f = structuredClone(file);
          if (field === "subject") f.operation.identity.subject += v;
          else if (field === "namespace") f.operation.request.namespace += v;
          else if (field === "verb") f.operation.request.verb += v;
          else if (field === "bodySha256") f.operation.bodySha256 += v;
          else f.operation.purpose = v;
          try {
            parseRequestFile(JSON.stringify(f));
            return false;
          } catch (e) {
            return (e as { code?: string }).code === "E_APPROVAL_REQUEST_FILE";
          }
        },
      ),
    );
    const extra = structuredClone(file) as unknown as { operation: Record<string, unknown> };
    extra.operation.smuggled = "x";
    expect(() => parseRequestFile(JSON.stringify(extra))).toThrow(
      expect.objectContaining({ code: "E_APPROVAL_REQUEST_FILE" }),
    );
    expect(() => parseRequestFile(JSON.stringify({ ...file, requestId: "ffffffffffff-1" }))).toThrow(
      expect.objectContaining({ code: "E_APPROVAL_REQUEST_FILE" }),
    );
  });
});
