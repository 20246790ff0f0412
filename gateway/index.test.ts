import { describe, expect, it } from "vitest";
import * as gateway from "./index.ts";

describe("gateway entry point", () => {
  it("exports exactly this surface", () => {
    expect(Object.keys(gateway).sort()).toEqual([
      "Authenticator",
      "ConfigInvalidError",
      "DEFAULT_LIMITS",
      "GITHUB_ACTIONS_CLAIMS",
      "GatewayError",
      "GatewayFileConfig",
      "JsonlEvidenceSink",
      "NoApprovalBackend",
      "OidcProvider",
      "TokenFileAuthenticator",
      "Upstream",
      "agentKubeconfig",
      "approvalStage",
      "callRecord",
      "compose",
      "ensureTls",
      "loadKubeConfig",
      "loadOrCreateKey",
      "loadPolicy",
      "mintLoginToken",
      "operationFingerprint",
      "parseConfig",
      "parseGatewayFileConfig",
      "parseListen",
      "reloadRecord",
      "silentLogger",
      "splitPurposePrefix",
      "startGateway",
      "statusBody",
      "stderrLogger",
      "toStatus",
      "tokenReviewAuthenticator",
      "verifyLoginToken",
    ]);
  });
});
