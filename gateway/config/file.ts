/**
 * The gateway's own runtime configuration (YAML, `custos gateway --config`): where to listen,
 * TLS, the compiled policy, the upstream, token sources, evidence, keys and limits. Relative
 * paths are resolved against the config file's directory.
 */
import path from "node:path";
import { z } from "zod";

const OidcProvider = z
  .object({
    issuer: z.string().url(),
    audience: z.union([z.string(), z.array(z.string()).min(1)]),
    jwksUrl: z.string().url().optional(),
    jwksFile: z.string().optional(),
    algorithms: z.array(z.string()).optional(),
    usernameClaim: z.string().optional(),
    usernamePrefix: z.string().optional(),
    groupsClaim: z.string().optional(),
    groupsPrefix: z.string().optional(),
    extraGroups: z.array(z.string()).optional(),
    claimMap: z.record(z.string(), z.string()).optional(),
    clockToleranceSeconds: z.number().int().nonnegative().optional(),
    /** accept user names / groups from the token that start with "system:" (default: refuse them) */
    allowSystemNames: z.boolean().optional(),
  })
  .strict();

const GitEvidence = z
  .object({
    kind: z.literal("git"),
    dir: z.string(),
    /** committer e-mail and checkpoint principal (default <gatewayId>@custos.local) */
    principal: z.string().optional(),
    /**
     * process (default): a record is durable once written to the WAL (survives a gateway crash);
     * machine: also fsync'd before the call proceeds (survives a power loss; slower)
     */
    durability: z.enum(["process", "machine"]).default("process"),
    /** smart-HTTP git remote the evidence branch is fast-forward pushed to */
    remote: z
      .object({
        url: z.string().url(),
        /** env var holding a token sent as HTTP Basic password (GitHub: a token with contents:write) */
        tokenEnv: z.string().optional(),
        /** Basic user name sent with the token (default x-access-token, as GitHub expects) */
        username: z.string().default("x-access-token"),
      })
      .strict()
      .optional(),
    /** write a signed checkpoint every N records (default 100000) ... */
    checkpointEvery: z.number().int().positive().optional(),
    /** ... or every N seconds (default 600) */
    checkpointIntervalSeconds: z.number().int().positive().optional(),
    /** published checkpoints are appended here (default <stateDir>/checkpoints.txt) */
    checkpointsFile: z.string().optional(),
  })
  .strict();

const Approvals = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("none") }).strict(),
  z
    .object({
      kind: z.literal("local"),
      /** the local approvals git repository (created if missing); reviewers run custos approve --local <dir> */
      dir: z.string(),
      /** re-read open requests every N seconds in the background (default 2; 0: only when a call checks) */
      pollIntervalSeconds: z.number().nonnegative().default(2),
      /** while a request is pending, a call re-reads its reviews at most every N seconds (default 0) */
      recheckIntervalSeconds: z.number().nonnegative().default(0),
      /** how long a request stays open for review (default 86400) */
      requestTtlSeconds: z.number().int().positive().default(86_400),
    })
    .strict(),
  z
    .object({
      kind: z.literal("github"),
      /** REST API base: https://api.github.com (default) or https://<host>/api/v3 (GitHub Enterprise) */
      baseUrl: z.string().url().default("https://api.github.com"),
      owner: z.string().min(1),
      repo: z.string().min(1),
      /** branch requests are opened against (default: the repository's default branch) */
      baseBranch: z.string().optional(),
      /** env var holding a token with contents + pull requests: write (default GITHUB_TOKEN; unused with app) */
      tokenEnv: z.string().default("GITHUB_TOKEN"),
      /** GitHub App credentials instead of a token */
      app: z
        .object({
          appId: z.union([z.string().min(1), z.number().int().positive()]),
          privateKeyFile: z.string(),
          installationId: z.number().int().positive(),
        })
        .strict()
        .optional(),
      /** env var holding the webhook secret; without it webhooks are not served (polling only) */
      webhookSecretEnv: z.string().optional(),
      /** the webhook endpoint: a separate listener (host:port), path, and whether it speaks TLS */
      webhook: z
        .object({
          listen: z.string().default("127.0.0.1:8444"),
          path: z.string().startsWith("/").default("/custos/v1/github-webhook"),
          /** true (default): HTTPS with the gateway's certificate; false: plain HTTP behind a TLS proxy */
          tls: z.boolean().default(true),
        })
        .strict()
        .default({ listen: "127.0.0.1:8444", path: "/custos/v1/github-webhook", tls: true }),
      /** re-read open requests every N seconds (default 30; webhooks make it faster) */
      pollIntervalSeconds: z.number().nonnegative().default(30),
      /** while a request is pending, a call re-reads its reviews at most every N seconds (default 10) */
      recheckIntervalSeconds: z.number().nonnegative().default(10),
      requestTtlSeconds: z.number().int().positive().default(86_400),
      /** grants and used grants persist here (default <stateDir>/approvals) */
      stateDir: z.string().optional(),
    })
    .strict(),
]);

