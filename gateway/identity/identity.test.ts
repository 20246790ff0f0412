import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors.ts";
import { Authenticator, splitPurposePrefix } from "./index.ts";
import { mintLoginToken, verifyLoginToken } from "./login-token.ts";
import { OidcProvider } from "./oidc.ts";
import { parseCsvLine, TokenFileAuthenticator, TokenFileError } from "./token-file.ts";

const NOW = new Date("2026-01-01T00:00:00Z");
const key = new Uint8Array(32).fill(7);

describe("token file", () => {
  it("parses kube-apiserver's CSV format with quoted groups", () => {
    expect(parseCsvLine('t,u,1,"a,b"')).toEqual(["t", "u", "1", "a,b"]);
    const a = new TokenFileAuthenticator('# comment\n\ntok1,alice,uid-1,"dev,ops"\ntok2,bob,uid-2\n');
    expect(a.size).toBe(2);
    expect(a.authenticate("tok1")).toEqual({
      subject: "alice",
      groups: ["dev", "ops"],
      claims: { uid: "uid-1" },
      source: "token-file",
    });
    expect(a.authenticate("tok2")?.groups).toEqual([]);
    expect(a.authenticate("tok3")).toBeUndefined();
  });
  it("rejects lines without a user", () => {
    expect(() => new TokenFileAuthenticator("tok-only\n")).toThrow(TokenFileError);
  });
});

describe("login tokens", () => {
  it("round-trips identity and purpose; expiry, wrong key and long ttl are refused", async () => {
    const identity = {
      subject: "alice",
      groups: ["dev"],
      claims: { repository: "acme/app" },
      source: "oidc" as const,
    };
    const { token } = await mintLoginToken({ key, identity, purpose: "deploy", ttlSeconds: 600, now: NOW });
    const c = await verifyLoginToken(token, key, new Date(NOW.getTime() + 1000));
    expect(c.purpose).toBe("deploy");
    expect(c.identity).toMatchObject({
      subject: "alice",
      groups: ["dev"],
      source: "login",
      claims: { repository: "acme/app", loginSource: "oidc" },
    });
    await expect(verifyLoginToken(token, key, new Date(NOW.getTime() + 601_000))).rejects.toThrow();
    await expect(verifyLoginToken(token, new Uint8Array(32).fill(8), NOW)).rejects.toThrow();
    await expect(
      mintLoginToken({ key, identity, purpose: "x", ttlSeconds: 10 ** 7, now: NOW }),
    ).rejects.toMatchObject({ code: "LOGIN_TTL_INVALID" });
  });
});

