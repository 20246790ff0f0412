/**
 * `custos gateway`: run the HTTPS gateway in front of a Kubernetes API server.
 * Flags override the YAML config file. SIGHUP (or a change of the policy file) reloads the
 * compiled policy; SIGINT/SIGTERM stop it after flushing evidence.
 */
import { watch } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { parse as parseYaml } from "yaml";
import { cliConventions } from "../../sdk/lib/cli.ts";
import { parseGatewayFileConfig } from "../config/file.ts";
import type { RunningGateway } from "../server/gateway.ts";
import { stderrLogger } from "../server/runtime.ts";

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

export function gatewayCommand(): Command {
  return new Command("custos gateway")
    .description("run the custos gateway: an HTTPS proxy between agents and the Kubernetes API server")
    .option("-c, --config <file>", "YAML gateway config (every flag below may also be set there)")
    .option("--listen <host:port>", "address to listen on (default 127.0.0.1:8443)")
    .option(
      "--ops-listen <host:port>",
      "plain-HTTP address of /livez, /readyz and /metrics for operators (default 127.0.0.1:9444; port 0 picks one)",
    )
    .option("--state-dir <dir>", "where generated TLS material and keys are kept (default .custos/gateway)")
    .option(
      "--tls-cert <file>",
      "server certificate (PEM); without it a CA and certificate are generated in the state dir",
    )
    .option("--tls-key <file>", "server private key (PEM)")
    .option("--tls-ca <file>", "CA certificate for agent kubeconfigs (PEM; default: the server certificate)")
    .option(
      "--tls-ciphers <list>",
      "the listener's cipher preference, an OpenSSL cipher list chosen in this order (default: TLS_AES_128_GCM_SHA256 first, as kube-apiserver, then Node's default list)",
    )
    .option("--host <name...>", "extra DNS names/IPs for the generated server certificate")
    .option("--policy <file>", "compiled policy JSON (from custos compile)")
    .option(
      "--upstream-kubeconfig <file>",
      "kubeconfig holding the gateway's own credential for the API server",
    )
    .option("--upstream-context <name>", "context in the upstream kubeconfig (default: its current-context)")
    .option("--in-cluster", "use the in-cluster service account as the upstream credential")
    .option(
      "--upstream-timeout <seconds>",
      "answer 504 when the API server sends no response headers in time (default 30)",
      positiveInt,
    )
    .option(
      "--impersonate",
      "impersonate the agent upstream (Impersonate-User/Group) so the cluster's RBAC applies too",
    )
    .option(
      "--token-file <file>",
      'static tokens in kube-apiserver --token-auth-file CSV format: token,user,uid,"group1,group2"',
    )
    .option(
      "--token-review",
      "accept cluster (service-account) tokens checked by TokenReview against the upstream",
    )
    .option(
      "--login-key <file>",
      "secret (>= 32 bytes) signing custos login tokens (default <state-dir>/login.key, created if missing)",
    )
    .option(
      "--evidence <file>",
      "JSON-lines evidence file (stand-in sink); use the config file for a git evidence repo",
    )
    .option("--evidence-repo <dir>", "git evidence repository (signed commits; needs --signing-key)")
    .option("--signing-key <file>", "OpenSSH ed25519 private key that signs evidence commits")
    .option(
      "--durability <level>",
      "git evidence: process (default: a record is in the write-ahead log before the call proceeds) or machine (also fsync'd)",
    )
    .option(
      "--approvals-local <dir>",
      "local approvals repository (reviewers run: custos approve <id> --local <dir> --key <key>); GitHub approvals: see the config file",
    )
    .option(
      "--pseudonym-key <file>",
      "key for pseudonymising masked values (default <state-dir>/pseudonym.key, created if missing)",
    )
    .option("--gateway-id <id>", "this gateway's id in evidence (default gw-1)")
    .option(
      "--max-body-bytes <n>",
      "refuse request bodies larger than this with 413 (default 3 MiB)",
      positiveInt,
    )
    .option("--no-watch-policy", "do not reload when the policy file changes (SIGHUP still reloads)")
    .addHelpText(
      "after",
      `
Config file sections (see gateway/config/example-gateway.yaml and docs/operations.md):
  evidence:  { kind: git, dir, durability: process|machine, remote: { url, tokenEnv },
               checkpointEvery, checkpointIntervalSeconds, checkpointsFile }
  approvals: { kind: none } (default: calls needing approval are refused)
             { kind: local, dir, pollIntervalSeconds, recheckIntervalSeconds }
             { kind: github, owner, repo, baseUrl, tokenEnv | app: { appId, privateKeyFile, installationId },
               webhookSecretEnv, webhook: { listen, path, tls }, pollIntervalSeconds, recheckIntervalSeconds }

Exit codes: 0 stopped cleanly (SIGINT/SIGTERM), 2 bad usage or config, 3 could not start.`,
    );
}

