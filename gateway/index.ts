/**
 * The gateway's public surface for composition roots (the `custos gateway` command, the demo,
 * tests). Request handling lives in the stage folders: identity -> requestinfo -> decision ->
 * approval -> upstream -> masking -> evidence; `server/` is the Node adapter around them.
 */
export { NoApprovalBackend, operationFingerprint } from "./approval/local.ts";
export { approvalStage } from "./approval/stage.ts";
export { compose, loadOrCreateKey, loadPolicy } from "./config/compose.ts";
export { GatewayFileConfig, parseGatewayFileConfig, parseListen } from "./config/file.ts";
export { type AgentContext, agentKubeconfig } from "./config/kubeconfig.ts";
export { GatewayError, statusBody, toStatus } from "./errors.ts";
export { JsonlEvidenceSink } from "./evidence/jsonl-sink.ts";
export { callRecord, reloadRecord } from "./evidence/record.ts";
export { Authenticator, type AuthenticatorOptions, splitPurposePrefix } from "./identity/index.ts";
export { mintLoginToken, verifyLoginToken } from "./identity/login-token.ts";
export { GITHUB_ACTIONS_CLAIMS, OidcProvider, type OidcProviderConfig } from "./identity/oidc.ts";
export { TokenFileAuthenticator } from "./identity/token-file.ts";
export { tokenReviewAuthenticator } from "./identity/tokenreview.ts";
export {
  ConfigInvalidError,
  type GatewayOptions,
  parseConfig,
  type RunningGateway,
  startGateway,
} from "./server/gateway.ts";
export {
  type Clock,
  DEFAULT_LIMITS,
  type Limits,
  type Logger,
  silentLogger,
  stderrLogger,
} from "./server/runtime.ts";
export { ensureTls, type TlsMaterial } from "./tls/ca.ts";
export { loadKubeConfig, Upstream } from "./upstream/index.ts";
