/**
 * Shared helpers for the gateway's cross-layer tests: TLS material from the gateway's own
 * generator, a small recording HTTPS upstream (speaking enough of the Kubernetes API for
 * header, status and stream tests), a test policy, kubeconfigs and a kubectl runner.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { WebSocketServer } from "ws";
import { stringify as yamlStringify } from "yaml";
import { canonicalJson, sha256Hex } from "../sdk/lib/canonical.ts";
import type { GatewayConfig, Rule } from "../sdk/schema/config.ts";
import { JsonlEvidenceSink } from "../gateway/evidence/jsonl-sink.ts";
import type { EvidenceRecord, EvidenceSink, Masker, MaskSummary } from "../gateway/ports.ts";
import { type GatewayOptions, type RunningGateway, startGateway } from "../gateway/server/gateway.ts";
import { ensureTls, type TlsMaterial } from "../gateway/tls/ca.ts";
import { Upstream } from "../gateway/upstream/index.ts";

export const SRC = { file: "test/policy.ts", line: 1, column: 1 };

/**
 * An evidence sink that refuses, as a full disk does, the records `refuse` picks (every one by
 * default) and keeps the others; it counts every attempt.
 */
export function refusingSink(
  refuse: (r: EvidenceRecord) => boolean = () => true,
): EvidenceSink & { readonly accepted: EvidenceRecord[]; readonly attempts: number } {
  const accepted: EvidenceRecord[] = [];
  let attempts = 0;
  return {
    accepted,
    get attempts() {
      return attempts;
    },
    append: async (r) => {
      attempts++;
      if (refuse(r)) throw new Error("disk full");
      accepted.push(r);
      return { seq: accepted.length };
    },
    appendArtifact: async () => {},
    close: async () => {},
  };
}

export async function tempDir(prefix = "custos-gw-"): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

let tlsCache: Promise<TlsMaterial> | undefined;
/** one CA + server cert for every test in this process (generated with openssl into a temp dir) */
export function testTls(): Promise<TlsMaterial> {
  tlsCache ??= tempDir("custos-tls-").then((d) => ensureTls(d));
  return tlsCache;
}

export function withHash(c: Omit<GatewayConfig, "policyHash">): GatewayConfig {
  return { ...c, policyHash: `sha256:${sha256Hex(canonicalJson(c))}` } as GatewayConfig;
}

const rule = (r: Omit<Rule, "source" | "enforcement"> & Partial<Pick<Rule, "enforcement">>): Rule => ({
  enforcement: "enforce",
  source: SRC,
  ...r,
});

export function testPolicy(extra: Rule[] = []): GatewayConfig {
  return withHash({
    schemaVersion: "custos.dev/v1alpha1",
    name: "gateway-test",
    defaultDecision: "deny",
    phiNamespaces: ["phi-*"],
    identities: {
      agents: { groups: ["agents"], source: SRC },
      operators: { groups: ["operators"], source: SRC },
    },
    purposes: {
      "incident-42": { description: "incident", source: SRC },
      deploy: { description: "deploy", source: SRC },
    },
    approvalGroups: { leads: { reviewers: [], source: SRC } },
    rules: [
      ...extra,
      rule({
        id: "discovery",
        decision: "allow",
        reason: "discovery is harmless",
        match: {
          verbs: ["get"],
          nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*", "/openapi/v3/*"],
        },
      }),
      rule({
        id: "no-secrets",
        decision: "deny",
        reason: "secrets hold PHI and credentials",
        remediation: "ask the platform team for the value you need",
        match: { resources: ["secrets"] },
      }),
      rule({
        id: "approve-pod-delete",
        decision: "requireApproval",
        reason: "deleting pods needs a second pair of eyes",
        match: { verbs: ["delete"], resources: ["pods"], identities: ["agents"] },
        approval: {
          group: "leads",
          count: 1,
          ttlSeconds: 600,
          use: "once",
          wait: null,
          allowUnsigned: false,
        },
      }),
      rule({
        id: "dry-run-no-deploy-read",
        decision: "deny",
        enforcement: "dry-run",
        reason: "trial: agents should not read deployments",
        match: { resources: ["deployments"], identities: ["agents"] },
      }),
      rule({
        id: "agents-read",
        decision: "allow",
        reason: "agents may read",
        match: { verbs: ["get", "list", "watch"], identities: ["agents"] },
      }),
      rule({
        id: "agents-write-configmaps",
        decision: "allow",
        reason: "agents may manage configmaps",
        match: {
          verbs: ["create", "update", "patch", "delete"],
          resources: ["configmaps"],
          identities: ["agents"],
        },
      }),
      rule({
        id: "agents-exec",
        decision: "allow",
        reason: "agents may exec and port-forward",
        match: {
          verbs: ["create"],
          resources: ["pods/exec", "pods/attach", "pods/portforward"],
          identities: ["agents"],
        },
      }),
    ],
    masks: [],
    detectors: [],
  });
}

/** A stand-in masker for tests that do not depend on the masking stage: replaces "Jane Roe". */
export const PLANTED = "Jane Roe";
export function plantedMasker(): Masker {
  const summary = (n: number): MaskSummary => ({
    rules: n > 0 ? ["test-name"] : [],
    paths: [],
    truncated: false,
    counts: n > 0 ? { name: n } : {},
  });
  const maskStr = (s: string, count: { n: number }) =>
    s.replaceAll(PLANTED, () => {
      count.n++;
      return "[MASKED:name]";
    });
  const walk = (v: unknown, c: { n: number }): unknown => {
    if (typeof v === "string") return maskStr(v, c);
    if (Array.isArray(v)) return v.map((x) => walk(x, c));
    if (v && typeof v === "object")
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, c)]));
    return v;
  };
  return {
    maskJson(value) {
      const c = { n: 0 };
      return { value: walk(value, c) as never, summary: summary(c.n) };
    },
    textStream() {
      const c = { n: 0 };
      let held = "";
      return {
        push(chunk) {
          held += chunk;
          const nl = held.lastIndexOf("\n");
          if (nl < 0) return "";
          const out = held.slice(0, nl + 1);
          held = held.slice(nl + 1);
          return maskStr(out, c);
        },
        end() {
          const out = maskStr(held, c);
          held = "";
          return out;
        },
        summary: () => summary(c.n),
      };
    },
  };
}

export interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export type Route = (req: Recorded, res: import("node:http").ServerResponse) => boolean | Promise<boolean>;

/** A recording HTTPS upstream with a bearer token; routes are tried in order, then 404. */
export async function startRecordingUpstream(o: { token: string; routes?: Route[] }): Promise<{
  url: string;
  seen: Recorded[];
  routes: Route[];
  wss: WebSocketServer;
  close(): Promise<void>;
}> {
  const tls = await testTls();
  const seen: Recorded[] = [];
  const routes = o.routes ?? [];
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const rec: Recorded = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: { ...req.headers },
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(rec);
      if (req.headers.authorization !== `Bearer ${o.token}`) {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized",
          }),
        );
        return;
      }
      for (const r of routes) if (await r(rec, res)) return;
      res.writeHead(404, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          code: 404,
          reason: "NotFound",
          message: `${rec.url} not found`,
        }),
      );
    });
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => [...p][0] ?? false });
  server.on("upgrade", (req, socket, head) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: { ...req.headers }, body: "" });
    if (req.headers.authorization !== `Bearer ${o.token}`) {
      socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    seen,
    routes,
    wss,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function kubeconfigYaml(o: { server: string; caPem: string; token: string; name?: string }): string {
  const name = o.name ?? "test";
  return yamlStringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name,
        cluster: { server: o.server, "certificate-authority-data": Buffer.from(o.caPem).toString("base64") },
      },
    ],
    users: [{ name, user: { token: o.token } }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: "default" } }],
    "current-context": name,
  });
}

