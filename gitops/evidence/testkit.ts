/**
 * Test and benchmark helpers for the evidence repo (never imported by the gateway):
 * a record factory, and a real `git http-backend` served as CGI on 127.0.0.1.
 */
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { EvidenceRecord } from "../../gateway/ports.ts";

export const GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend";

/** A realistic call record (~700 bytes of canonical JSON). */
export function sampleRecord(i: number, baseMs = Date.UTC(2026, 0, 1, 12, 0, 0)): EvidenceRecord {
  const t = new Date(baseMs + i)
    .toISOString()
    .replace("Z", "000Z")
    .replace(/\.(\d{3})000Z$/, ".$1000Z");
  return {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    stage: "ResponseComplete",
    requestURI: `/api/v1/namespaces/ward-${i % 7}/pods/patient-db-${i % 13}`,
    verb: "get",
    user: { username: "system:serviceaccount:ci:deployer", groups: ["system:authenticated", "ci"] },
    sourceIPs: ["10.0.0.7"],
    userAgent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef",
    objectRef: {
      resource: "pods",
      namespace: `ward-${i % 7}`,
      name: `patient-db-${i % 13}`,
      apiVersion: "v1",
    },
    responseStatus: { code: 200 },
    requestReceivedTimestamp: t,
    stageTimestamp: t,
    custos: {
      decision: "allow",
      effective: "allow",
      enforcement: "enforce",
      ruleId: "read-pods-in-wards",
      reason: "CI may read pods in ward namespaces",
      policyHash: `sha256:${"ab".repeat(32)}`,
      purpose: "deploy",
      jobRun: { repository: "hospital/infra", workflow: "deploy", runId: String(1000 + (i % 50)) },
      masking: {
        rules: ["phi-names"],
        paths: ["/spec/containers/0/env/3/value"],
        truncated: false,
        counts: { "phi-names": 1 },
      },
      type: "call",
    },
  };
}

export interface HttpBackend {
  url(repo: string): string;
  root: string;
  /** stop answering (connections refused) — simulate an unreachable remote */
  stop(): Promise<void>;
  /** listen again on the same port */
  restart(): Promise<void>;
  close(): Promise<void>;
  requests: number;
}

/** Create a bare repo that refuses non-fast-forward pushes and deletions (as an evidence remote must). */
export function initRemote(path: string): void {
  execFileSync("git", ["init", "-q", "--bare", path]);
  execFileSync("git", ["-C", path, "config", "receive.denyNonFastForwards", "true"]);
  execFileSync("git", ["-C", path, "config", "receive.denyDeletes", "true"]);
  execFileSync("git", ["-C", path, "config", "http.receivepack", "true"]);
}

/** Serve every bare repo under `root` with the real git-http-backend (CGI, RFC 3875). */
export async function startHttpBackend(root: string): Promise<HttpBackend> {
  let requests = 0;
  const handler = (
    req: import("node:http").IncomingMessage,
    res: import("node:http").ServerResponse,
  ): void => {
    requests++;
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const child = spawn(GIT_HTTP_BACKEND, [], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        REQUEST_METHOD: req.method ?? "GET",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: req.headers["content-length"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
        SERVER_PROTOCOL: "HTTP/1.1",
        GATEWAY_INTERFACE: "CGI/1.1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    req.pipe(child.stdin);
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", () => undefined);
    child.on("close", () => {
      const out = Buffer.concat(chunks);
      let sep = out.indexOf("\r\n\r\n");
      let sepLen = 4;
      if (sep < 0) {
        sep = out.indexOf("\n\n");
        sepLen = 2;
      }
      if (sep < 0) {
        res.writeHead(502).end("bad CGI response");
        return;
      }
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of out.toString("latin1", 0, sep).split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers).end(out.subarray(sep + sepLen));
    });
  };
  let server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  const backend: HttpBackend = {
    root,
    get requests() {
      return requests;
    },
    set requests(v: number) {
      requests = v;
    },
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
    restart: async () => {
      server = createServer(handler);
      await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
        if (!server.listening) r();
      }),
  };
  return backend;
}