interface Flags {
  config?: string;
  listen?: string;
  opsListen?: string;
  stateDir?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsCiphers?: string;
  host?: string[];
  policy?: string;
  upstreamKubeconfig?: string;
  upstreamContext?: string;
  inCluster?: boolean;
  upstreamTimeout?: number;
  impersonate?: boolean;
  tokenFile?: string;
  tokenReview?: boolean;
  loginKey?: string;
  evidence?: string;
  evidenceRepo?: string;
  signingKey?: string;
  durability?: string;
  approvalsLocal?: string;
  pseudonymKey?: string;
  gatewayId?: string;
  maxBodyBytes?: number;
  watchPolicy: boolean;
}

/** Merge flags over the file's raw YAML (flags paths are relative to the working directory). */
function mergeFlags(raw: Record<string, unknown>, f: Flags, fileDir: string): Record<string, unknown> {
  const rel = (p: string) => path.relative(fileDir, path.resolve(p)) || ".";
  const out: Record<string, unknown> = { ...raw };
  const up = { ...((raw.upstream as Record<string, unknown>) ?? {}) };
  const auth = { ...((raw.auth as Record<string, unknown>) ?? {}) };
  if (f.listen) out.listen = f.listen;
  if (f.opsListen) out.ops = { listen: f.opsListen };
  if (f.stateDir) out.stateDir = rel(f.stateDir);
  if (f.tlsCert || f.tlsKey)
    out.tls = {
      certFile: rel(f.tlsCert ?? ""),
      keyFile: rel(f.tlsKey ?? ""),
      ...(f.tlsCa ? { caFile: rel(f.tlsCa) } : {}),
    };
  if (f.tlsCiphers) out.tlsCiphers = f.tlsCiphers;
  if (f.host) out.hosts = f.host;
  if (f.policy) out.policy = rel(f.policy);
  if (f.upstreamKubeconfig) up.kubeconfig = rel(f.upstreamKubeconfig);
  if (f.upstreamContext) up.context = f.upstreamContext;
  if (f.inCluster) up.inCluster = true;
  if (f.upstreamTimeout) up.timeoutSeconds = f.upstreamTimeout;
  if (f.impersonate) up.impersonate = true;
  if (f.tokenFile) auth.tokenFile = rel(f.tokenFile);
  if (f.tokenReview) auth.tokenReview = true;
  if (f.loginKey) auth.loginKeyFile = rel(f.loginKey);
  if (f.evidence) out.evidence = { kind: "jsonl", file: rel(f.evidence), fsync: true };
  if (f.evidenceRepo) out.evidence = { kind: "git", dir: rel(f.evidenceRepo) };
  if (f.signingKey) out.signingKey = rel(f.signingKey);
  if (f.durability) {
    const ev = (out.evidence as Record<string, unknown> | undefined) ?? {};
    if (ev.kind !== "git")
      throw new Error(
        "--durability applies to a git evidence repository; give --evidence-repo (or evidence.kind: git)",
      );
    out.evidence = { ...ev, durability: f.durability };
  }
  if (f.approvalsLocal) out.approvals = { kind: "local", dir: rel(f.approvalsLocal) };
  if (f.pseudonymKey) out.pseudonymKey = rel(f.pseudonymKey);
  if (f.gatewayId) out.gatewayId = f.gatewayId;
  if (f.maxBodyBytes)
    out.limits = { ...((raw.limits as Record<string, unknown>) ?? {}), maxBodyBytes: f.maxBodyBytes };
  out.upstream = up;
  out.auth = auth;
  return out;
}

