/**
 * `custos login`: get a short-lived, purpose-bound custos token so that plain kubectl
 * declares a purpose. Either exchange your own token at the gateway (`--server`, `--token`),
 * or — holding the gateway's login key — mint one offline (`--key`, `--as`). Prints the token,
 * or writes/updates a kubeconfig user (and context) that uses it.
 */
import { readFile, writeFile } from "node:fs/promises";
import https from "node:https";
import { Command, InvalidArgumentError } from "commander";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { cliConventions } from "../../sdk/lib/cli.ts";
import { kubeconfigUserEntry, MAX_LOGIN_TTL_SECONDS, mintLoginToken } from "../identity/login-token.ts";
import type { Identity } from "../ports.ts";
import { LOGIN_PATH } from "../server/http.ts";

function ttl(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > MAX_LOGIN_TTL_SECONDS)
    throw new InvalidArgumentError(`expected 1..${MAX_LOGIN_TTL_SECONDS} seconds`);
  return n;
}

export function loginCommand(): Command {
  return new Command("custos login")
    .description("mint a short-lived purpose-bound gateway token (for kubectl: a kubeconfig user)")
    .requiredOption("--purpose <id>", "the purpose to declare (one of the policy's purposes)")
    .option("--server <url>", "the gateway URL: exchange --token there for a login token")
    .option(
      "--token <token>",
      "your own bearer token (token file or OIDC); '@file' reads it from a file, '-' from stdin",
    )
    .option(
      "--certificate-authority <file>",
      "CA (PEM) of the gateway (default: from --kubeconfig's cluster, or the system CAs)",
    )
    .option("--key <file>", "the gateway's login key: mint offline instead of asking the gateway")
    .option("--as <user>", "with --key: the user name the token carries")
    .option("--as-group <group...>", "with --key: groups the token carries")
    .option("--ttl <seconds>", `token lifetime in seconds (at most ${MAX_LOGIN_TTL_SECONDS})`, ttl, 3600)
    .option(
      "--kubeconfig <file>",
      "write the token into this kubeconfig as a user (and a context if --context is given)",
    )
    .option("--user <name>", "kubeconfig user name to write (default custos-<purpose>)")
    .option(
      "--context <name>",
      "kubeconfig context to point at the new user (created from the current context's cluster)",
    );
}

interface Flags {
  purpose: string;
  server?: string;
  token?: string;
  certificateAuthority?: string;
  key?: string;
  as?: string;
  asGroup?: string[];
  ttl: number;
  kubeconfig?: string;
  user?: string;
  context?: string;
}

async function readToken(spec: string): Promise<string> {
  if (spec === "-") {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8").trim();
  }
  if (spec.startsWith("@")) return (await readFile(spec.slice(1), "utf8")).trim();
  return spec;
}

function exchange(
  server: string,
  token: string,
  body: unknown,
  ca: string | undefined,
): Promise<{ status: number; body: string }> {
  const u = new URL(LOGIN_PATH, server.endsWith("/") ? server : `${server}/`);
  return new Promise((resolve, reject) => {
    const req = https.request(
      u,
      {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

export async function run(argv: string[]): Promise<number> {
  const cmd = cliConventions(loginCommand().exitOverride());
  let f: Flags;
  try {
    cmd.parse(argv, { from: "user" });
    f = cmd.opts<Flags>();
  } catch (e) {
    return (e as { exitCode?: number }).exitCode === 0 ? 0 : 2;
  }
  let token: string;
  try {
    if (f.key) {
      if (!f.as) {
        process.stderr.write(
          "custos login: --key needs --as <user>; or use --server and --token to ask the gateway\n",
        );
        return 2;
      }
      const text = (await readFile(f.key)).toString("utf8").trim();
      const key = new Uint8Array(
        /^[A-Za-z0-9+/=_-]+$/.test(text) ? Buffer.from(text, "base64") : Buffer.from(text),
      );
      const identity: Identity = { subject: f.as, groups: f.asGroup ?? [], claims: {}, source: "login" };
      token = (
        await mintLoginToken({ key, identity, purpose: f.purpose, ttlSeconds: f.ttl, now: new Date() })
      ).token;
    } else if (f.server && f.token) {
      const own = await readToken(f.token);
      const ca = f.certificateAuthority ? await readFile(f.certificateAuthority, "utf8") : undefined;
      const r = await exchange(f.server, own, { purpose: f.purpose, ttlSeconds: f.ttl }, ca);
      if (r.status !== 200) {
        let msg = `HTTP ${r.status}`;
        try {
          msg = (JSON.parse(r.body) as { message?: string }).message ?? msg;
        } catch {}
        process.stderr.write(`custos login: the gateway refused: ${msg}\n`);
        return 1;
      }
      token = (JSON.parse(r.body) as { token: string }).token;
    } else {
      process.stderr.write(
        "custos login: give --server and --token (exchange at the gateway) or --key and --as (offline)\n",
      );
      return 2;
    }
  } catch (e) {
    process.stderr.write(`custos login: ${(e as Error).message}\n`);
    return 3;
  }
  if (!f.kubeconfig) {
    process.stdout.write(`${token}\n`);
    return 0;
  }
  const userName = f.user ?? `custos-${f.purpose}`;
  try {
    let kc: Record<string, unknown>;
    try {
      kc = (parseYaml(await readFile(f.kubeconfig, "utf8")) as Record<string, unknown>) ?? {};
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      kc = { apiVersion: "v1", kind: "Config", clusters: [], contexts: [], users: [] };
    }
    const users = ((kc.users as { name: string }[]) ?? []).filter((u) => u.name !== userName);
    users.push(kubeconfigUserEntry(userName, token) as { name: string });
    kc.users = users;
    if (f.context) {
      const contexts = (kc.contexts as { name: string; context: Record<string, unknown> }[]) ?? [];
      const current = contexts.find((c) => c.name === kc["current-context"]);
      const cluster = current?.context.cluster;
      if (!cluster) throw new Error(`${f.kubeconfig} has no current context to take the cluster from`);
      const next = contexts.filter((c) => c.name !== f.context);
      next.push({ name: f.context, context: { ...current.context, cluster, user: userName } });
      kc.contexts = next;
    }
    await writeFile(f.kubeconfig, stringifyYaml(kc), { mode: 0o600 });
    process.stdout.write(
      `wrote user ${userName}${f.context ? ` and context ${f.context}` : ""} to ${f.kubeconfig}\n`,
    );
    return 0;
  } catch (e) {
    process.stderr.write(`custos login: could not write ${f.kubeconfig}: ${(e as Error).message}\n`);
    return 3;
  }
}