export const GatewayFileConfig = z
  .object({
    /** host:port, e.g. "127.0.0.1:8443" or "0.0.0.0:8443" */
    listen: z.string().default("127.0.0.1:8443"),
    /** operators' endpoints /livez, /readyz, /metrics (plain HTTP): host:port, port 0 picks one */
    ops: z.object({ listen: z.string() }).strict().default({ listen: "127.0.0.1:9444" }),
    /** where generated TLS material, the login key and defaults live */
    stateDir: z.string().default(".custos/gateway"),
    /** extra DNS names / IPs for the generated server certificate */
    hosts: z.array(z.string()).default([]),
    tls: z.object({ certFile: z.string(), keyFile: z.string(), caFile: z.string().optional() }).optional(),
    /**
     * the listener's cipher preference, an OpenSSL cipher list (TLS 1.3 suites and TLS 1.2
     * ciphers, chosen in this order whatever the client offers); default: AES-128-GCM first, as
     * kube-apiserver, then Node's default list
     */
    tlsCiphers: z.string().min(1).optional(),
    /** the compiled policy (JSON from `custos compile`) */
    policy: z.string(),
    upstream: z
      .object({
        kubeconfig: z.string().optional(),
        inCluster: z.boolean().default(false),
        context: z.string().optional(),
        timeoutSeconds: z.number().positive().default(30),
        impersonate: z.boolean().default(false),
        /** plain GETs over the lean HTTP/1.1 client (default) or always over Node's https.request */
        client: z.enum(["lean", "node"]).default("lean"),
      })
      .refine((u) => u.inCluster || u.kubeconfig !== undefined, {
        message: "give upstream.kubeconfig or upstream.inCluster: true",
      }),
    auth: z
      .object({
        tokenFile: z.string().optional(),
        oidc: z.array(OidcProvider).default([]),
        tokenReview: z.boolean().default(false),
        /** secret for `custos login` tokens (>= 32 bytes); generated in stateDir when absent */
        loginKeyFile: z.string().optional(),
        login: z.boolean().default(true),
      })
      .default({ oidc: [], tokenReview: false, login: true }),
    evidence: z
      .discriminatedUnion("kind", [
        z.object({ kind: z.literal("jsonl"), file: z.string(), fsync: z.boolean().default(true) }),
        GitEvidence,
      ])
      .default({ kind: "jsonl", file: ".custos/gateway/evidence.jsonl", fsync: true }),
    /** where approval requests go (rules with decision requireApproval); none: such calls are refused */
    approvals: Approvals.default({ kind: "none" }),
    /** OpenSSH ed25519 private key that signs evidence commits (evidence.kind git) */
    signingKey: z.string().optional(),
    /** the deployment's pseudonym key (>= 16 bytes, raw or base64 text); generated in stateDir when absent */
    pseudonymKey: z.string().optional(),
    gatewayId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
      .default("gw-1"),
    limits: z
      .object({
        maxBodyBytes: z.number().int().positive().optional(),
        maxResponseBytes: z.number().int().positive().optional(),
        maxRecordingBytes: z.number().int().positive().optional(),
        sessionPingMs: z.number().int().positive().optional(),
      })
      .default({}),
    /** hold calls waiting for approval (poll interval, ms) */
    approvalPollMs: z.number().int().positive().default(2000),
  })
  .strict();
