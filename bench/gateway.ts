/**
 * Gateway overhead: added latency (p50/p99) and throughput for a small GET (one Pod) and a
 * 500-item Pod list, through (a) the upstream directly, (b) the real `kubectl proxy` (Go),
 * (b') a bare Node relay with a TLS client side and the same relay with a plain-HTTP client side
 * (kubectl proxy's: the client-side TLS cost), (b'') a Node TLS byte pipe with no HTTP at all (the
 * floor for any Node process on the data path), (b''') when a Go toolchain is on PATH, a bare Go
 * reverse proxy (bench/go-relay: kubectl proxy's language and library) with a TLS client side and with a
 * plain-HTTP one (the Go floor for a proxy that must serve TLS), (c) the custos gateway without mask rules, (d) the gateway with the masking stage busy
 * (a field mask on pods + an SSN detector) — all against the same loopback HTTPS upstream,
 * in the same run; each gateway runs as its own `custos gateway` process; (c) and (d) are measured
 * over HTTP/1.1 (https.Agent, the fallback) and over HTTP/2 (one multiplexed session, as client-go). Evidence goes to a JSON-lines file, written before each answer; with
 * --fsync also fsync'ed (group commit) before each answer.
 *
 *   node --import tsx bench/gateway.ts [--quick] [--fsync]
 *
 * Prints a JSON summary and a human table; "cpu µs" is the proxy process' CPU time per request (all
 * threads) during the latency samples (/proc/<pid>/task/<tid>/schedstat: its TLS, syscalls, JavaScript, GC).
 */
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { stringify as yamlStringify } from "yaml";
import { ensureTls } from "../gateway/tls/ca.ts";
import { TLS_CIPHERS } from "../gateway/tls/ciphers.ts";
import { canonicalJson, sha256Hex } from "../sdk/lib/canonical.ts";
import type { GatewayConfig } from "../sdk/schema/config.ts";

const quick = process.argv.includes("--quick");
/** fsync every evidence batch before answering (the JSON-lines sink's default) or only write(2) it */
const fsync = process.argv.includes("--fsync");
const LAT_N_DEFAULT = { small: quick ? 300 : 2000, list: quick ? 60 : 300 };
const TPUT_MS = quick ? 1000 : 3000;
const CONCURRENCY = 16;
/** latency samples are taken in this many interleaved rounds over all paths */
const ROUNDS = 5;
/** --only=<substring>[,<substring>...]: measure only the targets whose name contains one (direct is always measured) */
const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
/** --latency-only: skip the throughput runs (profiling) */
const latencyOnly = process.argv.includes("--latency-only");
/** --case=small|list: only that request */
const onlyCase = process.argv.find((a) => a.startsWith("--case="))?.slice("--case=".length);
/** --lat-n=<n>: sequential requests per latency measurement (profiling) */
const latN = Number(process.argv.find((a) => a.startsWith("--lat-n="))?.slice("--lat-n=".length) ?? 0);
const UP_TOKEN = "bench-upstream-token";
const AGENT = "bench-agent-token";
const SRC = { file: "bench", line: 1, column: 1 };

