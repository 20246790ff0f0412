/**
 * GitHub App credentials for the approvals repository, without extra dependencies: an
 * Octokit auth strategy that signs the App's JWT (RS256, RFC 7519; GitHub's rules: iat 60 s in
 * the past, exp at most 10 min ahead, iss = App id) with the App's private key and exchanges it
 * for an installation access token (POST /app/installations/{id}/access_tokens), cached until
 * five minutes before it expires. Pass it to `createOctokit({ app: ... })`.
 */
import { createPrivateKey, sign } from "node:crypto";
import { ApprovalBackendError } from "./errors.ts";

export interface GitHubAppCredentials {
  appId: string | number;
  /** the App's private key as downloaded from GitHub (PKCS#1 "BEGIN RSA PRIVATE KEY") or PKCS#8 */
  privateKey: string;
  installationId: number;
  clock?: () => Date;
}

type RequestFn = ((route: string, params?: Record<string, unknown>) => Promise<{ data: unknown }>) & {
  endpoint: {
    merge: (
      route: unknown,
      params?: unknown,
    ) => { url: string; headers: Record<string, string> } & Record<string, unknown>;
  };
};

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export function appJwt(c: GitHubAppCredentials): string {
  const now = Math.floor((c.clock?.() ?? new Date()).getTime() / 1000);
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ iat: now - 60, exp: now + 540, iss: String(c.appId) }));
  const key = createPrivateKey(c.privateKey);
  const sig = sign("sha256", Buffer.from(`${header}.${payload}`), key);
  return `${header}.${payload}.${b64url(sig)}`;
}

const APP_ROUTE = /^(?:[A-Z]+ )?\/app(?:\/|$)|\/app\/installations\/[^/]+\/access_tokens/;

/** An Octokit `authStrategy`: `new Octokit({ authStrategy: githubAppAuthStrategy, auth: credentials })`. */
export function githubAppAuthStrategy(options: GitHubAppCredentials & { request: RequestFn }) {
  const c = options;
  let cached: { token: string; expiresAt: number } | undefined;
  let inflight: Promise<string> | undefined;
  const now = () => (c.clock?.() ?? new Date()).getTime();
  const installationToken = async (): Promise<string> => {
    if (cached && cached.expiresAt - 5 * 60_000 > now()) return cached.token;
    inflight ??= (async () => {
      try {
        const res = await c.request("POST /app/installations/{installation_id}/access_tokens", {
          installation_id: c.installationId,
          headers: { authorization: `bearer ${appJwt(c)}` },
        });
        const data = res.data as { token?: string; expires_at?: string };
        if (!data.token) throw new Error("no token in the response");
        cached = { token: data.token, expiresAt: Date.parse(data.expires_at ?? "") || now() + 3_600_000 };
        return data.token;
      } catch (e) {
        throw new ApprovalBackendError(
          `expected an installation token for GitHub App ${c.appId} installation ${c.installationId}, found ${(e as { status?: number }).status ? `HTTP ${(e as { status?: number }).status}` : "an error"}: ${(e as Error).message}; check the App id, installation id and private key`,
          { appId: String(c.appId), installationId: c.installationId },
        );
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  const auth = async () => ({ type: "token", tokenType: "installation", token: await installationToken() });
  auth.hook = async (request: RequestFn, route: unknown, parameters?: unknown) => {
    const endpoint = request.endpoint.merge(route, parameters);
    if (APP_ROUTE.test(endpoint.url)) return request(endpoint as never); // carries the JWT already
    endpoint.headers.authorization = `token ${await installationToken()}`;
    return request(endpoint as never);
  };
  return auth;
}