export type GatewayFileConfig = z.infer<typeof GatewayFileConfig>;

export class GatewayConfigFileError extends Error {
  readonly code = "GATEWAY_CONFIG_INVALID";
  readonly data: { issues: { path: string; message: string }[] };
  constructor(file: string, issues: { path: string; message: string }[]) {
    super(
      `${file}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}; fix the gateway config (see custos gateway --help)`,
    );
    this.data = { issues };
  }
}

export function parseGatewayFileConfig(value: unknown, file: string): GatewayFileConfig {
  const r = GatewayFileConfig.safeParse(value ?? {});
  if (!r.success)
    throw new GatewayConfigFileError(
      file,
      r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    );
  const c = r.data;
  // credentials in the remote URL are never sent (the pusher strips them) and are a secret in a
  // config file: refuse them, without repeating them
  if (c.evidence.kind === "git" && c.evidence.remote) {
    const u = new URL(c.evidence.remote.url);
    if (u.username !== "" || u.password !== "")
      throw new GatewayConfigFileError(file, [
        {
          path: "evidence.remote.url",
          message:
            "the URL holds credentials (user:token@), which are never sent and must not be in a config file; remove them and name an environment variable holding the token in evidence.remote.tokenEnv (user name: evidence.remote.username)",
        },
      ]);
  }
  const base = path.dirname(path.resolve(file));
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(base, p));
  c.stateDir = abs(c.stateDir)!;
  c.policy = abs(c.policy)!;
  if (c.tls)
    c.tls = {
      certFile: abs(c.tls.certFile)!,
      keyFile: abs(c.tls.keyFile)!,
      ...(c.tls.caFile ? { caFile: abs(c.tls.caFile)! } : {}),
    };
  if (c.upstream.kubeconfig) c.upstream.kubeconfig = abs(c.upstream.kubeconfig)!;
  if (c.auth.tokenFile) c.auth.tokenFile = abs(c.auth.tokenFile)!;
  if (c.auth.loginKeyFile) c.auth.loginKeyFile = abs(c.auth.loginKeyFile)!;
  for (const o of c.auth.oidc) if (o.jwksFile) o.jwksFile = abs(o.jwksFile)!;
  if (c.evidence.kind === "jsonl") c.evidence.file = abs(c.evidence.file)!;
  else {
    c.evidence.dir = abs(c.evidence.dir)!;
    c.evidence.checkpointsFile = abs(c.evidence.checkpointsFile) ?? path.join(c.stateDir, "checkpoints.txt");
  }
  if (c.approvals.kind === "local") c.approvals.dir = abs(c.approvals.dir)!;
  if (c.approvals.kind === "github") {
    c.approvals.stateDir = abs(c.approvals.stateDir) ?? path.join(c.stateDir, "approvals");
    if (c.approvals.app) c.approvals.app.privateKeyFile = abs(c.approvals.app.privateKeyFile)!;
  }
  if (c.signingKey) c.signingKey = abs(c.signingKey)!;
  if (c.pseudonymKey) c.pseudonymKey = abs(c.pseudonymKey)!;
  return c;
}

/** `host:port` of the config key `key` (listen, ops.listen, approvals.webhook.listen) */
export function parseListen(listen: string, key = "listen"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!m)
    throw new GatewayConfigFileError("gateway config", [
      { path: key, message: `expected host:port (e.g. 127.0.0.1:8443), found "${listen}"` },
    ]);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}
