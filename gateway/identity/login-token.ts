/**
 * custos login tokens: short-lived, purpose-bound bearer tokens signed by the gateway's own
 * secret (HS256 JWT, RFC 7519). They carry the underlying identity (subject, groups, claims,
 * source) and the declared purpose, so plain kubectl supplies a purpose without patches.
 */
import { randomUUID } from "node:crypto";
import { jwtVerify, SignJWT } from "jose";
import type { Identity } from "../ports.ts";

export const LOGIN_ISSUER = "custos-gateway";
export const LOGIN_AUDIENCE = "custos-gateway";
/** at most a day: these are meant for one job or one working session */
export const MAX_LOGIN_TTL_SECONDS = 24 * 3600;

export interface LoginClaims {
  identity: Identity;
  purpose: string;
  expiresAt: Date;
  tokenId: string;
}

export class LoginTokenError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

export async function mintLoginToken(opts: {
  key: Uint8Array;
  identity: Identity;
  purpose: string;
  ttlSeconds: number;
  now: Date;
}): Promise<{ token: string; expiresAt: Date; tokenId: string }> {
  if (opts.key.length < 32)
    throw new LoginTokenError("LOGIN_KEY_TOO_SHORT", "login key must be at least 32 bytes");
  if (!(opts.ttlSeconds > 0 && opts.ttlSeconds <= MAX_LOGIN_TTL_SECONDS))
    throw new LoginTokenError(
      "LOGIN_TTL_INVALID",
      `login token ttl must be between 1 and ${MAX_LOGIN_TTL_SECONDS} seconds, found ${opts.ttlSeconds}`,
    );
  const iat = Math.floor(opts.now.getTime() / 1000);
  const exp = iat + opts.ttlSeconds;
  const tokenId = randomUUID();
  // The underlying source is kept: a login token never upgrades a token-file identity to anything else.
  const token = await new SignJWT({
    groups: opts.identity.groups,
    claims: opts.identity.claims,
    src: opts.identity.source,
    purpose: opts.purpose,
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(LOGIN_ISSUER)
    .setAudience(LOGIN_AUDIENCE)
    .setSubject(opts.identity.subject)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(tokenId)
    .sign(opts.key);
  return { token, expiresAt: new Date(exp * 1000), tokenId };
}

export async function verifyLoginToken(token: string, key: Uint8Array, now: Date): Promise<LoginClaims> {
  const { payload } = await jwtVerify(token, key, {
    issuer: LOGIN_ISSUER,
    audience: LOGIN_AUDIENCE,
    algorithms: ["HS256"],
    currentDate: now,
    requiredClaims: ["exp", "iat", "sub", "jti"],
  });
  const p = payload as Record<string, unknown>;
  if (typeof p.exp === "number" && typeof p.iat === "number" && p.exp - p.iat > MAX_LOGIN_TTL_SECONDS)
    throw new LoginTokenError("LOGIN_TTL_INVALID", "login token lives longer than allowed");
  const purpose = p.purpose;
  if (typeof purpose !== "string" || purpose === "")
    throw new LoginTokenError("LOGIN_NO_PURPOSE", "login token has no purpose");
  const groups = Array.isArray(p.groups) ? p.groups.filter((g): g is string => typeof g === "string") : [];
  const claims: Record<string, string> = {};
  if (p.claims && typeof p.claims === "object")
    for (const [k, v] of Object.entries(p.claims)) if (typeof v === "string") claims[k] = v;
  const src = typeof p.src === "string" ? p.src : "login";
  return {
    // source "login"; the identity it was minted from is kept in claims.loginSource
    identity: {
      subject: payload.sub as string,
      groups,
      claims: { ...claims, loginSource: src, loginTokenId: p.jti as string },
      source: "login",
    },
    purpose,
    expiresAt: new Date((p.exp as number) * 1000),
    tokenId: p.jti as string,
  };
}

/** A kubeconfig `users[]` entry for a login token (printable with `custos login --kubeconfig-user`). */
export function kubeconfigUserEntry(name: string, token: string): Record<string, unknown> {
  return { name, user: { token } };
}
