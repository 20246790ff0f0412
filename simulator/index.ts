/**
 * The custos Kubernetes API simulator: an HTTPS server (HTTP/2 with HTTP/1.1 fallback, as
 * kube-apiserver; WebSocket upgrades go over HTTP/1.1) that speaks enough of kube-apiserver's
 * wire formats for unmodified kubectl 1.32 and @kubernetes/client-node 1.4 (see README.md).
 *
 * @example
 *   const sim = await startSimulator({ seed: loadSeed(readFileSync("simulator/seed/demo.yaml", "utf8")) });
 *   writeFileSync("kubeconfig", sim.kubeconfig());
 *   // kubectl --kubeconfig kubeconfig get pods -n phi-clinic
 *   await sim.stop();
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import { createSecureServer } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import YAML from "yaml";
import type { JsonObject } from "./errors.ts";
import { errors, SimulatorError } from "./errors.ts";
import { isObject } from "./patch.ts";
import { LogBook } from "./pods.ts";
import { ResourceRegistry } from "./resources.ts";
import { type Fault, type RequestRecord, SimulatorHandler, type UserInfo } from "./server.ts";
import { Store } from "./store.ts";
import { sharedTlsMaterial, type TlsMaterial } from "./tls.ts";

export { loadSeed, SeedError } from "./seed.ts";
export { SimulatorError } from "./errors.ts";
export type { KubeStatus, Json, JsonObject } from "./errors.ts";
export type { Fault, RequestRecord, UserInfo } from "./server.ts";
export type { TlsMaterial } from "./tls.ts";
export { generateTlsMaterial } from "./tls.ts";
export { ANN as SIM_ANNOTATIONS } from "./pods.ts";
export { Store } from "./store.ts";
export { ResourceRegistry } from "./resources.ts";

export interface SimulatorOptions {
  /** true (default): HTTPS with a throwaway CA made by `openssl` (one per process); false: plain HTTP; or your own PEMs */
  tls?: boolean | TlsMaterial;
  /** 0 (default) picks a free port */
  port?: number;
  host?: string;
  /** the bearer token every request must carry (random when absent); it authenticates as an admin */
  token?: string;
  /** the admin token's identity (default system:admin in system:masters) */
  tokenUser?: UserInfo;
  /** more accepted tokens (e.g. service-account tokens), also answered by TokenReview */
  serviceAccountTokens?: Record<string, { username: string; groups?: string[]; uid?: string }>;
  /** objects to load at start (see loadSeed); namespaces they name are created when missing */
  seed?: object[];
  clock?: () => Date;
  /** interval between the `sim.custos.dev/logs-follow` lines sent to `follow=true` readers (default 1000 ms) */
  logIntervalMs?: number;
  /** interval between watch BOOKMARK events when asked for (default 60 s) */
  bookmarkIntervalMs?: number;
  /** when > 0, deleted Pods and Namespaces stay (with deletionTimestamp) this long before they go (default 0) */
  deletionDelayMs?: number;
  /** how many change events a watch can replay from a resourceVersion (default 10000) */
  historyLimit?: number;
  /** create default, kube-system, kube-public, kube-node-lease and node sim-node-1 (default true) */
  defaultObjects?: boolean;
  /** how many requests `requests` keeps (default 1000) */
  requestLogLimit?: number;
}

export interface Simulator {
  /** https://127.0.0.1:<port> */
  url: string;
  /** the CA that signed the server certificate ("" without TLS) */
  caPem: string;
  token: string;
  store: Store;
  registry: ResourceRegistry;
  /** every request seen, newest last (Authorization redacted) */
  requests: RequestRecord[];
  /** a kubeconfig YAML with one context pointing at the simulator with the admin token */
  kubeconfig(opts?: { namespace?: string; contextName?: string }): string;
  /** create (or replace) objects of any kind, as seeds are loaded */
  load(objects: object[]): JsonObject[];
  /** make matching requests fail: a status (e.g. 500, or 429 with Retry-After), a delay, a hang, a dropped connection or a malformed reply; returns its remover */
  injectFault(fault: Fault): () => void;
  /** append a line to a container's log (followers get it at once) */
  appendLog(namespace: string, pod: string, container: string, line: string): void;
  stop(): Promise<void>;
}

