import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { GatewayConfigFileError, parseGatewayFileConfig } from "./file.ts";

const here = import.meta.dirname;
const base = { policy: "p.json", upstream: { kubeconfig: "k" } };
const at = (v: unknown) => parseGatewayFileConfig(v, "/etc/custos/gateway.yaml");

describe("gateway config file: evidence and approvals", () => {
  it("the shipped example parses, with GitHub approvals and git evidence", () => {
    const f = path.join(here, "example-gateway.yaml");
    const c = parseGatewayFileConfig(parse(readFileSync(f, "utf8")), f);
    expect(c.approvals).toMatchObject({
      kind: "github",
      owner: "acme",
      repo: "approvals",
      tokenEnv: "GITHUB_TOKEN",
      webhookSecretEnv: "CUSTOS_WEBHOOK_SECRET",
      webhook: { listen: "0.0.0.0:8444", path: "/custos/v1/github-webhook", tls: true },
    });
    expect(c.evidence).toMatchObject({ kind: "git", durability: "process", checkpointEvery: 100000 });
    if (c.evidence.kind === "git")
      expect(c.evidence.checkpointsFile).toBe(path.join(here, "checkpoints.txt"));
  });

  it("defaults: no approvals backend; git evidence durability process, checkpoints in the state dir", () => {
    const c = at({ ...base, stateDir: "state", evidence: { kind: "git", dir: "ev.git" } });
    expect(c.approvals).toEqual({ kind: "none" });
    expect(c.evidence).toMatchObject({
      kind: "git",
      dir: "/etc/custos/ev.git",
      durability: "process",
      checkpointsFile: "/etc/custos/state/checkpoints.txt",
    });
  });

  it("local approvals: dir resolved against the config file, poll defaults", () => {
    const c = at({ ...base, approvals: { kind: "local", dir: "approvals" } });
    expect(c.approvals).toEqual({
      kind: "local",
      dir: "/etc/custos/approvals",
      pollIntervalSeconds: 2,
      recheckIntervalSeconds: 0,
      requestTtlSeconds: 86400,
    });
  });

  it("github approvals: app key path resolved, grants under the state dir", () => {
    const c = at({
      ...base,
      approvals: {
        kind: "github",
        owner: "o",
        repo: "r",
        app: { appId: 1, privateKeyFile: "app.pem", installationId: 2 },
      },
    });
    expect(c.approvals).toMatchObject({
      kind: "github",
      baseUrl: "https://api.github.com",
      app: { privateKeyFile: "/etc/custos/app.pem" },
      stateDir: "/etc/custos/.custos/gateway/approvals",
      pollIntervalSeconds: 30,
      recheckIntervalSeconds: 10,
    });
  });

  it("refuses unknown keys, unknown kinds and bad durability, naming the path", () => {
    const bad = [
      { ...base, approvals: { kind: "gitlab" } },
      { ...base, approvals: { kind: "local" } },
      { ...base, approvals: { kind: "local", dir: "d", tokenEnv: "X" } },
      { ...base, evidence: { kind: "git", dir: "d", durability: "disk" } },
      { ...base, evidence: { kind: "git", dir: "d", remote: { url: "not a url" } } },
    ];
    for (const v of bad) {
      let err: unknown;
      try {
        at(v);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayConfigFileError);
      expect((err as GatewayConfigFileError).message).toMatch(/approvals|evidence/);
    }
  });
});

describe("gateway config file: evidence remote credentials", () => {
  const withUrl = (url: string) => ({ ...base, evidence: { kind: "git", dir: "d", remote: { url } } });

  it("refuses a remote URL with credentials in it, without repeating them, naming tokenEnv", () => {
    for (const url of [
      "https://user:s3cr3t-T0KEN@git.example.org/clinic/evidence.git",
      "https://s3cr3t-T0KEN@git.example.org/clinic/evidence.git",
      "https://:s3cr3t-T0KEN@git.example.org/clinic/evidence.git",
    ]) {
      let err: unknown;
      try {
        at(withUrl(url));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayConfigFileError);
      const msg = (err as GatewayConfigFileError).message;
      expect(msg).toContain("evidence.remote.url");
      expect(msg).toContain("evidence.remote.tokenEnv");
      expect(msg).not.toContain("s3cr3t");
      expect(msg).not.toContain("\n");
    }
  });

  it("accepts a remote URL without credentials", () => {
    const c = at(withUrl("https://git.example.org/clinic/evidence.git"));
    expect(c.evidence.kind === "git" && c.evidence.remote?.url).toBe(
      "https://git.example.org/clinic/evidence.git",
    );
  });

  it("custos gateway exits 2 with one line on stderr, never printing the token", async () => {
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { vi } = await import("vitest");
    const { run } = await import("../cli/gateway.ts");
    const dir = await mkdtemp(path.join(tmpdir(), "custos-cfg-"));
    const file = path.join(dir, "gateway.yaml");
    await writeFile(
      file,
      `policy: p.json\nupstream: { kubeconfig: k }\nevidence:\n  kind: git\n  dir: ev.git\n  remote: { url: "https://x-access-token:ghp_s3cr3tT0KEN@github.com/acme/evidence.git" }\n`,
    );
    const out: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => {
      out.push(String(chunk));
      return true;
    });
    let code: number;
    try {
      code = await run(["--config", file]);
    } finally {
      spy.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
    expect(code).toBe(2);
    const text = out.join("");
    expect(text).not.toContain("s3cr3t");
    expect(text.trimEnd().split("\n")).toHaveLength(1);
    expect(text).toContain("tokenEnv");
  });
});

describe("gateway config file: OIDC issuers", () => {
  it("a misspelt key of an issuer is refused, not dropped (a lost usernamePrefix changes every identity)", () => {
    const issuer = { issuer: "https://idp.example", audience: "custos", jwksFile: "jwks.json" };
    expect(
      at({ ...base, auth: { oidc: [{ ...issuer, allowSystemNames: true }] } }).auth.oidc[0],
    ).toMatchObject({
      allowSystemNames: true,
    });
    const e = (() => {
      try {
        at({ ...base, auth: { oidc: [{ ...issuer, usernamPrefix: "oidc:" }] } });
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(GatewayConfigFileError);
    expect((e as Error).message).toContain("auth.oidc.0");
    expect((e as Error).message).toContain("usernamPrefix");
  });
});
