/**
 * `custos demo` (what `npm start` runs): the Kubernetes API simulator seeded with synthetic
 * patients, the custos gateway in front of it with the HIPAA baseline policy, a signed git
 * evidence repo and a local approvals repo — everything a newcomer needs to try custos with
 * plain kubectl. A composition root: it reads the clock, the environment and files.
 *
 * Layout of the demo directory (default .custos/demo):
 *   kubeconfig         contexts ci-agent (purpose "operations"), operator (purpose "treatment"), admin
 *   policy.ts          the policy: the HIPAA baseline with the demo reviewer's key (edit, it recompiles at start)
 *   policy.json        the compiled policy
 *   evidence/          the evidence repository, as an auditor would clone it
 *   allowed_signers    the gateway's public key in git's allowed-signers format
 *   approvals/         the local approvals repository (requests and signed reviews)
 *   reviewer.key       the demo reviewer's private key: custos approve --key <dir>/reviewer.key <id>
 *   gateway.key        the gateway's evidence signing key
 *   state/             TLS material, login and pseudonym keys
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import {
  agentKubeconfig,
  ensureTls,
  loadKubeConfig,
  loadOrCreateKey,
  startGateway,
  stderrLogger,
  TokenFileAuthenticator,
  Upstream,
} from "../gateway/index.ts";
import { createMasker } from "../gateway/masking/index.ts";
import { LocalApprovalService } from "../gitops/approvals/index.ts";
import { openEvidenceRepo } from "../gitops/evidence/index.ts";
import {
  createSigner,
  formatAllowedSigner,
  formatOpenSshPrivateKey,
  parseOpenSshPrivateKey,
} from "../gitops/signer/index.ts";
import { explainRequest, parseRequestWords } from "../sdk/cli/common.ts";
import { formatExplanation } from "../sdk/cli/explain.ts";
import { compilePolicyFile, formatProblem } from "../sdk/compiler/index.ts";
import { cliConventions } from "../sdk/lib/cli.ts";
import { loadSeed, startSimulator } from "../simulator/index.ts";
import { DEMO_SEED_PATH } from "../simulator/seed/planted.ts";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const BASELINE = path.join(REPO_ROOT, "templates", "hipaa", "baseline.ts");

/** The demo reviewer, registered in the demo policy's approval group by immutable id. */
export const DEMO_REVIEWER = { githubId: 4242, login: "demo-reviewer" } as const;
export const DEMO_GATEWAY_ID = "demo-gw";

/** The three demo callers: token-file identities whose groups the HIPAA baseline names. */
const AGENTS = [
  {
    context: "ci-agent",
    user: "ci-bot",
    groups: "ci-agents",
    purpose: "operations",
    namespace: "phi-clinic",
  },
  { context: "operator", user: "alice", groups: "operators", purpose: "treatment", namespace: "phi-clinic" },
  {
    context: "admin",
    user: "root-admin",
    groups: "platform-admins",
    purpose: "incident-response",
    namespace: "default",
  },
] as const;

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("expected a port number 0-65535");
  return n;
}

export function demoCommand(): Command {
  return new Command("custos demo")
    .description(
      "run the Kubernetes API simulator (synthetic patients) + the custos gateway + the HIPAA baseline policy, " +
        "writing a kubeconfig, the evidence repo and a reviewer key into --dir; runs until interrupted",
    )
    .option(
      "--dir <dir>",
      "demo directory (kept between runs: keys, evidence and approvals persist)",
      ".custos/demo",
    )
    .option("--port <port>", "gateway port on 127.0.0.1 (0 picks a free one)", port, 0)
    .option(
      "--seed <file.yaml>",
      "load your own objects (multi-document YAML or a List) instead of the synthetic patients",
    )
    .option("--json", "print the ready message as one JSON line (for scripts) instead of the walkthrough")
    .option("--quiet", "no structured request log on stderr")
    .addHelpText(
      "after",
      "\nSeeded Pods can declare the log lines and exec output the simulator streams for them: see simulator/README.md.\n" +
        "Stop with Ctrl-C (SIGINT) or SIGTERM: evidence is flushed and committed, exit code 0.",
    );
}

async function keyFile(file: string, comment: string): Promise<Uint8Array> {
  if (existsSync(file)) return parseOpenSshPrivateKey(await readFile(file, "utf8")).seed;
  const seed = new Uint8Array(randomBytes(32));
  await writeFile(file, formatOpenSshPrivateKey(seed, comment), { mode: 0o600 });
  await writeFile(`${file}.pub`, `${createSigner(seed).publicKeyOpenSsh} ${comment}\n`);
  return seed;
}