describe("OIDC", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const provider = new OidcProvider({
    issuer: "https://token.actions.githubusercontent.com",
    audience: "custos",
    jwks: { keys: [jwk] },
    algorithms: ["ES256"],
    usernamePrefix: "github:",
    extraGroups: ["ci"],
  });
  const sign = (claims: Record<string, unknown>, o: { aud?: string; exp?: number; iss?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(o.iss ?? "https://token.actions.githubusercontent.com")
      .setAudience(o.aud ?? "custos")
      .setSubject("repo:acme/app:ref:refs/heads/main")
      .setIssuedAt(Math.floor(NOW.getTime() / 1000))
      .setExpirationTime(o.exp ?? Math.floor(NOW.getTime() / 1000) + 300)
      .sign(privateKey);
  const auth = new Authenticator({ oidc: [provider], loginKey: key });

  it("maps GitHub Actions claims to the identity", async () => {
    const t = await sign({
      repository: "acme/app",
      workflow: "deploy",
      ref: "refs/heads/main",
      run_id: "42",
      sha: "abc",
      job_workflow_ref: "acme/app/.github/workflows/d.yml@refs/heads/main",
    });
    const a = await auth.authenticate(`Bearer ${t}`, NOW);
    expect(a.identity).toEqual({
      subject: "github:repo:acme/app:ref:refs/heads/main",
      groups: ["ci"],
      source: "oidc",
      claims: {
        issuer: "https://token.actions.githubusercontent.com",
        repository: "acme/app",
        workflow: "deploy",
        ref: "refs/heads/main",
        runId: "42",
        sha: "abc",
        jobWorkflowRef: "acme/app/.github/workflows/d.yml@refs/heads/main",
      },
    });
  });
  it("401 for wrong audience, expired, unknown issuer, alg none, HMAC-signed and garbage", async () => {
    const bad = [
      await sign({}, { aud: "other" }),
      await sign({}, { exp: Math.floor(NOW.getTime() / 1000) - 100 }),
      await sign({}, { iss: "https://evil.example" }),
      `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ iss: "https://token.actions.githubusercontent.com", aud: "custos", sub: "x", exp: 9e9 })).toString("base64url")}.`,
      await new SignJWT({})
        .setProtectedHeader({ alg: "HS256" })
        .setIssuer("https://token.actions.githubusercontent.com")
        .setAudience("custos")
        .setSubject("x")
        .setExpirationTime(9e9)
        .sign(key),
      "not-a-token",
    ];
    for (const t of bad) {
      const e = await auth.authenticate(`Bearer ${t}`, NOW).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(GatewayError);
      expect((e as GatewayError).httpStatus).toBe(401);
      expect((e as GatewayError).message).not.toContain(t.slice(0, 40));
    }
    await expect(auth.authenticate(undefined, NOW)).rejects.toMatchObject({ httpStatus: 401 });
    await expect(auth.authenticate("Basic abc", NOW)).rejects.toMatchObject({ httpStatus: 401 });
  });
  it("accepts custos login tokens and reports their purpose", async () => {
    const { token } = await mintLoginToken({
      key,
      identity: { subject: "bob", groups: [], claims: {}, source: "token-file" },
      purpose: "deploy",
      ttlSeconds: 60,
      now: NOW,
    });
    const a = await auth.authenticate(`Bearer ${token}`, NOW);
    expect(a.tokenPurpose).toBe("deploy");
    expect(a.identity.subject).toBe("bob");
  });
});

describe("purpose path prefix", () => {
  it("strips /purpose/<id> and keeps the query", () => {
    expect(splitPurposePrefix("/purpose/deploy/api/v1/pods?limit=1")).toEqual({
      purpose: "deploy",
      url: "/api/v1/pods?limit=1",
    });
    expect(splitPurposePrefix("/purpose/deploy")).toEqual({ purpose: "deploy", url: "/" });
    expect(splitPurposePrefix("/api/v1/pods")).toEqual({ url: "/api/v1/pods" });
    expect(splitPurposePrefix("/purpose/../api")).toEqual({ url: "/purpose/../api" });
  });
});

describe("verified-JWT cache", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const issuer = "https://issuer.example";
  const nowS = Math.floor(NOW.getTime() / 1000);
  const sign = (exp: number, sub = "alice") =>
    new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(issuer)
      .setAudience("custos")
      .setSubject(sub)
      .setIssuedAt(nowS)
      .setExpirationTime(exp)
      .sign(privateKey);
  const counted = (o: { jwtCacheMs?: number; jwtCacheSize?: number } = {}) => {
    const provider = new OidcProvider({
      issuer,
      audience: "custos",
      jwks: { keys: [jwk] },
      algorithms: ["ES256"],
    });
    let verified = 0;
    const verify = provider.verify.bind(provider);
    provider.verify = (token, now) => {
      verified++;
      return verify(token, now);
    };
    return { auth: new Authenticator({ oidc: [provider], loginKey: key, ...o }), verified: () => verified };
  };
  const at = (s: number) => new Date(NOW.getTime() + s * 1000);

  it("verifies a token once, then reuses the result (a copy the caller may change)", async () => {
    const { auth, verified } = counted();
    const t = await sign(nowS + 300);
    const a = await auth.authenticate(`Bearer ${t}`, NOW);
    a.identity.groups.push("admins");
    a.identity.claims.extra = "x";
    const b = await auth.authenticate(`Bearer ${t}`, at(10));
    expect(verified()).toBe(1);
    expect(b.identity.subject).toBe("alice");
    expect(b.identity.groups).toEqual([]);
    expect(b.identity.claims.extra).toBeUndefined();
    expect(auth.cachedTokens).toBe(1);
  });

  it("never past the token's exp: an expired token is verified again, and refused", async () => {
    const { auth, verified } = counted({ jwtCacheMs: 3_600_000 });
    const t = await sign(nowS + 20);
    await auth.authenticate(`Bearer ${t}`, NOW);
    await auth.authenticate(`Bearer ${t}`, at(19));
    expect(verified()).toBe(1);
    // 20 s: past exp, so no longer cached; the verifier's own clock tolerance (30 s) still applies
    await auth.authenticate(`Bearer ${t}`, at(21));
    expect(verified()).toBe(2);
    await expect(auth.authenticate(`Bearer ${t}`, at(60))).rejects.toMatchObject({ httpStatus: 401 });
    expect(verified()).toBe(3);
  });

  it("never longer than jwtCacheMs; 0 disables the cache", async () => {
    const a = counted({ jwtCacheMs: 5_000 });
    const t = await sign(nowS + 300);
    await a.auth.authenticate(`Bearer ${t}`, NOW);
    await a.auth.authenticate(`Bearer ${t}`, at(4));
    expect(a.verified()).toBe(1);
    await a.auth.authenticate(`Bearer ${t}`, at(6));
    expect(a.verified()).toBe(2);
    const off = counted({ jwtCacheMs: 0 });
    await off.auth.authenticate(`Bearer ${t}`, NOW);
    await off.auth.authenticate(`Bearer ${t}`, NOW);
    expect(off.verified()).toBe(2);
    expect(off.auth.cachedTokens).toBe(0);
  });

  it("caches only verified tokens, keyed by the whole token; bounded in size", async () => {
    const { auth, verified } = counted({ jwtCacheSize: 2 });
    const good = await sign(nowS + 300);
    // same header and payload, another signature: refused, and not served from the cache
    const forged = `${good.split(".").slice(0, 2).join(".")}.${Buffer.alloc(64, 1).toString("base64url")}`;
    await auth.authenticate(`Bearer ${good}`, NOW);
    await expect(auth.authenticate(`Bearer ${forged}`, NOW)).rejects.toMatchObject({ httpStatus: 401 });
    await expect(auth.authenticate(`Bearer ${forged}`, NOW)).rejects.toMatchObject({ httpStatus: 401 });
    expect(verified()).toBe(3);
    for (const sub of ["b", "c", "d"]) await auth.authenticate(`Bearer ${await sign(nowS + 300, sub)}`, NOW);
    expect(auth.cachedTokens).toBe(2);
  });

  it("caches custos login tokens with their purpose, until their exp", async () => {
    const { auth } = counted();
    const { token } = await mintLoginToken({
      key,
      identity: { subject: "bob", groups: ["g"], claims: {}, source: "token-file" },
      purpose: "deploy",
      ttlSeconds: 30,
      now: NOW,
    });
    expect((await auth.authenticate(`Bearer ${token}`, NOW)).tokenPurpose).toBe("deploy");
    const again = await auth.authenticate(`Bearer ${token}`, at(29));
    expect(again).toMatchObject({ tokenPurpose: "deploy", identity: { subject: "bob", groups: ["g"] } });
    await expect(auth.authenticate(`Bearer ${token}`, at(31))).rejects.toMatchObject({ httpStatus: 401 });
  });
});

