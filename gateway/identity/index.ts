/**
 * Identity stage: bearer token -> Identity (+ purpose). Sources, tried by the token's shape:
 * a JWT whose issuer is the gateway's -> custos login token; a JWT from a configured OIDC
 * issuer -> OIDC; otherwise the static token file; otherwise (optionally) TokenReview
 * against the upstream. Failures are 401s that never echo the token.
 */
import { hash } from "node:crypto";
import { decodeJwt, errors as joseErrors } from "jose";
import { unauthenticated } from "../errors.ts";
import type { Identity } from "../ports.ts";
import { LOGIN_ISSUER, verifyLoginToken } from "./login-token.ts";
import { OidcIdentityRefused, type OidcProvider } from "./oidc.ts";
import { copyIdentity, type TokenFileAuthenticator } from "./token-file.ts";

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
  /**
   * How long a verified JWT (custos login token, OIDC token) is reused without verifying its
   * signature again, in ms (default 60 s; 0 disables). Never past the token's own `exp`.
   */
  jwtCacheMs?: number;
  /** at most this many verified JWTs are kept (default 4096; the oldest goes first) */
  jwtCacheSize?: number;
}

interface CachedJwt {
  auth: Authenticated;
  /** the entry is used only while now < until (ms): min(token exp, verified + jwtCacheMs) */
  until: number;
}

function copyAuthenticated(a: Authenticated): Authenticated {
  const out: Authenticated = { identity: copyIdentity(a.identity) };
  if (a.tokenPurpose !== undefined) out.tokenPurpose = a.tokenPurpose;
  return out;
}

export class Authenticator {
  readonly #o: AuthenticatorOptions;
  /** verified JWTs by sha256 of the token (the token itself is never kept) */
  readonly #jwts = new Map<string, CachedJwt>();
  constructor(o: AuthenticatorOptions) {
    this.#o = o;
  }

  /** how many verified JWTs are cached (tests) */
  get cachedTokens(): number {
    return this.#jwts.size;
  }

  async authenticate(authorization: string | undefined, now: Date): Promise<Authenticated> {
    if (authorization === undefined || authorization === "") throw unauthenticated("no bearer token");
    const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
    if (!m?.[1]) throw unauthenticated("the Authorization header is not a bearer token");
    const token = m[1];
    let iss: string | undefined;
    let exp: number | undefined;
    let digest: string | undefined;
    if (token.split(".").length === 3) {
      // a JWT verified a moment ago: reuse the result until its exp (or the cache lifetime)
      digest = hash("sha256", token, "hex");
      const hit = this.#jwts.get(digest);
      if (hit) {
        if (now.getTime() < hit.until) return copyAuthenticated(hit.auth);
        this.#jwts.delete(digest);
      }
      try {
        const payload = decodeJwt(token);
        iss = typeof payload.iss === "string" ? payload.iss : undefined;
        exp = typeof payload.exp === "number" ? payload.exp : undefined;
      } catch {
        iss = undefined;
      }
    }
    if (iss === LOGIN_ISSUER) {
      if (!this.#o.loginKey) throw unauthenticated("custos login tokens are not enabled on this gateway");
      let auth: Authenticated;
      try {
        const c = await verifyLoginToken(token, this.#o.loginKey, now);
        auth = { identity: c.identity, tokenPurpose: c.purpose };
      } catch (e) {
        throw unauthenticated(`invalid custos login token (${jwtReason(e)}); run "custos login" again`);
      }
      this.#remember(digest, exp, now, auth);
      return auth;
    }
    const provider = iss === undefined ? undefined : this.#o.oidc?.find((p) => p.issuer === iss);
    if (provider) {
      let auth: Authenticated;
      try {
        auth = { identity: await provider.verify(token, now) };
      } catch (e) {
        if (e instanceof OidcIdentityRefused)
          throw unauthenticated(`OIDC token from ${provider.issuer} refused: ${e.message}`, e.data);
        throw unauthenticated(`invalid OIDC token from ${provider.issuer} (${jwtReason(e)})`);
      }
      this.#remember(digest, exp, now, auth);
      return auth;
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

  /** cache a verified JWT's result; only tokens with an exp (both kinds require one) */
  #remember(digest: string | undefined, exp: number | undefined, now: Date, auth: Authenticated): void {
    const ttl = this.#o.jwtCacheMs ?? 60_000;
    if (digest === undefined || exp === undefined || ttl <= 0) return;
    const until = Math.min(exp * 1000, now.getTime() + ttl);
    if (!(until > now.getTime())) return;
    const max = this.#o.jwtCacheSize ?? 4096;
    while (this.#jwts.size >= max) {
      const oldest = this.#jwts.keys().next();
      if (oldest.done) break;
      this.#jwts.delete(oldest.value);
    }
    this.#jwts.set(digest, { auth: copyAuthenticated(auth), until });
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
