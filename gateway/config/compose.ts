/**
 * Composition root helpers: turn a GatewayFileConfig into startGateway options (keys and TLS
 * generated on first run in the state dir, token sources, upstream, evidence sink, masker).
 * Only the CLI (and the demo) call these; they read files, the clock and the environment.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { GatewayConfig } from "../../sdk/schema/config.ts";
import { JsonlEvidenceSink } from "../evidence/jsonl-sink.ts";
import type { AuthenticatorOptions } from "../identity/index.ts";
import { OidcProvider, type OidcProviderConfig } from "../identity/oidc.ts";
import { TokenFileAuthenticator } from "../identity/token-file.ts";
import { tokenReviewAuthenticator } from "../identity/tokenreview.ts";
import { createMasker } from "../masking/index.ts";
import type { EvidenceSink } from "../ports.ts";
import type { GatewayOptions } from "../server/gateway.ts";
import type { Logger } from "../server/runtime.ts";
import { ensureTls } from "../tls/ca.ts";
import { loadKubeConfig, Upstream } from "../upstream/index.ts";
import { type GatewayFileConfig, parseListen } from "./file.ts";

/** Read a key file, or create it with `bytes` random bytes (mode 0600) when missing. */
export async function loadOrCreateKey(file: string, bytes: number): Promise<Uint8Array> {
  try {
    const text = await readFile(file);
    const s = text.toString("utf8").trim();
    // base64 text or raw bytes
    const b = /^[A-Za-z0-9+/=_-]+$/.test(s) ? Buffer.from(s, "base64") : text;
    return new Uint8Array(b);
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

export interface Composed {
  options: GatewayOptions;
  sink: EvidenceSink;
}

export async function compose(c: GatewayFileConfig, logger: Logger): Promise<Composed> {
  const config = await loadPolicy(c.policy);
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
  const upstream = new Upstream(loadKubeConfig(kcSource), { timeoutMs: c.upstream.timeoutSeconds * 1000 });

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
    const ro: Parameters<typeof openEvidenceRepo>[0] = {
      dir: c.evidence.dir,
      gatewayId: c.gatewayId,
      signer: createSigner(key.seed),
      durability: "machine",
    };
    if (c.evidence.principal) ro.principal = c.evidence.principal;
    sink = await openEvidenceRepo(ro);
  }

  const pseudonymKey = await loadOrCreateKey(c.pseudonymKey ?? path.join(c.stateDir, "pseudonym.key"), 32);
  const limits: GatewayOptions["limits"] = {};
  if (c.limits.maxBodyBytes) limits.maxBodyBytes = c.limits.maxBodyBytes;
  if (c.limits.maxResponseBytes) limits.maxResponseBytes = c.limits.maxResponseBytes;
  return {
    sink,
    options: {
      config,
      upstream,
      tls,
      listen,
      auth,
      sink,
      maskerFactory: (cfg) => createMasker(cfg, { pseudonymKey }),
      logger,
      limits,
      impersonate: c.upstream.impersonate,
      approvalPollMs: c.approvalPollMs,
    },
  };
}
