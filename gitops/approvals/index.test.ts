import { describe, expect, it } from "vitest";
import * as api from "./index.ts";

describe("gitops/approvals public surface", () => {
  it("exports exactly these names (change deliberately)", () => {
    expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
      [
        "ApprovalBackendError",
        "ApprovalCore",
        "ApprovalError",
        "GitHubApprovalService",
        "GrantStore",
        "KeyFormatError",
        "LABEL_DENIED",
        "LABEL_EXPIRED",
        "LABEL_GRANTED",
        "LocalApprovalRepo",
        "LocalApprovalService",
        "REQUESTER_ID_CLAIMS",
        "RequestClosedError",
        "RequestFileError",
        "RequestIdTakenError",
        "RequestNotFoundError",
        "SIGNATURE_DOMAIN",
        "UnknownApprovalGroupError",
        "WebhookSignatureError",
        "approvalRecord",
        "branchFor",
        "buildRequestFile",
        "canonicalOperation",
        "computeFingerprint",
        "createOctokit",
        "evaluateReviews",
        "fetchGitHubRequest",
        "fetchLocalRequest",
        "formatPrivateKey",
        "formatPublicKey",
        "formatSignatureBlock",
        "githubAppAuthStrategy",
        "keyFingerprint",
        "parsePrivateKey",
        "parsePublicKey",
        "parsePullUrl",
        "parseRequestFile",
        "parseSignatureBlock",
        "requestIdFor",
        "signDecision",
        "signingPayload",
        "submitGitHubDecision",
        "submitLocalDecision",
        "verifyEd25519",
        "verifySignatureBlock",
      ]
    `);
  });

  it("parses pull-request URLs for github.com and GitHub Enterprise", () => {
    expect(api.parsePullUrl("https://github.com/acme/approvals/pull/12")).toEqual({
      apiBase: "https://api.github.com",
      owner: "acme",
      repo: "approvals",
      number: 12,
    });
    expect(api.parsePullUrl("https://ghe.example.com/acme/approvals/pull/3")).toEqual({
      apiBase: "https://ghe.example.com/api/v3",
      owner: "acme",
      repo: "approvals",
      number: 3,
    });
    expect(api.parsePullUrl("3f2a9c1b7d4e-abc")).toBeUndefined();
    expect(api.parsePullUrl("https://github.com/acme/approvals/issues/12")).toBeUndefined();
  });
});
