/**
 * OIDC bearer tokens (e.g. GitHub Actions' `ACTIONS_ID_TOKEN`) verified with `jose` against a
 * JWKS from a URL or a file: signature, issuer, audience, expiry, allowed algorithms (never
 * "none", never HMAC: a public JWKS cannot verify a shared secret). Claims are mapped to the
 * identity: subject, groups and job-run facts (repository, workflow, ref, runId, sha, ...).
 */
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from "jose";
import type { Identity } from "../ports.ts";

export interface OidcProviderConfig {
  issuer: string;
  audience: string | string[];
  jwksUrl?: string;
  jwks?: JSONWebKeySet;
  /** asymmetric algorithms only; default RS256 + ES256 */
  algorithms?: string[];
  /** claim holding the subject (default "sub") */
  usernameClaim?: string;
  /** prepended to the subject, e.g. "github:" */
  usernamePrefix?: string;
  /** claim holding the groups (array or comma separated string) */
  groupsClaim?: string;
  groupsPrefix?: string;
  /** extra groups every identity of this issuer receives, e.g. ["ci"] */
  extraGroups?: string[];
  /** identity claim name -> token claim name; defaults to GitHub Actions' names */
  claimMap?: Record<string, string>;
  /** tolerated clock skew (seconds), default 30 */
  clockToleranceSeconds?: number;
  /**
   * accept a user name or group from the token that starts with "system:" (default false: such
   * a token is refused, since Kubernetes reserves those names, e.g. system:masters, and with
   * impersonation the cluster would grant what it grants them)
   */
  allowSystemNames?: boolean;
}

/** GitHub Actions OIDC claim names -> identity claim names. */
export const GITHUB_ACTIONS_CLAIMS: Record<string, string> = {
  repository: "repository",
  repositoryOwner: "repository_owner",
  workflow: "workflow",
  ref: "ref",
  runId: "run_id",
  runAttempt: "run_attempt",
  sha: "sha",
  actor: "actor",
  eventName: "event_name",
  environment: "environment",
  jobWorkflowRef: "job_workflow_ref",
};

const ALLOWED_ALGS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
]);

export class OidcConfigError extends Error {
  readonly code = "OIDC_CONFIG_INVALID";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.data = data;
  }
}

/** A verified token whose claims the gateway will not take as an identity (401, with the reason). */
export class OidcIdentityRefused extends Error {
  readonly code = "OIDC_IDENTITY_REFUSED";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.data = data;
  }
}

/** Kubernetes reserves these names (system:masters, system:admin, system:serviceaccount:...). */
const isSystemName = (s: string) => s.toLowerCase().startsWith("system:");

export class OidcProvider {
  readonly issuer: string;
  readonly #cfg: OidcProviderConfig;
  readonly #keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  readonly #algorithms: string[];

  constructor(cfg: OidcProviderConfig) {
    this.#cfg = cfg;
    this.issuer = cfg.issuer;
    this.#algorithms = cfg.algorithms ?? ["RS256", "ES256"];
    for (const a of this.#algorithms)
      if (!ALLOWED_ALGS.has(a))
        throw new OidcConfigError(
          `OIDC issuer ${cfg.issuer}: algorithm "${a}" is not allowed; use an asymmetric one (RS256, ES256, EdDSA, ...)`,
          {
            alg: a,
          },
        );
    if (cfg.jwks) this.#keys = createLocalJWKSet(cfg.jwks);
    else if (cfg.jwksUrl) this.#keys = createRemoteJWKSet(new URL(cfg.jwksUrl), { timeoutDuration: 5000 });
    else throw new OidcConfigError(`OIDC issuer ${cfg.issuer}: give jwksUrl or jwksFile`);
  }

  async verify(token: string, now: Date): Promise<Identity> {
    const { payload } = await jwtVerify(token, this.#keys, {
      issuer: this.#cfg.issuer,
      audience: this.#cfg.audience,
      algorithms: this.#algorithms,
      currentDate: now,
      clockTolerance: this.#cfg.clockToleranceSeconds ?? 30,
      requiredClaims: ["exp", "iss", "aud"],
    });
    return mapClaims(payload, this.#cfg);
  }
}

export function mapClaims(payload: JWTPayload, cfg: OidcProviderConfig): Identity {
  const p = payload as Record<string, unknown>;
  const userClaim = cfg.usernameClaim ?? "sub";
  const user = p[userClaim];
  if (typeof user !== "string" || user === "")
    throw new OidcConfigError(`OIDC token has no string "${userClaim}" claim to use as the user name`, {
      claim: userClaim,
    });
  // kube-apiserver's rule: an email is a user name only if the issuer did not say it is unverified
  if (userClaim === "email" && Object.hasOwn(p, "email_verified") && p.email_verified !== true)
    throw new OidcIdentityRefused(`OIDC token's email is not verified (email_verified is not true)`, {
      claim: "email_verified",
    });
  const subject = `${cfg.usernamePrefix ?? ""}${user}`;
  if (isSystemName(subject) && cfg.allowSystemNames !== true)
    throw new OidcIdentityRefused(
      `the user name "${subject}" (claim "${userClaim}") starts with "system:", a name Kubernetes reserves; set usernamePrefix (e.g. "oidc:") on this issuer in the gateway config, or allowSystemNames: true if the issuer may name system users`,
      { claim: userClaim },
    );
  const groups: string[] = [];
  if (cfg.groupsClaim) {
    const g = p[cfg.groupsClaim];
    const list = Array.isArray(g) ? g : typeof g === "string" ? g.split(",") : [];
    for (const x of list)
      if (typeof x === "string" && x.trim() !== "") groups.push(`${cfg.groupsPrefix ?? ""}${x.trim()}`);
    const sys = groups.find(isSystemName);
    if (sys !== undefined && cfg.allowSystemNames !== true)
      throw new OidcIdentityRefused(
        `the group "${sys}" (claim "${cfg.groupsClaim}") starts with "system:", a name Kubernetes reserves (system:masters is cluster-admin); set groupsPrefix (e.g. "oidc:") on this issuer in the gateway config, or allowSystemNames: true if the issuer may name system groups`,
        { claim: cfg.groupsClaim },
      );
  }
  groups.push(...(cfg.extraGroups ?? []));
  const claims: Record<string, string> = { issuer: cfg.issuer };
  for (const [name, claim] of Object.entries(cfg.claimMap ?? GITHUB_ACTIONS_CLAIMS)) {
    const v = p[claim];
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") claims[name] = String(v);
  }
  return { subject, groups, claims, source: "oidc" };
}
