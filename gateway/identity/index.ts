/**
 * Identity stage: bearer token -> Identity (+ purpose). Sources, tried by the token's shape:
 * a JWT whose issuer is the gateway's -> custos login token; a JWT from a configured OIDC
 * issuer -> OIDC; otherwise the static token file; otherwise (optionally) TokenReview
 * against the upstream. Failures are 401s that never echo the token.
 */
import { decodeJwt, errors as joseErrors } from "jose";
import { unauthenticated } from "../errors.ts";
import type { Identity } from "../ports.ts";
import { LOGIN_ISSUER, verifyLoginToken } from "./login-token.ts";
import type { OidcProvider } from "./oidc.ts";
import type { TokenFileAuthenticator } from "./token-file.ts";

export interface Authenticated {
  identity: Identity;
  /** purpose bound into a custos login token */
  tokenPurpose?: string;
}

export interface AuthenticatorOptions {
  tokenFile?: TokenFileAuthenticator;
  oidc?: OidcProvider[];
  /** secret for custos login tokens; when absent, login tokens are not accepted */
  loginKey?: Uint8Array;
  /** TokenReview against the upstream; resolves undefined when the token is not authenticated */
  tokenReview?: (token: string) => Promise<Identity | undefined>;
}

export class Authenticator {
  readonly #o: AuthenticatorOptions;
  constructor(o: AuthenticatorOptions) {
    this.#o = o;
  }

  async authenticate(authorization: string | undefined, now: Date): Promise<Authenticated> {
    if (authorization === undefined || authorization === "") throw unauthenticated("no bearer token");
    const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
    if (!m?.[1]) throw unauthenticated("the Authorization header is not a bearer token");
    const token = m[1];
    let iss: string | undefined;
    if (token.split(".").length === 3) {
      try {
        const payload = decodeJwt(token);
        iss = typeof payload.iss === "string" ? payload.iss : undefined;
      } catch {
        iss = undefined;
      }
    }
    if (iss === LOGIN_ISSUER) {
      if (!this.#o.loginKey) throw unauthenticated("custos login tokens are not enabled on this gateway");
      try {
        const c = await verifyLoginToken(token, this.#o.loginKey, now);
        return { identity: c.identity, tokenPurpose: c.purpose };
      } catch (e) {
        throw unauthenticated(`invalid custos login token (${jwtReason(e)}); run "custos login" again`);
      }
    }
    const provider = iss === undefined ? undefined : this.#o.oidc?.find((p) => p.issuer === iss);
    if (provider) {
      try {
        return { identity: await provider.verify(token, now) };
      } catch (e) {
        throw unauthenticated(`invalid OIDC token from ${provider.issuer} (${jwtReason(e)})`);
      }
    }
    const fromFile = this.#o.tokenFile?.authenticate(token);
    if (fromFile) return { identity: fromFile };
    if (this.#o.tokenReview) {
      const reviewed = await this.#o.tokenReview(token);
      if (reviewed) return { identity: reviewed };
    }
    throw unauthenticated(
      iss === undefined ? "unknown token" : `token issuer is not trusted by this gateway`,
    );
  }
}

/** A short, token-free reason for a JWT failure. */
export function jwtReason(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return "expired";
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `claim "${e.claim}" ${e.reason}`;
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return "bad signature";
  if (e instanceof joseErrors.JWKSNoMatchingKey) return "no matching key";
  if (e instanceof joseErrors.JOSEError) return e.code;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "malformed";
}

/** `/purpose/<id>/...` as the kubeconfig server URL prefix: returns the purpose and the remaining path. */
export function splitPurposePrefix(rawUrl: string): { purpose?: string; url: string } {
  const m = /^\/purpose\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})(\/.*)?$/.exec(rawUrl.split("?")[0] ?? "");
  if (!m?.[1]) return { url: rawUrl };
  const q = rawUrl.indexOf("?");
  const rest = (m[2] ?? "/") + (q >= 0 ? rawUrl.slice(q) : "");
  return { purpose: m[1], url: rest };
}
