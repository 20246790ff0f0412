/**
 * OIDC identities whose user name or groups say `system:` (names Kubernetes reserves, e.g.
 * `system:masters`, `system:admin`) are refused by default: with `upstream.impersonate` the
 * gateway would otherwise send them upstream as Impersonate-User/Group and the cluster would
 * grant what it grants those names. Real JWTs signed at run time, a JWKS file, the gateway
 * composed from its YAML config, and a recording upstream that shows the headers it received.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { compose } from "../gateway/config/compose.ts";
import { parseGatewayFileConfig } from "../gateway/config/file.ts";
import { type RunningGateway, startGateway } from "../gateway/server/gateway.ts";
import { silentLogger } from "../gateway/server/runtime.ts";
import {
  call,
  json,
  kubeconfigYaml,
  type Recorded,
  startRecordingUpstream,
  tempDir,
  testPolicy,
  testTls,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-token-oidc-0123456789";
const STRICT = "https://idp.example";
const PREFIXED = "https://prefixed.example";
const ALLOWED = "https://allowed.example";
const FILE_TOKEN = "file-token-0123456789";

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let gw: RunningGateway;
let composed: Awaited<ReturnType<typeof compose>>;
let dir: string;
let sign: (iss: string, claims: Record<string, unknown>) => Promise<string>;

beforeAll(async () => {
  const tls = await testTls();
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [(r, res) => r.url.startsWith("/api/v1/") && json(res, 200, { kind: "PodList", items: [] })],
  });
  dir = await tempDir("custos-oidc-system-");
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  await writeFile(path.join(dir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
  sign = (iss, claims) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(iss)
      .setAudience("custos")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
  await writeFile(
    path.join(dir, "upstream.kubeconfig"),
    kubeconfigYaml({ server: up.url, caPem: tls.caPem, token: UPSTREAM_TOKEN }),
  );
  await writeFile(path.join(dir, "policy.json"), JSON.stringify(testPolicy()));
  // the test CA's server certificate, so the helpers' call() trusts the gateway
  await writeFile(path.join(dir, "tls.crt"), tls.cert);
  await writeFile(path.join(dir, "tls.key"), tls.key);
  await writeFile(path.join(dir, "ca.crt"), tls.caPem);
  await writeFile(path.join(dir, "tokens.csv"), `${FILE_TOKEN},system:ops-bot,u9,"agents,system:masters"\n`);
  const issuer = (iss: string, extra: string[] = []) => [
    `    - issuer: ${iss}`,
    "      audience: custos",
    "      jwksFile: jwks.json",
    "      algorithms: [ES256]",
    "      groupsClaim: groups",
    ...extra.map((l) => `      ${l}`),
  ];
  await writeFile(
    path.join(dir, "gateway.yaml"),
    [
      "listen: 127.0.0.1:0",
      "ops: { listen: 127.0.0.1:0 }",
      "stateDir: state",
      "tls: { certFile: tls.crt, keyFile: tls.key, caFile: ca.crt }",
      "policy: policy.json",
      "upstream: { kubeconfig: upstream.kubeconfig, timeoutSeconds: 5, impersonate: true }",
      "auth:",
      "  tokenFile: tokens.csv",
      "  login: false",
      "  oidc:",
      ...issuer(STRICT),
      ...issuer(PREFIXED, ["usernamePrefix: 'oidc:'", "groupsPrefix: 'oidc:'", "extraGroups: [agents]"]),
      ...issuer(ALLOWED, ["allowSystemNames: true"]),
      "evidence: { kind: jsonl, file: evidence.jsonl, fsync: false }",
      "",
    ].join("\n"),
  );
  const file = path.join(dir, "gateway.yaml");
  const c = parseGatewayFileConfig(parse(await readFile(file, "utf8")), file);
  composed = await compose(c, silentLogger);
  gw = await startGateway(composed.options);
  composed.bind(gw);
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await composed?.close();
  await up?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const PODS = "/api/v1/namespaces/default/pods";

/** the request the upstream saw for the call just made (undefined: it saw none) */
async function through(token: string) {
  const before = up.seen.length;
  const r = await call(gw.url, "GET", PODS, { token });
  const seen: Recorded | undefined = up.seen.slice(before).find((s) => s.url.startsWith(PODS));
  return { r, seen };
}

describe("OIDC names in Kubernetes' system: namespace", () => {
  it("an ordinary OIDC identity is impersonated as itself", async () => {
    const { r, seen } = await through(await sign(STRICT, { sub: "repo:acme/app", groups: ["agents"] }));
    expect(r.status, r.body).toBe(200);
    expect(seen?.headers["impersonate-user"]).toBe("repo:acme/app");
    expect(seen?.headers["impersonate-group"]).toBe("agents");
  });

  it("a user name claim of system:admin is refused with a 401 naming the setting; nothing goes upstream", async () => {
    const { r, seen } = await through(await sign(STRICT, { sub: "system:admin", groups: ["agents"] }));
    expect(r.status).toBe(401);
    const st = JSON.parse(r.body) as { kind: string; message: string };
    expect(st.kind).toBe("Status");
    expect(st.message).toContain("system:");
    expect(st.message).toContain("usernamePrefix");
    expect(st.message).toContain("allowSystemNames");
    expect(seen).toBeUndefined();
  });

  it("a groups claim holding system:masters (array or comma separated) is refused", async () => {
    for (const groups of [["agents", "system:masters"], "agents,system:masters", ["System:Masters"]]) {
      const { r, seen } = await through(await sign(STRICT, { sub: "repo:acme/app", groups }));
      expect(r.status, JSON.stringify(groups)).toBe(401);
      expect(JSON.parse(r.body).message).toContain("groupsPrefix");
      expect(seen).toBeUndefined();
    }
  });

  it("with usernamePrefix/groupsPrefix the names are no longer system: names and are accepted", async () => {
    const { r, seen } = await through(
      await sign(PREFIXED, { sub: "system:admin", groups: ["system:masters"] }),
    );
    expect(r.status, r.body).toBe(200);
    expect(seen?.headers["impersonate-user"]).toBe("oidc:system:admin");
    expect(seen?.headers["impersonate-group"]).toEqual(["oidc:system:masters", "agents"].join(", "));
  });

  it("allowSystemNames: true is the operator's explicit opt-in", async () => {
    const { r, seen } = await through(
      await sign(ALLOWED, { sub: "system:ci", groups: ["agents", "system:ci-runners"] }),
    );
    expect(r.status, r.body).toBe(200);
    expect(seen?.headers["impersonate-user"]).toBe("system:ci");
  });

  it("the static token file is the operator's own word and is not checked", async () => {
    const { r, seen } = await through(FILE_TOKEN);
    expect(r.status, r.body).toBe(200);
    expect(seen?.headers["impersonate-user"]).toBe("system:ops-bot");
  });
});