function pod(i: number) {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      name: `web-${i}`,
      namespace: "default",
      uid: `uid-${i}`,
      resourceVersion: String(1000 + i),
      labels: { app: "web", tier: "frontend" },
      annotations: { note: `patient ssn 123-45-${String(6789 + i).slice(-4)}` },
    },
    spec: {
      containers: [
        {
          name: "main",
          image: "nginx:1.27",
          env: [
            { name: "PATIENT_NAME", value: "Jane Roe" },
            { name: "MODE", value: "prod" },
          ],
          ports: [{ containerPort: 80 }],
        },
      ],
      nodeName: "node-1",
    },
    status: {
      phase: "Running",
      podIP: `10.0.${i >> 8}.${i & 255}`,
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

function policy(masking: boolean): GatewayConfig {
  const c = {
    schemaVersion: "custos.dev/v1alpha1" as const,
    name: "bench",
    defaultDecision: "deny" as const,
    phiNamespaces: ["phi-*"],
    identities: { agents: { groups: ["agents"], source: SRC } },
    purposes: {},
    approvalGroups: {},
    rules: [
      {
        id: "read",
        decision: "allow" as const,
        reason: "bench",
        enforcement: "enforce" as const,
        match: { verbs: ["get" as const, "list" as const], identities: ["agents"] },
        source: SRC,
      },
    ],
    masks: masking
      ? [
          {
            id: "pod-env",
            match: { resources: ["pods"] },
            fields: [
              {
                path: "spec.containers[*].env[*].value",
                segments: ["spec", "containers", "*", "env", "*", "value"],
                strategy: { kind: "redact" as const },
                label: "env",
              },
            ],
            detectors: ["ssn"],
            source: SRC,
          },
        ]
      : [],
    detectors: masking
      ? [
          {
            id: "ssn",
            category: "ssn",
            pattern: "\\b\\d{3}-\\d{2}-\\d{4}\\b",
            flags: "",
            strategy: { kind: "redact" as const },
            label: "ssn",
            scope: "masks" as const,
            source: SRC,
          },
        ]
      : [],
  };
  return { ...c, policyHash: `sha256:${sha256Hex(canonicalJson(c))}` } as GatewayConfig;
}

const kubeconfig = (server: string, caPem: string, token: string) =>
  yamlStringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: "c", cluster: { server, "certificate-authority-data": Buffer.from(caPem).toString("base64") } },
    ],
    users: [{ name: "u", user: { token } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
    "current-context": "c",
  });

interface Target {
  name: string;
  get(p: string): Promise<number>;
  /** the proxy's process: its CPU time (all threads) is measured around the latency samples */
  pid?: number | undefined;
}

/** on-CPU time (ns) of all of a process' threads (Linux schedstat; Go spreads its work over several), or NaN */
function threadCpuNs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    return ns;
  } catch {
    return Number.NaN;
  }
}

function target(name: string, base: string, o: { token?: string; ca?: string }): Target {
  const u = new URL(base);
  const isHttps = u.protocol === "https:";
  const agent = isHttps
    ? new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: o.ca })
    : new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const mod = isHttps ? https : http;
  return {
    name,
    get: (p) =>
      new Promise<number>((resolve, reject) => {
        const req = mod.request(
          {
            host: u.hostname,
            port: u.port,
            path: p,
            agent,
            headers: {
              accept: "application/json",
              ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
            },
          },
          (res) => {
            let n = 0;
            res.on("data", (c: Buffer) => {
              n += c.length;
            });
            res.on("end", () =>
              res.statusCode === 200 ? resolve(n) : reject(new Error(`${name} ${p}: HTTP ${res.statusCode}`)),
            );
          },
        );
        req.on("error", reject);
        req.end();
      }),
  };
}

/** HTTP/2 (ALPN h2) client: one session, concurrent requests multiplexed as streams, like client-go */
function targetH2(name: string, base: string, o: { token: string; ca: string }): Target {
  let session: http2.ClientHttp2Session | undefined;
  const s = () => {
    if (!session || session.closed || session.destroyed) {
      // flow-control windows like Go's HTTP/2 transport (4 MiB per stream, 1 GiB per connection)
      session = http2.connect(base, { ca: o.ca, settings: { initialWindowSize: 4 << 20 } });
      session.on("error", () => {});
      const sess = session;
      sess.on("connect", () => sess.setLocalWindowSize(1 << 30));
      session.unref();
    }
    return session;
  };
  return {
    name,
    get: (p) =>
      new Promise<number>((resolve, reject) => {
        const req = s().request({
          ":path": p,
          accept: "application/json",
          authorization: `Bearer ${o.token}`,
        });
        let status = 0;
        let n = 0;
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", (c: Buffer) => {
          n += c.length;
        });
        req.on("end", () =>
          status === 200 ? resolve(n) : reject(new Error(`${name} ${p}: HTTP ${status}`)),
        );
        req.on("error", reject);
        req.end();
      }),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * sequential requests on one keep-alive connection; the latencies (ms) are appended to xs, the
 * proxy process' CPU time (all threads) (ns) spent meanwhile is added to cpu
 */