async function tokens(file: string): Promise<Record<string, string>> {
  if (existsSync(file)) return JSON.parse(await readFile(file, "utf8")) as Record<string, string>;
  const t = Object.fromEntries(AGENTS.map((a) => [a.context, randomBytes(24).toString("base64url")]));
  await writeFile(file, `${JSON.stringify(t, null, 2)}\n`, { mode: 0o600 });
  return t;
}

export async function run(argv: string[]): Promise<number> {
  const cmd = cliConventions(demoCommand().exitOverride());
  try {
    cmd.parse(argv, { from: "user" });
  } catch (e) {
    const code = (e as { code?: string }).code;
    return code === "commander.helpDisplayed" || code === "commander.version" ? 0 : 2;
  }
  const o = cmd.opts<{ dir: string; port: number; seed?: string; json?: boolean; quiet?: boolean }>();
  const dir = path.resolve(o.dir);
  const say = (line = "") => {
    if (!o.json) process.stdout.write(`${line}\n`);
  };
  try {
    await mkdir(path.join(dir, "state"), { recursive: true, mode: 0o700 });

    // keys: the gateway's evidence signing key and the demo reviewer's approval key
    const gatewaySeed = await keyFile(path.join(dir, "gateway.key"), `${DEMO_GATEWAY_ID}@custos.local`);
    const reviewerSeed = await keyFile(path.join(dir, "reviewer.key"), DEMO_REVIEWER.login);
    const gatewaySigner = createSigner(gatewaySeed);
    const reviewerPub = createSigner(reviewerSeed).publicKeyOpenSsh;
    const principal = `${DEMO_GATEWAY_ID}@custos.local`;
    await writeFile(
      path.join(dir, "allowed_signers"),
      `${formatAllowedSigner(principal, gatewaySigner.publicKeyOpenSsh)}\n`,
    );

    // the policy: the HIPAA baseline with the demo reviewer, compiled like any user's policy
    const policyFile = path.join(dir, "policy.ts");
    if (!existsSync(policyFile)) {
      await writeFile(
        policyFile,
        [
          "// The demo policy: the HIPAA baseline with the demo reviewer registered as approver.",
          "// Edit it and restart `custos demo` (or run `custos compile` on it) to try your own rules.",
          `import { hipaaBaseline } from ${JSON.stringify(BASELINE)};`,
          "",
          "export default hipaaBaseline({",
          '  name: "hipaa-demo",',
          "  reviewers: [",
          `    { githubId: ${DEMO_REVIEWER.githubId}, login: ${JSON.stringify(DEMO_REVIEWER.login)}, keys: [${JSON.stringify(reviewerPub)}] },`,
          "  ],",
          "});",
          "",
        ].join("\n"),
      );
    }
    say("custos demo: compiling the policy ...");
    const compiled = await compilePolicyFile(policyFile, { root: REPO_ROOT });
    const errors = compiled.problems.filter((p) => p.severity === "error");
    if (!compiled.config || !compiled.text || errors.length > 0) {
      for (const p of compiled.problems) process.stderr.write(`${formatProblem(p)}\n`);
      process.stderr.write(
        `custos demo: ${policyFile} does not compile; fix the problems above and run again\n`,
      );
      return 2;
    }
    const config = compiled.config;
    await writeFile(path.join(dir, "policy.json"), compiled.text);

    // the cluster: the simulator with the synthetic patients (or the user's seed)
    const seedText = await readFile(o.seed ? path.resolve(o.seed) : DEMO_SEED_PATH, "utf8");
    const sim = await startSimulator({ seed: loadSeed(seedText) });
    const upstreamKubeconfig = path.join(dir, "state", "upstream.kubeconfig");
    await writeFile(upstreamKubeconfig, sim.kubeconfig(), { mode: 0o600 });

    // evidence: signed commits in <dir>/evidence; approvals: a local git repo in <dir>/approvals
    const sink = await openEvidenceRepo({
      dir: path.join(dir, "evidence"),
      gatewayId: DEMO_GATEWAY_ID,
      signer: gatewaySigner,
      principal,
      durability: "process",
      batchMaxDelayMs: 200,
      checkpointEvery: 1000,
    });
    await sink.recordPolicy(compiled.text);
    const approvals = new LocalApprovalService({
      dir: path.join(dir, "approvals"),
      approvalGroups: () => gateway.config().approvalGroups,
      evidence: sink,
      log: () => {},
    });
    await approvals.init();

    const tok = await tokens(path.join(dir, "state", "tokens.json"));
    const tokenCsv = AGENTS.map((a) => `${tok[a.context]},${a.user},${a.user},"${a.groups}"`).join("\n");
    const tls = await ensureTls(path.join(dir, "state"), ["127.0.0.1", "localhost"]);
    const pseudonymKey = await loadOrCreateKey(path.join(dir, "state", "pseudonym.key"), 32);
    const logger = o.quiet ? { info() {}, warn() {}, error: stderrLogger.error } : stderrLogger;

    const gateway = await startGateway({
      config,
      upstream: new Upstream(loadKubeConfig({ kubeconfig: upstreamKubeconfig }), { timeoutMs: 30_000 }),
      tls,
      listen: { host: "127.0.0.1", port: o.port },
      auth: {
        tokenFile: new TokenFileAuthenticator(tokenCsv),
        loginKey: await loadOrCreateKey(path.join(dir, "state", "login.key"), 32),
      },
      sink,
      approval: approvals,
      maskerFactory: (c) => createMasker(c, { pseudonymKey }),
      logger,
      ops: { host: "127.0.0.1", port: 0 },
    });

    const kubeconfig = path.join(dir, "kubeconfig");
    await writeFile(
      kubeconfig,
      agentKubeconfig({
        server: gateway.url,
        caPem: tls.caPem,
        contexts: AGENTS.map((a) => ({
          name: a.context,
          token: tok[a.context]!,
          purpose: a.purpose,
          namespace: a.namespace,
        })),
        current: "ci-agent",
      }),
      { mode: 0o600 },
    );

    // a sample decision, explained the way `custos explain` does
    const sample = parseRequestWords(["get", "secrets", "-n", "phi-clinic"]);
    const ex = explainRequest(config, sample, { as: "ciAgents" }, "operations");
    const rel = (p: string) => {
      const r = path.relative(process.cwd(), p);
      return r === "" ? "." : r.startsWith("..") ? p : r;
    };
    const custos = "npx custos";

    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({
          ready: true,
          url: gateway.url,
          opsUrl: gateway.opsUrl,
          dir,
          kubeconfig,
          evidence: path.join(dir, "evidence"),
          allowedSigners: path.join(dir, "allowed_signers"),
          approvals: path.join(dir, "approvals"),
          reviewerKey: path.join(dir, "reviewer.key"),
          policyHash: config.policyHash,
          contexts: AGENTS.map((a) => a.context),
        })}\n`,
      );
    } else {
      say(`custos demo: gateway ${gateway.url} -> simulated cluster ${sim.url}`);
      say(`health and metrics: ${gateway.opsUrl}/metrics (also /livez, /readyz)`);
      say(
        `policy ${config.name} ${config.policyHash} (${config.rules.length} rules, ${config.masks.length} masks)`,
      );
      say();
      say("A sample decision (custos explain --as ciAgents --purpose operations get secrets -n phi-clinic):");
      say(
        formatExplanation(ex, config.name)
          .split("\n")
          .map((l) => `  ${l}`)
          .join("\n"),
      );
      say();
      say("Try, in another terminal:");
      say(`  export KUBECONFIG=${rel(kubeconfig)}`);
      say(
        "  kubectl get pods                                  # ci-agent, purpose operations: allowed, env values masked",
      );
      say(
        "  kubectl logs intake-worker-0 -c worker            # identifiers masked line by line, names too when labelled or next to one",
      );
      say("  kubectl get secrets                               # denied: the message names the rule and why");
      say("  kubectl --context operator get configmaps patient-index -o yaml   # PHI masked field by field");
      say(
        "  kubectl --context operator exec ehr-api-7d9f8b6c5-x2k4q -- cat /data/patients.csv   # needs approval",
      );
      say("  kubectl auth can-i --list                          # answered from custos policy");
      say();
      say("Approve a pending request as the demo reviewer (the 403 message names <id>):");
      say(`  ${custos} approve --key ${rel(path.join(dir, "reviewer.key"))} <id>`);
      say();
      say("Audit what happened (evidence is committed every 200 ms):");
      say(
        `  ${custos} audit verify ${rel(path.join(dir, "evidence"))} --allowed-signers ${rel(path.join(dir, "allowed_signers"))}`,
      );
      say(`  ${custos} audit query ${rel(path.join(dir, "evidence"))} --namespace phi-clinic`);
      say(
        `  git -C ${rel(path.join(dir, "evidence"))} -c gpg.ssh.allowedSignersFile=${path.join(dir, "allowed_signers")} log --show-signature -3`,
      );
      say();
      say("Ctrl-C stops the demo (evidence is flushed first).");
    }

    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    say("\ncustos demo: stopping; flushing evidence ...");
    await gateway.stop();
    await approvals.close();
    await sink.close();
    await sim.stop();
    say(`custos demo: evidence committed in ${rel(path.join(dir, "evidence"))}`);
    return 0;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    process.stderr.write(`custos demo: ${err.message ?? String(e)}${err.code ? ` (${err.code})` : ""}\n`);
    return 3;
  }
}
