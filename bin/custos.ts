/**
 * `custos`: a thin dispatcher. Each command lives in its layer and exports
 * `run(argv: string[]): Promise<number>` (the exit code). Modules load lazily so that
 * `custos approve` does not pay for the gateway.
 *
 * Exit codes (all commands): 0 ok, 1 the check failed (policy test failure, verify
 * finding, decision deny in `explain --exit-code`), 2 bad usage or bad input, 3 runtime
 * failure (I/O, network).
 */
import { EXIT_CODES_HELP } from "../sdk/lib/cli.ts";

export interface CommandEntry {
  summary: string;
  load: () => Promise<{ run: (argv: string[]) => Promise<number> }>;
}

export const commands: Record<string, CommandEntry> = {
  compile: {
    summary: "compile a TypeScript policy into a gateway config",
    load: () => import("../sdk/cli/compile.ts"),
  },
  policy: { summary: "policy test | policy diff", load: () => import("../sdk/cli/policy.ts") },
  explain: { summary: "explain the decision for one request", load: () => import("../sdk/cli/explain.ts") },
  gateway: {
    summary: "run the gateway (HTTPS proxy to the Kubernetes API)",
    load: () => import("../gateway/cli/gateway.ts"),
  },
  login: {
    summary: "mint a short-lived purpose-bound gateway token",
    load: () => import("../gateway/cli/login.ts"),
  },
  demo: { summary: "run simulator + gateway + HIPAA template locally", load: () => import("./demo.ts") },
  keygen: {
    summary: "make an ed25519 signing key and print its allowed_signers line",
    load: () => import("../gitops/cli/keygen.ts"),
  },
  audit: {
    summary: "audit verify | query | report on an evidence repo",
    load: () => import("../gitops/cli/audit.ts"),
  },
  approve: {
    summary: "sign and submit an approval for a pending request",
    load: () => import("../gitops/cli/approve.ts"),
  },
  deny: {
    summary: "sign and submit a denial for a pending request",
    load: () => import("../gitops/cli/deny.ts"),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "usage: custos <command> [options]   (custos <command> --help for each)",
    "",
    "commands:",
    ...lines,
    "",
    "options: --help, --version",
    "",
    EXIT_CODES_HELP,
    "",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // no command is a usage error: the usage goes to stderr, stdout stays empty for scripts
    process.stderr.write(usage());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return 0;
  }
  if (name === "--version" || name === "-v") {
    const { default: pkg } = await import("../package.json", { with: { type: "json" } });
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`custos: unknown command "${name}"; run "custos --help" to list commands\n`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(rest);
}