async function sample(t: Target, p: string, n: number, xs: number[], cpu: number[]): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < Math.min(20, n); i++) bytes = await t.get(p); // warm up
  const c0 = threadCpuNs(t.pid);
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await t.get(p);
    xs.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  cpu.push(threadCpuNs(t.pid) - c0);
  return bytes;
}

async function throughput(t: Target, p: string, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        await t.get(p);
        done++;
      }
    }),
  );
  return done / (ms / 1000);
}

async function startKubectlProxy(
  kcFile: string,
): Promise<{ url: string; pid?: number | undefined; stop(): void }> {
  const child = spawn("kubectl", ["proxy", "--port=0", "--kubeconfig", kcFile, "--accept-hosts=.*"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /Starting to serve on ([\d.]+:\d+)/.exec(out);
      if (m) resolve(`http://${m[1]}`);
    });
    child.on("exit", (code) => reject(new Error(`kubectl proxy exited ${code}`)));
    setTimeout(() => reject(new Error("kubectl proxy did not start")), 10_000);
  });
  return { url, pid: child.pid, stop: () => child.kill("SIGTERM") };
}

/**
 * The floor for any Node TLS-terminating proxy: a TLS server (h2 + HTTP/1.1, like the gateway's) relaying every request
 * to the upstream over a keep-alive TLS agent with the upstream's token, piping the body back.
 * No authentication, decision, evidence or masking: what is left of "custos" minus its stages.
 */
const RELAY_SRC = `
const https = require("node:https");
const http2 = require("node:http2");
const { UP, CA, CERT, KEY, UPTOKEN, PLAIN, CIPHERS } = process.env;
const agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: CA });
// HTTP/2 (ALPN h2) with the HTTP/1.1 fallback and the cipher order of the gateway's listener; PLAIN=1: plain HTTP/1.1
// towards the client (as kubectl proxy), the same relay otherwise
const handler = (req, res) => {
  const up = https.request(UP + req.url, { agent, headers: { accept: req.headers.accept || "application/json", authorization: "Bearer " + UPTOKEN } }, (u) => {
    const h = { "content-type": u.headers["content-type"] };
    if (u.headers["content-length"]) h["content-length"] = u.headers["content-length"];
    res.writeHead(u.statusCode, h);
    u.pipe(res);
  });
  up.on("error", () => res.destroy());
  up.end();
};
const srv = PLAIN
  ? require("node:http").createServer(handler)
  : http2.createSecureServer({ cert: CERT, key: KEY, allowHTTP1: true, ciphers: CIPHERS, honorCipherOrder: true }, handler);
srv.keepAliveTimeout = 65000;
srv.on("connection", (s) => s.setNoDelay(true));
process.on("SIGTERM", () => process.exit(0));
srv.listen(0, "127.0.0.1", () =>
  console.log("relay listening on " + (PLAIN ? "http" : "https") + "://127.0.0.1:" + srv.address().port));
`;

/**
 * The floor for any Node process on the data path: a TLS server that moves bytes between the
 * client's connection and one upstream TLS connection of its own, with no HTTP at all (the
 * client sends the upstream's token itself). It chooses AES-128-GCM as the gateway does.
 */
const PIPE_SRC = `
const tls = require("node:tls");
const { UP, CA, CERT, KEY, CIPHERS } = process.env;
const u = new URL(UP);
const srv = tls.createServer({ cert: CERT, key: KEY, ciphers: CIPHERS, honorCipherOrder: true }, (c) => {
  c.setNoDelay(true);
  const up = tls.connect({ host: u.hostname, port: Number(u.port), ca: CA, servername: "localhost" });
  up.setNoDelay(true);
  c.pipe(up);
  up.pipe(c);
  c.on("error", () => up.destroy());
  up.on("error", () => c.destroy());
});
process.on("SIGTERM", () => process.exit(0));
srv.listen(0, "127.0.0.1", () => console.log("relay listening on https://127.0.0.1:" + srv.address().port));
`;

/**
 * Start a relay process (`cmd args`) with the upstream, its CA, the listener's certificate and
 * the upstream's token in its environment; resolves with the URL it prints ("listening on ...").
 */