export function upstreamFor(server: string, caPem: string, token: string, timeoutMs = 5000): Upstream {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml({ server, caPem, token }));
  return new Upstream(kc, { timeoutMs });
}

export const AGENT_TOKEN = "agent-token-0123456789";
export const NOBODY_TOKEN = "nobody-token-0123456789";
export const OPERATOR_TOKEN = "operator-token-0123456789";
export const TOKEN_FILE = `${AGENT_TOKEN},agent-1,u1,"agents,ci"\n${NOBODY_TOKEN},nobody,u2,"others"\n${OPERATOR_TOKEN},oper,u3,"operators"\n`;

export interface TestGateway {
  gw: RunningGateway;
  dir: string;
  evidenceFile: string;
  records(): Promise<EvidenceRecord[]>;
  kubeconfig(token: string, opts?: { serverSuffix?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startTestGateway(
  upstream: Upstream,
  over: Partial<GatewayOptions> & { tokenFile?: string } = {},
): Promise<TestGateway> {
  const { TokenFileAuthenticator } = await import("../gateway/identity/token-file.ts");
  const dir = await tempDir();
  const evidenceFile = path.join(dir, "evidence.jsonl");
  const sink =
    over.sink ?? (await JsonlEvidenceSink.open({ file: evidenceFile, gatewayId: "gw-test", fsync: false }));
  const tls = await testTls();
  const gw = await startGateway({
    config: testPolicy(),
    upstream,
    tls,
    auth: { tokenFile: new TokenFileAuthenticator(over.tokenFile ?? TOKEN_FILE) },
    sink,
    maskerFactory: () => plantedMasker(),
    ...over,
  });
  let n = 0;
  return {
    gw,
    dir,
    evidenceFile,
    async records() {
      try {
        return (await readFile(evidenceFile, "utf8"))
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => JSON.parse(l) as EvidenceRecord);
      } catch {
        return [];
      }
    },
    async kubeconfig(token, opts = {}) {
      const f = path.join(dir, `kubeconfig-${n++}`);
      await writeFile(
        f,
        kubeconfigYaml({ server: gw.url + (opts.serverSuffix ?? ""), caPem: gw.caPem, token }),
      );
      return f;
    },
    async close() {
      await gw.stop();
      await sink.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real kubectl with an isolated cache dir. */
export function kubectl(
  kubeconfig: string,
  args: string[],
  o: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  const cache = path.join(path.dirname(kubeconfig), `cache-${path.basename(kubeconfig)}`);
  return new Promise((resolve) => {
    const child = execFile(
      "kubectl",
      ["--kubeconfig", kubeconfig, "--cache-dir", cache, "--request-timeout=15s", ...args],
      {
        timeout: o.timeoutMs ?? 20_000,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.dirname(kubeconfig) },
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

export interface Reply {
  status: number;
  headers: import("node:http").IncomingHttpHeaders;
  body: string;
}

/** One HTTPS request to the gateway (raw path: no normalisation by the client). */
export async function call(
  base: string,
  method: string,
  rawPath: string,
  o: { token?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Reply> {
  const tls = await testTls();
  const u = new URL(base);
  return new Promise<Reply>((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    const req = https.request(
      { method, host: u.hostname, port: u.port, path: rawPath, headers, ca: tls.caPem, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

export const json = (
  res: import("node:http").ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
  return true;
};
