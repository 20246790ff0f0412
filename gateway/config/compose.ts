/**
 * Composition root helpers: turn a GatewayFileConfig into startGateway options (keys and TLS
 * generated on first run in the state dir, token sources, upstream, evidence sink, masker).
 * Only the CLI (and the demo) call these; they read files, the clock and the environment.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import http, { type IncomingMessage, type Server, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createSecureContext } from "node:tls";
import type { GitHubApprovalService } from "../../gitops/approvals/index.ts";
import { parseKeyFile } from "../../sdk/lib/digest.ts";
import { GatewayConfig } from "../../sdk/schema/config.ts";
import { JsonlEvidenceSink } from "../evidence/jsonl-sink.ts";
import type { AuthenticatorOptions } from "../identity/index.ts";
import { OidcProvider, type OidcProviderConfig } from "../identity/oidc.ts";
import { TokenFileAuthenticator } from "../identity/token-file.ts";
import { tokenReviewAuthenticator } from "../identity/tokenreview.ts";
import { createMasker } from "../masking/index.ts";
import type { ApprovalService, EvidenceSink } from "../ports.ts";
import { type GatewayOptions, parseConfig, type RunningGateway } from "../server/gateway.ts";
import type { Logger } from "../server/runtime.ts";
import { ensureTls } from "../tls/ca.ts";
import { loadKubeConfig, Upstream } from "../upstream/index.ts";
import { type GatewayFileConfig, parseListen } from "./file.ts";

/** Read a key file, or create it with `bytes` random bytes (mode 0600) when missing. */
export async function loadOrCreateKey(file: string, bytes: number): Promise<Uint8Array> {
  try {
    return parseKeyFile(await readFile(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const key = randomBytes(bytes);
    await writeFile(file, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
    return new Uint8Array(key);
  }
}

export async function loadPolicy(file: string): Promise<GatewayConfig> {
  const text = await readFile(file, "utf8");
  return GatewayConfig.parse(JSON.parse(text));
}

/**
 * The compiled policy file: its exact text (what goes into the evidence repo as
 * `policies/<hash>.json`) and the validated config (schema + policyHash over the content).
 */
export async function loadPolicyFile(file: string): Promise<{ config: GatewayConfig; text: string }> {
  const text = await readFile(file, "utf8");
  return { config: parseConfig(JSON.parse(text)), text };
}

/** An evidence sink that can also store the compiled policies it sees (the git writer). */
type PolicyRecorder = EvidenceSink & { recordPolicy(configJson: string): Promise<void> };
const recordsPolicies = (s: EvidenceSink): s is PolicyRecorder =>
  typeof (s as Partial<PolicyRecorder>).recordPolicy === "function";

/** The approval service the gateway calls, with what the composition root must manage. */
export type ComposedApprovals = ApprovalService & {
  readonly kind: "local" | "github";
  /** the GitHub webhook endpoint, once listening */
  webhookUrl?: string;
};

export interface Composed {
  options: GatewayOptions;
  sink: EvidenceSink;
  /** the configured approval backend (also in options.approval); absent for kind none */
  approval?: ComposedApprovals;
  /**
   * Follow the running gateway's policy (approval groups of the policy in force, after every
   * reload). Call once startGateway resolved.
   */
  bind(gw: Pick<RunningGateway, "config">): void;
  /**
   * Store a compiled policy's exact text in the evidence repo (git sink: policies/<hash>.json).
   * Call before switching to it; a failure means the switch must not happen (fail closed).
   */
  recordPolicy(text: string): Promise<void>;
  /** Stop the approval backend (poller, webhook listener), then flush and close the sink. */
  close(): Promise<void>;
}

export interface ComposeDeps {
  /** environment for *Env settings (tokens, secrets); default process.env */
  env?: NodeJS.ProcessEnv;
}

/** An OpenSSL cipher list the listener can use, or an error naming the fix. */
function checkCiphers(list: string): string {
  try {
    createSecureContext({ ciphers: list });
  } catch (e) {
    throw new Error(
      `tlsCiphers "${list}" is not a cipher list OpenSSL accepts (${(e as Error).message}); use names such as TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384, or remove it for the default`,
    );
  }
  return list;
}

export async function compose(
  c: GatewayFileConfig,
  logger: Logger,
  deps: ComposeDeps = {},
): Promise<Composed> {
  const env = deps.env ?? process.env;
  const tlsCiphers = c.tlsCiphers === undefined ? undefined : checkCiphers(c.tlsCiphers);
  const { config, text: policyText } = await loadPolicyFile(c.policy);
  const listen = parseListen(c.listen);
  const tls = c.tls
    ? {
        cert: await readFile(c.tls.certFile, "utf8"),
        key: await readFile(c.tls.keyFile, "utf8"),
        caPem: await readFile(c.tls.caFile ?? c.tls.certFile, "utf8"),
      }
    : await ensureTls(c.stateDir, [
        ...c.hosts,
        ...(listen.host === "0.0.0.0" || listen.host === "::" ? [] : [listen.host]),
      ]);
  const kcSource: { kubeconfig?: string; inCluster?: boolean; context?: string } = {
    inCluster: c.upstream.inCluster,
  };
  if (c.upstream.kubeconfig) kcSource.kubeconfig = c.upstream.kubeconfig;
  if (c.upstream.context) kcSource.context = c.upstream.context;
  const upstream = new Upstream(loadKubeConfig(kcSource), {
    timeoutMs: c.upstream.timeoutSeconds * 1000,
    client: c.upstream.client,
  });

  const auth: AuthenticatorOptions = {};
  if (c.auth.tokenFile) auth.tokenFile = new TokenFileAuthenticator(await readFile(c.auth.tokenFile, "utf8"));
  if (c.auth.oidc.length > 0) {
    auth.oidc = [];
    for (const o of c.auth.oidc) {
      const { jwksFile, ...rest } = o;
      const pc = { ...rest } as OidcProviderConfig;
      if (jwksFile) pc.jwks = JSON.parse(await readFile(jwksFile, "utf8"));
      auth.oidc.push(new OidcProvider(pc));
    }
  }
  if (c.auth.login)
    auth.loginKey = await loadOrCreateKey(c.auth.loginKeyFile ?? path.join(c.stateDir, "login.key"), 32);
  if (c.auth.tokenReview) {
    auth.tokenReview = tokenReviewAuthenticator(
      async (p, body) => {
        const buf = Buffer.from(JSON.stringify(body));
        const res = await upstream.request(
          "POST",
          p,
          {
            "content-type": "application/json",
            accept: "application/json",
            "content-length": String(buf.length),
          },
          buf,
        );
        const chunks: Buffer[] = [];
        for await (const ch of res) chunks.push(ch as Buffer);
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          parsed = undefined;
        }
        return { status: res.statusCode ?? 0, body: parsed };
      },
      { now: Date.now },
    );
  }

  let sink: EvidenceSink;
  if (c.evidence.kind === "jsonl") {
    await mkdir(path.dirname(c.evidence.file), { recursive: true });
    sink = await JsonlEvidenceSink.open({
      file: c.evidence.file,
      gatewayId: c.gatewayId,
      fsync: c.evidence.fsync,
    });
  } else {
    if (!c.signingKey)
      throw new Error(
        "evidence.kind git needs signingKey (an OpenSSH ed25519 private key; make one with custos keygen)",
      );
    const { openEvidenceRepo } = await import("../../gitops/evidence/index.ts");
    const { createSigner, parseOpenSshPrivateKey } = await import("../../gitops/signer/index.ts");
    const key = parseOpenSshPrivateKey(await readFile(c.signingKey, "utf8"));
    const ev = c.evidence;
    const checkpointsFile = ev.checkpointsFile ?? path.join(c.stateDir, "checkpoints.txt");
    await mkdir(path.dirname(checkpointsFile), { recursive: true });
    const ro: Parameters<typeof openEvidenceRepo>[0] = {
      dir: ev.dir,
      gatewayId: c.gatewayId,
      signer: createSigner(key.seed),
      durability: ev.durability,
      // every published checkpoint is appended (and fsync'd) for operators to copy elsewhere:
      // `custos audit verify --checkpoint <file>` reads a file of several checkpoints
      onCheckpoint: (text) => {
        try {
          appendDurable(checkpointsFile, text.endsWith("\n") ? text : `${text}\n`);
        } catch (e) {
          logger.error("could not append the checkpoint to the checkpoints file", {
            file: checkpointsFile,
            error: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
          });
        }
      },
      log: (entry) => {
        const { level, msg, ...rest } = entry as { level?: string; msg?: unknown };
        const m = typeof msg === "string" ? msg : "evidence";
        if (level === "error") logger.error(m, { component: "evidence", ...rest });
        else if (level === "warn") logger.warn(m, { component: "evidence", ...rest });
        else logger.info(m, { component: "evidence", ...rest });
      },
    };
    if (ev.principal) ro.principal = ev.principal;
    if (ev.checkpointEvery) ro.checkpointEvery = ev.checkpointEvery;
    if (ev.checkpointIntervalSeconds) ro.checkpointIntervalMs = ev.checkpointIntervalSeconds * 1000;
    if (ev.remote) {
      const remote: { url: string; headers?: Record<string, string> } = { url: ev.remote.url };
      if (ev.remote.tokenEnv) {
        const token = env[ev.remote.tokenEnv];
        if (!token)
          throw new Error(
            `evidence.remote.tokenEnv names ${ev.remote.tokenEnv}, but that environment variable is empty; export the token for the evidence remote`,
          );
        remote.headers = {
          authorization: `Basic ${Buffer.from(`${ev.remote.username}:${token}`).toString("base64")}`,
        };
      }
      ro.remote = remote;
    }
    sink = await openEvidenceRepo(ro);
  }
  // the policy in force is itself evidence: policies/<hash>.json beside the records naming it
  const recordPolicy = async (text: string) => {
    if (recordsPolicies(sink)) await sink.recordPolicy(text);
  };
  try {
    await recordPolicy(policyText);
  } catch (e) {
    await sink.close().catch(() => undefined);
    throw e;
  }

  // approvals follow the policy in force (a reload changes reviewers and keys)
  let bound: Pick<RunningGateway, "config"> | undefined;
  const groups = () => (bound ? bound.config() : config).approvalGroups;
  let approval: ComposedApprovals | undefined;
  try {
    approval = await composeApprovals(c, { sink, groups, logger, env });
  } catch (e) {
    await sink.close().catch(() => undefined);
    throw e;
  }

  const pseudonymKey = await loadOrCreateKey(c.pseudonymKey ?? path.join(c.stateDir, "pseudonym.key"), 32);
  const limits: GatewayOptions["limits"] = {};
  if (c.limits.maxBodyBytes) limits.maxBodyBytes = c.limits.maxBodyBytes;
  if (c.limits.maxResponseBytes) limits.maxResponseBytes = c.limits.maxResponseBytes;
  if (c.limits.maxRecordingBytes) limits.maxRecordingBytes = c.limits.maxRecordingBytes;
  if (c.limits.sessionPingMs) limits.sessionPingMs = c.limits.sessionPingMs;
  if (approval?.kind === "github" && c.approvals.kind === "github") {
    // the webhook listener: a separate port (GitHub reaches it; agents never need it)
    try {
      await startWebhook(
        approval as ComposedApprovals & GitHubApprovalService,
        c.approvals,
        tls,
        env,
        logger,
      );
    } catch (e) {
      await approval.close().catch(() => undefined);
      await sink.close().catch(() => undefined);
      throw e;
    }
  }
  const options: GatewayOptions = {
    config,
    upstream,
    tls,
    ...(tlsCiphers !== undefined ? { tlsCiphers } : {}),
    listen,
    auth,
    sink,
    maskerFactory: (cfg) => createMasker(cfg, { pseudonymKey }),
    logger,
    limits,
    impersonate: c.upstream.impersonate,
    approvalPollMs: c.approvalPollMs,
    ops: parseListen(c.ops.listen, "ops.listen"),
  };
  if (approval) options.approval = approval;
  const composed: Composed = {
    sink,
    options,
    bind(gw) {
      bound = gw;
    },
    recordPolicy,
    async close() {
      if (approval) await approval.close().catch(() => undefined);
      await sink.close();
    },
  };
  if (approval) composed.approval = approval;
  return composed;
}

function appendDurable(file: string, text: string): void {
  const fd = openSync(file, "a", 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function approvalsLog(logger: Logger): (entry: Record<string, unknown>) => void {
  return (entry) => {
    const { level, msg, ...rest } = entry;
    const m = typeof msg === "string" ? msg : "approvals";
    const fields = { component: "approvals", ...rest };
    if (level === "error") logger.error(m, fields);
    else if (level === "warn") logger.warn(m, fields);
    else logger.info(m, fields);
  };
}

/** The approval backend named by the config (none: undefined, the gateway's fail-closed stand-in). */
export async function composeApprovals(
  c: GatewayFileConfig,
  d: {
    sink: EvidenceSink;
    groups: () => GatewayConfig["approvalGroups"];
    logger: Logger;
    env: NodeJS.ProcessEnv;
  },
): Promise<ComposedApprovals | undefined> {
  const a = c.approvals;
  if (a.kind === "none") return undefined;
  const common = {
    approvalGroups: d.groups,
    evidence: d.sink,
    requestTtlSeconds: a.requestTtlSeconds,
    recheckIntervalMs: a.recheckIntervalSeconds * 1000,
    log: approvalsLog(d.logger),
    evidenceLink: ({ requestId, seq, grantId }: { requestId: string; grantId?: string; seq: number }) =>
      `evidence branch evidence/${c.gatewayId}, record seq ${seq}${grantId ? ` (grant ${grantId})` : ""}; the whole trail: \`custos audit query <evidence repo> --request-id ${requestId}\``,
  };
  const { GrantStore, GitHubApprovalService, LocalApprovalService, createOctokit } = await import(
    "../../gitops/approvals/index.ts"
  );
  if (a.kind === "local") {
    const svc = new LocalApprovalService({
      ...common,
      dir: a.dir,
      pollIntervalMs: a.pollIntervalSeconds * 1000,
    });
    await svc.init();
    return Object.assign(svc, { kind: "local" as const });
  }
  let octokit: ReturnType<typeof createOctokit>;
  if (a.app) {
    octokit = createOctokit({
      baseUrl: a.baseUrl,
      app: {
        appId: a.app.appId,
        privateKey: await readFile(a.app.privateKeyFile, "utf8"),
        installationId: a.app.installationId,
      },
    });
  } else {
    const token = d.env[a.tokenEnv];
    if (!token)
      throw new Error(
        `approvals.kind github needs a token: the environment variable ${a.tokenEnv} is empty; export a token with contents and pull-requests write access on ${a.owner}/${a.repo}, or configure approvals.app (GitHub App)`,
      );
    octokit = createOctokit({ baseUrl: a.baseUrl, token });
  }
  let webhookSecret: string | undefined;
  if (a.webhookSecretEnv) {
    webhookSecret = d.env[a.webhookSecretEnv];
    if (!webhookSecret)
      throw new Error(
        `approvals.webhookSecretEnv names ${a.webhookSecretEnv}, but that environment variable is empty; export the secret configured on the GitHub webhook`,
      );
  }
  const stateDir = a.stateDir ?? path.join(c.stateDir, "approvals");
  const go: ConstructorParameters<typeof GitHubApprovalService>[0] = {
    ...common,
    octokit,
    owner: a.owner,
    repo: a.repo,
    grants: new GrantStore({ dir: stateDir }),
    pollIntervalMs: a.pollIntervalSeconds * 1000,
  };
  if (a.baseBranch) go.baseBranch = a.baseBranch;
  if (webhookSecret) go.webhookSecret = webhookSecret;
  const svc = new GitHubApprovalService(go);
  return Object.assign(svc, { kind: "github" as const });
}

type GitHubApprovalsConfig = Extract<GatewayFileConfig["approvals"], { kind: "github" }>;

/**
 * Serve GitHub webhook deliveries (pull_request_review, pull_request) on their own listener:
 * POST <path> only; the HMAC (X-Hub-Signature-256) is checked by the service. Without a
 * webhook secret nothing is served and polling alone finds reviews.
 */
async function startWebhook(
  svc: ComposedApprovals & GitHubApprovalService,
  a: GitHubApprovalsConfig,
  tls: { cert: string; key: string },
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<void> {
  if (!a.webhookSecretEnv || !env[a.webhookSecretEnv]) return;
  const listen = parseListen(a.webhook.listen, "approvals.webhook.listen");
  const handle = svc.webhookListener();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const p = (req.url ?? "/").split("?")[0];
    if (p !== a.webhook.path || req.method !== "POST") {
      res.writeHead(p === a.webhook.path ? 405 : 404, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: `POST GitHub webhook deliveries to ${a.webhook.path}` }));
      return;
    }
    handle(req, res);
  };
  const server: Server = a.webhook.tls
    ? https.createServer({ cert: tls.cert, key: tls.key }, onRequest)
    : http.createServer(onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  svc.webhookUrl = `${a.webhook.tls ? "https" : "http"}://${host}:${port}${a.webhook.path}`;
  logger.info("github webhook listening", { url: svc.webhookUrl });
  const close = svc.close.bind(svc);
  svc.close = async () => {
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
    await close();
  };
}