async function startRelayChild(
  what: string,
  cmd: string,
  args: string[],
  upUrl: string,
  tls: { cert: string; key: string; caPem: string },
  plain: boolean,
): Promise<{ url: string; pid?: number | undefined; stop(): void }> {
  const child = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      CIPHERS: TLS_CIPHERS,
      UP: upUrl,
      CA: tls.caPem,
      CERT: tls.cert,
      KEY: tls.key,
      UPTOKEN: UP_TOKEN,
      ...(plain ? { PLAIN: "1" } : {}),
    },
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (c: Buffer) => {
      const m = /listening on (https?:\/\/\S+)/.exec(c.toString());
      if (m?.[1]) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`${what} exited ${code}`)));
    setTimeout(() => reject(new Error(`${what} did not start`)), 10_000);
  });
  return { url, pid: child.pid, stop: () => child.kill("SIGTERM") };
}

function startRelayProcess(
  upUrl: string,
  tls: { cert: string; key: string; caPem: string },
  mode: "tls" | "plain" | "pipe" = "tls",
): Promise<{ url: string; pid?: number | undefined; stop(): void }> {
  const src = mode === "pipe" ? PIPE_SRC : RELAY_SRC;
  return startRelayChild("relay", process.execPath, ["-e", src], upUrl, tls, mode === "plain");
}

/**
 * bench/go-relay built into `dir` when a Go toolchain is on PATH (null otherwise: the Go rows are
 * left out). It is the Go floor for a proxy that serves TLS, as the pipe is Node's.
 */
function buildGoRelay(dir: string): string | null {
  if (spawnSync("go", ["version"], { encoding: "utf8" }).status !== 0) return null;
  const out = path.join(dir, "go-relay");
  const b = spawnSync("go", ["build", "-o", out, "."], {
    cwd: path.resolve(import.meta.dirname, "go-relay"),
    encoding: "utf8",
  });
  if (b.status !== 0) throw new Error(`go build bench/go-relay failed: ${b.stderr}`);
  return out;
}

function startGoRelay(
  bin: string,
  upUrl: string,
  tls: { cert: string; key: string; caPem: string },
  plain: boolean,
): Promise<{ url: string; pid?: number | undefined; stop(): void }> {
  return startRelayChild("go relay", bin, [], upUrl, tls, plain);
}