describe("OIDC: the email claim as the user name", () => {
  it("is refused when email_verified is present and not true (kube-apiserver's rule)", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
    const provider = new OidcProvider({
      issuer: "https://idp.example",
      audience: "custos",
      jwks: { keys: [jwk] },
      algorithms: ["ES256"],
      usernameClaim: "email",
    });
    const auth = new Authenticator({ oidc: [provider], jwtCacheMs: 0 });
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setIssuer("https://idp.example")
        .setAudience("custos")
        .setSubject("u-123")
        .setExpirationTime(Math.floor(NOW.getTime() / 1000) + 300)
        .sign(privateKey);
    for (const v of [false, "false", "true"]) {
      const t = await sign({ email: "admin@corp.example", email_verified: v });
      await expect(auth.authenticate(`Bearer ${t}`, NOW), String(v)).rejects.toMatchObject({
        httpStatus: 401,
      });
    }
    const ok = await auth.authenticate(
      `Bearer ${await sign({ email: "admin@corp.example", email_verified: true })}`,
      NOW,
    );
    expect(ok.identity.subject).toBe("admin@corp.example");
    const absent = await auth.authenticate(`Bearer ${await sign({ email: "dev@corp.example" })}`, NOW);
    expect(absent.identity.subject).toBe("dev@corp.example");
  });
});