function defaultObjects(): JsonObject[] {
  const ns = (name: string): JsonObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  return [
    ns("default"),
    ns("kube-system"),
    ns("kube-public"),
    ns("kube-node-lease"),
    {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: "sim-node-1",
        labels: {
          "kubernetes.io/hostname": "sim-node-1",
          "kubernetes.io/os": "linux",
          "node-role.kubernetes.io/control-plane": "",
        },
      },
      spec: {},
    },
  ];
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const clock = opts.clock ?? (() => new Date());
  const registry = new ResourceRegistry();
  const storeOpts: ConstructorParameters<typeof Store>[0] = { registry, clock };
  if (opts.historyLimit !== undefined) storeOpts.historyLimit = opts.historyLimit;
  if (opts.deletionDelayMs !== undefined) storeOpts.deletionDelayMs = opts.deletionDelayMs;
  const store = new Store(storeOpts);
  const logs = new LogBook();
  const token = opts.token ?? randomBytes(24).toString("hex");
  const tokens = new Map<string, UserInfo>();
  tokens.set(
    token,
    opts.tokenUser ?? { username: "system:admin", groups: ["system:masters", "system:authenticated"] },
  );
  for (const [t, u] of Object.entries(opts.serviceAccountTokens ?? {})) {
    tokens.set(t, {
      username: u.username,
      groups: u.groups ?? ["system:serviceaccounts", "system:authenticated"],
      ...(u.uid ? { uid: u.uid } : {}),
    });
  }
  const requests: RequestRecord[] = [];
  let address = "127.0.0.1:0";
  const handler = new SimulatorHandler({
    store,
    registry,
    logs,
    clock,
    tokens,
    serverAddress: () => address,
    logIntervalMs: opts.logIntervalMs ?? 1000,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 60_000,
    requestLog: requests,
    requestLogLimit: opts.requestLogLimit ?? 1000,
  });

  // the service-account controller: every new namespace gets a "default" ServiceAccount
  const saDef = registry.byResource("", "v1", "serviceaccounts")!;
  store.subscribe((e) => {
    if (e.type !== "ADDED" || e.storage !== "/namespaces") return;
    const ns = String((e.object.metadata as JsonObject).name);
    if (!store.tryGet(saDef, ns, "default"))
      store.create(
        saDef,
        ns,
        { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default" } },
        { fieldManager: "kube-controller-manager" },
      );
  });

  // the apiextensions-apiserver: a CustomResourceDefinition serves its resource (and its columns)
  const isCrd = (o: JsonObject) =>
    o.kind === "CustomResourceDefinition" && o.apiVersion === "apiextensions.k8s.io/v1";
  store.subscribe((e) => {
    if (e.type !== "DELETED" && isCrd(e.object)) registry.addCustomResource(e.object);
  });

  const load = (objects: object[]): JsonObject[] => {
    const objs = objects.map((o) => {
      if (!isObject(o)) throw errors.badRequest("a seed object must be a JSON object");
      return structuredClone(o);
    });
    const nsDef = registry.byResource("", "v1", "namespaces")!;
    // namespaces first, events last (so their involvedObject can be linked to the object's uid)
    // (CustomResourceDefinitions first too: their objects need the resources they define)
    const rank = (o: JsonObject) =>
      (o.kind === "Namespace" && o.apiVersion === "v1") || isCrd(o) ? 0 : o.kind === "Event" ? 2 : 1;
    const ordered = [...objs].sort((a, b) => rank(a) - rank(b));
    const out: JsonObject[] = [];
    for (const o of ordered) {
      const m = o.metadata as JsonObject;
      const apiVersion = String(o.apiVersion);
      const kind = String(o.kind);
      const known = registry.byKind(apiVersion, kind);
      const def =
        known ?? registry.ensureKind(apiVersion, kind, typeof m.namespace === "string" && m.namespace !== "");
      const ns = def.namespaced ? String(m.namespace ?? "default") : "";
      if (def.namespaced && !store.tryGet(nsDef, "", ns))
        store.create(
          nsDef,
          "",
          { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
          { fieldManager: "custos-seed" },
        );
      if (kind === "Event") linkInvolvedObject(o, ns);
      const existing = m.name ? store.tryGet(def, ns, String(m.name)) : undefined;
      out.push(existing ? store.put(def, ns, o) : store.create(def, ns, o, { fieldManager: "custos-seed" }));
    }
    return out;
  };

  // seeded Events name their object by kind/name; fill in its uid as the kubelet would have
  const linkInvolvedObject = (ev: JsonObject, ns: string) => {
    const io = ev.involvedObject;
    if (!isObject(io) || io.uid || typeof io.kind !== "string" || typeof io.name !== "string") return;
    const def = registry.byKind(typeof io.apiVersion === "string" ? io.apiVersion : "v1", io.kind);
    const target = def
      ? store.tryGet(def, def.namespaced ? String(io.namespace ?? ns) : "", io.name)
      : undefined;
    if (target) io.uid = (target.metadata as JsonObject).uid ?? null;
  };

  if (opts.defaultObjects !== false) load(defaultObjects());
  if (opts.seed) load(opts.seed);

  const tlsOpt = opts.tls ?? true;
  const tls = tlsOpt === true ? await sharedTlsMaterial() : tlsOpt === false ? undefined : tlsOpt;
  const listener = (
    req: Parameters<SimulatorHandler["handle"]>[0],
    res: Parameters<SimulatorHandler["handle"]>[1],
  ) => {
    void handler.handle(req, res);
  };
  const server: Server = tls
    ? (createSecureServer(
        { key: tls.keyPem, cert: tls.certPem, allowHTTP1: true },
        listener as never,
      ) as unknown as Server)
    : createHttpServer(listener);
  server.on("upgrade", (req, socket, head) => handler.handleUpgrade(req, socket, head));
  // stop() must end keep-alive connections and HTTP/2 sessions too
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const sessions = new Set<{ destroy: () => void; on: (e: "close", f: () => void) => void }>();
  server.on("session", (s: { destroy: () => void; on: (e: "close", f: () => void) => void }) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  address = `${host}:${port}`;
  const url = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const podDef = registry.byResource("", "v1", "pods")!;
  let stopped = false;

  return {
    url,
    caPem: tls?.caPem ?? "",
    token,
    store,
    registry,
    requests,
    kubeconfig: (k = {}) => {
      const name = k.contextName ?? "custos-simulator";
      const cluster: Record<string, string> = { server: url };
      if (tls) cluster["certificate-authority-data"] = Buffer.from(tls.caPem).toString("base64");
      return YAML.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name, cluster }],
        users: [{ name: `${name}-admin`, user: { token } }],
        contexts: [
          { name, context: { cluster: name, user: `${name}-admin`, namespace: k.namespace ?? "default" } },
        ],
        "current-context": name,
        preferences: {},
      });
    },
    load,
    injectFault: (f) => handler.injectFault(f),
    appendLog: (namespace, pod, container, line) => {
      const p = store.get(podDef, namespace, pod);
      const names = Array.isArray((p.spec as JsonObject | undefined)?.containers)
        ? ((p.spec as JsonObject).containers as JsonObject[]).map((c) => c.name)
        : [];
      if (!names.includes(container))
        throw new SimulatorError(
          "SIM_NO_SUCH_CONTAINER",
          errors.badRequest(`container ${container} is not valid for pod ${pod}`).status,
          { namespace, pod, container },
        );
      logs.append(p, container, line, clock());
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      handler.closeAll();
      store.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
      });
    },
  };
}