async function startGatewayProcess(
  cwd: string,
  bin = path.resolve(import.meta.dirname, "..", "bin", "custos.mjs"),
): Promise<{ url: string; pid?: number | undefined; stop(): Promise<void> }> {
  // GATEWAY_NODE_ARGS: extra node flags for the gateway processes (e.g. "--cpu-prof")
  const extra = (process.env.GATEWAY_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const child = spawn(process.execPath, [...extra, bin, "gateway", "--config", "gateway.yaml"], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (https:\/\/\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("exit", (code) => reject(new Error(`custos gateway exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`custos gateway did not start: ${err}`)), 30_000);
  });
  return {
    url,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function main() {
  const loadBefore = os.loadavg().map((x) => Number(x.toFixed(2)));
  const dir = await mkdtemp(path.join(os.tmpdir(), "custos-bench-"));
  const tls = await ensureTls(path.join(dir, "tls"));
  const one = Buffer.from(JSON.stringify(pod(0)));
  const list = Buffer.from(
    JSON.stringify({
      kind: "PodList",
      apiVersion: "v1",
      metadata: { resourceVersion: "2000" },
      items: Array.from({ length: 500 }, (_, i) => pod(i)),
    }),
  );
  const upstream = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    if (req.headers.authorization !== `Bearer ${UP_TOKEN}`) {
      res.writeHead(401).end();
      return;
    }
    const body = req.url?.startsWith("/api/v1/namespaces/default/pods/web-0")
      ? one
      : req.url?.startsWith("/api/v1/namespaces/default/pods")
        ? list
        : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "content-length": String(body.length) });
    res.end(body);
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const upUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const kcFile = path.join(dir, "upstream.kubeconfig");
  await writeFile(kcFile, kubeconfig(upUrl, tls.caPem, UP_TOKEN));

  // Each gateway runs as its own process (the `custos gateway` command), as kubectl proxy does:
  // the load generator and the upstream share this process and must not share the gateway's thread.
  const gateways: { url: string; pid?: number | undefined; stop(): Promise<void> }[] = [];
  // --compare=<dir>: also run <dir>/bin/custos.mjs (e.g. a git worktree of the previous commit)
  // as "custos@base", measured in the same rounds as the working tree's gateway
  const compare = process.argv.find((a) => a.startsWith("--compare="))?.slice("--compare=".length);
  let baseGateway: { url: string; pid?: number | undefined; stop(): Promise<void> } | undefined;
  for (const masking of [false, true, ...(compare ? ["base" as const] : [])]) {
    const gdir = path.join(dir, `gw-${masking}`);
    await mkdir(gdir, { recursive: true });
    await writeFile(path.join(gdir, "policy.json"), JSON.stringify(policy(masking === true)));
    await writeFile(path.join(gdir, "tokens.csv"), `${AGENT},bench,u1,"agents"\n`);
    await writeFile(path.join(gdir, "server.crt"), tls.cert);
    await writeFile(path.join(gdir, "server.key"), tls.key);
    await writeFile(path.join(gdir, "ca.crt"), tls.caPem);
    await writeFile(
      path.join(gdir, "gateway.yaml"),
      [
        "listen: 127.0.0.1:0",
        "ops: { listen: 127.0.0.1:0 }",
        "stateDir: state",
        "tls: { certFile: server.crt, keyFile: server.key, caFile: ca.crt }",
        "policy: policy.json",
        `upstream: { kubeconfig: ${kcFile} }`,
        "auth: { tokenFile: tokens.csv }",
        `evidence: { kind: jsonl, file: evidence.jsonl, fsync: ${fsync} }`,
        "",
      ].join("\n"),
    );
    if (masking === "base")
      baseGateway = await startGatewayProcess(gdir, path.resolve(compare!, "bin", "custos.mjs"));
    else gateways.push(await startGatewayProcess(gdir));
  }
  const proxy = await startKubectlProxy(kcFile);
  const relay = await startRelayProcess(upUrl, tls);
  // the same relay with a plain-HTTP client side (kubectl proxy's): the client-side TLS cost
  const plainRelay = await startRelayProcess(upUrl, tls, "plain");
  const pipe = await startRelayProcess(upUrl, tls, "pipe");
  const goBin = buildGoRelay(dir);
  const goTls = goBin ? await startGoRelay(goBin, upUrl, tls, false) : null;
  const goPlain = goBin ? await startGoRelay(goBin, upUrl, tls, true) : null;

  const LAT_N = latN > 0 ? { small: latN, list: latN } : LAT_N_DEFAULT;
  const targets: Target[] = [
    target("direct", upUrl, { token: UP_TOKEN, ca: tls.caPem }),
    { ...target("kubectl proxy", proxy.url, {}), pid: proxy.pid },
    { ...target("node TLS relay", relay.url, { token: AGENT, ca: tls.caPem }), pid: relay.pid },
    { ...target("node relay, http client", plainRelay.url, { token: AGENT }), pid: plainRelay.pid },
    // (the client sends the upstream's token: the pipe has no HTTP to swap it in)
    { ...target("node TLS pipe, no HTTP", pipe.url, { token: UP_TOKEN, ca: tls.caPem }), pid: pipe.pid },
    { ...targetH2("node TLS relay h2", relay.url, { token: AGENT, ca: tls.caPem }), pid: relay.pid },
    ...(goTls && goPlain
      ? [
          { ...target("go TLS relay", goTls.url, { token: AGENT, ca: tls.caPem }), pid: goTls.pid },
          { ...target("go relay, http client", goPlain.url, { token: AGENT }), pid: goPlain.pid },
        ]
      : []),
    {
      ...target("custos (no mask rules)", gateways[0]!.url, { token: AGENT, ca: tls.caPem }),
      pid: gateways[0]!.pid,
    },
    {
      ...target("custos (masking)", gateways[1]!.url, { token: AGENT, ca: tls.caPem }),
      pid: gateways[1]!.pid,
    },
    {
      ...targetH2("custos h2 (no mask)", gateways[0]!.url, { token: AGENT, ca: tls.caPem }),
      pid: gateways[0]!.pid,
    },
    {
      ...targetH2("custos h2 (masking)", gateways[1]!.url, { token: AGENT, ca: tls.caPem }),
      pid: gateways[1]!.pid,
    },
  ];
  if (baseGateway)
    targets.splice(
      targets.findIndex((t) => t.name.startsWith("custos")),
      0,
      {
        ...target("custos@base (no mask)", baseGateway.url, { token: AGENT, ca: tls.caPem }),
        pid: baseGateway.pid,
      },
    );
  const measured = targets.filter(
    (t) => !only || t.name === "direct" || only.split(",").some((o) => t.name.includes(o)),
  );
  const cases = [
    { name: "small GET (1 pod)", path: "/api/v1/namespaces/default/pods/web-0", n: LAT_N.small },
    { name: "list 500 pods", path: "/api/v1/namespaces/default/pods?limit=500", n: LAT_N.list },
  ];
  const results: Record<
    string,
    Record<string, { p50: number; p99: number; rps: number; bytes: number; cpuUsPerReq: number }>
  > = {};
  for (const c of cases) {
    if (onlyCase && !c.name.startsWith(onlyCase)) continue;
    results[c.name] = {};
    // latency in ROUNDS interleaved rounds, so that load drifting on a shared machine hits every path alike
    const xs = new Map<string, number[]>(measured.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(measured.map((t) => [t.name, []]));
    const bytes = new Map<string, number>();
    for (let r = 0; r < ROUNDS; r++)
      for (const t of measured)
        bytes.set(
          t.name,
          await sample(t, c.path, Math.ceil(c.n / ROUNDS), xs.get(t.name)!, cpu.get(t.name)!),
        );
    for (const t of measured) {
      const sorted = xs.get(t.name)!.sort((a, b) => a - b);
      const rps = latencyOnly ? 0 : await throughput(t, c.path, TPUT_MS);
      const cpuNs = cpu.get(t.name)!.reduce((a, b) => a + b, 0);
      results[c.name]![t.name] = {
        p50: pct(sorted, 50),
        p99: pct(sorted, 99),
        bytes: bytes.get(t.name) ?? 0,
        rps,
        cpuUsPerReq: cpuNs / 1000 / sorted.length,
      };
    }
  }
  proxy.stop();
  relay.stop();
  plainRelay.stop();
  pipe.stop();
  goTls?.stop();
  goPlain?.stop();
  await baseGateway?.stop();
  for (const g of gateways) await g.stop();
  upstream.closeAllConnections();
  upstream.close();
  await rm(dir, { recursive: true, force: true });

  const machine = {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "?",
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavgBefore: loadBefore,
    loadavgAfter: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
  process.stdout.write(
    `${JSON.stringify({ machine, concurrency: CONCURRENCY, evidenceFsync: fsync, results }, null, 2)}\n\n`,
  );
  const rows: string[] = [];
  rows.push(
    `machine: ${machine.cpus} x ${machine.cpu}, ${machine.node}; load average ${machine.loadavgBefore.join(" ")} before, ${machine.loadavgAfter.join(" ")} after; throughput at concurrency ${CONCURRENCY}; evidence fsync ${fsync ? "on" : "off"}`,
  );
  for (const [c, byT] of Object.entries(results)) {
    const direct = byT.direct!;
    rows.push(
      "",
      c,
      `${"path".padEnd(24)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"+p50 ms".padStart(8)} ${"cpu µs".padStart(8)} ${"req/s".padStart(8)} ${"vs direct".padStart(9)}`,
    );
    for (const [t, r] of Object.entries(byT))
      rows.push(
        `${t.padEnd(24)} ${r.p50.toFixed(3).padStart(8)} ${r.p99.toFixed(3).padStart(8)} ${(r.p50 - direct.p50).toFixed(3).padStart(8)} ${(Number.isNaN(r.cpuUsPerReq) ? "—" : r.cpuUsPerReq.toFixed(0)).padStart(8)} ${r.rps.toFixed(0).padStart(8)} ${(r.rps / direct.rps).toFixed(2).padStart(9)}`,
      );
  }
  process.stdout.write(`${rows.join("\n")}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 3;
});