export async function run(argv: string[]): Promise<number> {
  // its own help lists its exit codes
  const cmd = cliConventions(gatewayCommand().exitOverride(), process, { exitCodesHelp: false });
  let flags: Flags;
  try {
    cmd.parse(argv, { from: "user" });
    flags = cmd.opts<Flags>();
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 2;
  }
  const logger = stderrLogger;
  let file: string;
  let raw: Record<string, unknown> = {};
  try {
    file = path.resolve(flags.config ?? "custos-gateway.yaml");
    if (flags.config) raw = (parseYaml(await readFile(file, "utf8")) as Record<string, unknown>) ?? {};
  } catch (e) {
    process.stderr.write(
      `custos gateway: cannot read the config file ${flags.config}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check --config\n`,
    );
    return 2;
  }
  // loaded after argument parsing, so that --help stays fast
  const { compose, loadPolicyFile } = await import("../config/compose.ts");
  const { startGateway } = await import("../server/gateway.ts");
  let composed: Awaited<ReturnType<typeof compose>>;
  let policyFile: string;
  try {
    const c = parseGatewayFileConfig(mergeFlags(raw, flags, path.dirname(file)), file);
    policyFile = c.policy;
    composed = await compose(c, logger);
  } catch (e) {
    process.stderr.write(`custos gateway: ${(e as Error).message}\n`);
    return 2;
  }
  let gw: RunningGateway;
  try {
    gw = await startGateway(composed.options);
  } catch (e) {
    process.stderr.write(
      `custos gateway: could not start: ${(e as Error).message}; check --listen, --ops-listen and the TLS files\n`,
    );
    await composed.close();
    return 3;
  }
  composed.bind(gw);
  process.stdout.write(`custos gateway listening on ${gw.url} (policy ${gw.config().policyHash})\n`);
  if (gw.opsUrl)
    process.stdout.write(`custos gateway: health and metrics on ${gw.opsUrl} (/livez, /readyz, /metrics)\n`);
  if (composed.approval?.webhookUrl)
    process.stdout.write(`custos gateway: GitHub webhook endpoint ${composed.approval.webhookUrl}\n`);

  const reload = async (why: string) => {
    try {
      const next = await loadPolicyFile(policyFile);
      if (next.config.policyHash === gw.config().policyHash) return;
      // the new policy goes into the evidence repo before it is in force
      await composed.recordPolicy(next.text);
      await gw.reload(next.config, `custos-gateway (${why})`);
    } catch (e) {
      logger.error("policy reload refused; the previous policy stays in force", {
        reason: (e as Error).message.slice(0, 500),
      });
    }
  };
  process.on("SIGHUP", () => void reload("SIGHUP"));
  let debounce: NodeJS.Timeout | undefined;
  const watcher = flags.watchPolicy
    ? watch(path.dirname(policyFile), (_ev, name) => {
        if (name !== path.basename(policyFile)) return;
        clearTimeout(debounce);
        debounce = setTimeout(() => void reload("policy file changed"), 200);
      })
    : undefined;

  return new Promise<number>((resolve) => {
    const stop = async (sig: string) => {
      logger.info("stopping", { signal: sig });
      watcher?.close();
      await gw.stop();
      await composed.close();
      resolve(0);
    };
    process.once("SIGINT", () => void stop("SIGINT"));
    process.once("SIGTERM", () => void stop("SIGTERM"));
  });
}
