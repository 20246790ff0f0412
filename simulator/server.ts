/**
 * The simulator's request handling: authentication, the path grammar of kube-apiserver
 * (discovery, non-resource URLs, resources and subresources), CRUD, lists with selectors and
 * pagination, Tables, watch streams, logs, reviews, and the WebSocket upgrades for exec,
 * attach and port-forward.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import {
  aggregatedDiscovery,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  DISCOVERY_V2,
  DISCOVERY_V2BETA1,
  openApiV3Doc,
  openApiV3Root,
  versionInfo,
} from "./discovery.ts";
import { errors, type Json, type JsonObject, SimulatorError, statusBody } from "./errors.ts";
import { present, toStorage } from "./events.ts";
import {
  EXEC_PROTOCOLS,
  type ExecRequest,
  PORTFORWARD_PROTOCOLS,
  serveAttach,
  serveExec,
  servePortForward,
  spdyExecHandler,
  spdyPortForwardHandler,
} from "./exec.ts";
import { SpdySession } from "./spdy.ts";
import { decodeBody, mediaTypeOf, negotiate, query, readBody, writeError, writeJson } from "./http.ts";
import { isObject } from "./patch.ts";
import {
  followLines,
  type LogBook,
  nanoTimestamp,
  portTarget,
  resolveContainer,
  seededLogLines,
} from "./pods.ts";
import { decodeObject, decodeReview, PROTOBUF_MAGIC } from "./protobuf.ts";
import { apiVersionOf, isReview, type ResourceDef, type ResourceRegistry } from "./resources.ts";
import { parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { type ListOptions, type PatchType, rfc3339, type Store, type StoreEvent } from "./store.ts";
import { type IncludeObject, toTable } from "./tables.ts";

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

/** One request as the simulator saw it (Authorization redacted), for tests that check what reached the upstream. */
export interface RequestRecord {
  time: string;
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
  user?: string;
  status?: number;
  upgrade?: string;
  /** "2.0" when the client spoke HTTP/2 (kubectl over TLS does), "1.1" otherwise */
  httpVersion: string;
  /** the injected fault that answered or delayed it, if any */
  fault?: string;
  /** the request body (first 64 KiB; base64 with a "base64:" prefix when not UTF-8 text) */
  body?: string;
}

/**
 * A failure to inject, for tests of clients and proxies (upstream errors, slowness, 429
 * with Retry-After, broken connections, malformed replies). Matches every request when
 * `method` and `path` (exact path, or a RegExp over path and query) are absent; `times`
 * limits how often it fires (forever when absent). Applied after authentication.
 */
export interface Fault {
  method?: string;
  path?: string | RegExp;
  times?: number;
  action:
    | {
        kind: "status";
        status: number;
        reason?: string;
        message?: string;
        body?: string;
        headers?: Record<string, string>;
      }
    | { kind: "delay"; ms: number }
    | { kind: "hang" }
    | { kind: "destroy" }
    | { kind: "malformed"; variant: "truncated-json" | "not-json" | "bad-gzip" };
}

export interface HandlerDeps {
  store: Store;
  registry: ResourceRegistry;
  logs: LogBook;
  clock: () => Date;
  /** bearer token -> who it is */
  tokens: Map<string, UserInfo>;
  serverAddress: () => string;
  logIntervalMs: number;
  bookmarkIntervalMs: number;
  requestLog: RequestRecord[];
  requestLogLimit: number;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  user: UserInfo;
  record: RequestRecord;
}

interface ResourcePath {
  def: ResourceDef;
  namespace: string;
  name: string;
  subresource: string;
}

const READY_PATHS = new Set(["/healthz", "/livez", "/readyz"]);
const PUBLIC_PATHS = new Set(["/version", ...READY_PATHS]);

export class SimulatorHandler {
  private readonly deps: HandlerDeps;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly open = new Set<() => void>();

  constructor(deps: HandlerDeps) {
    this.deps = deps;
  }

  /** End every open watch, log follow and WebSocket session. */
  closeAll(): void {
    for (const c of [...this.open]) c();
    this.open.clear();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private track(close: () => void): () => void {
    this.open.add(close);
    return () => this.open.delete(close);
  }

  private recordOf(req: IncomingMessage): RequestRecord {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k] = k === "authorization" ? "<redacted>" : v;
    }
    const r: RequestRecord = {
      time: rfc3339(this.deps.clock()),
      method: req.method ?? "GET",
      url: req.url ?? "/",
      httpVersion: req.httpVersion,
      headers,
    };
    this.deps.requestLog.push(r);
    if (this.deps.requestLog.length > this.deps.requestLogLimit) this.deps.requestLog.shift();
    return r;
  }

  private authenticate(req: IncomingMessage, path: string): UserInfo | undefined {
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    const found = m ? this.deps.tokens.get(m[1]!) : undefined;
    if (!found)
      return PUBLIC_PATHS.has(path)
        ? { username: "system:anonymous", groups: ["system:unauthenticated"] }
        : undefined;
    const imp = req.headers["impersonate-user"];
    if (typeof imp === "string" && imp) {
      const g = req.headers["impersonate-group"];
      const groups = Array.isArray(g) ? g : typeof g === "string" ? [g] : [];
      return { username: imp, groups: [...groups, "system:authenticated"] };
    }
    return found;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record = this.recordOf(req);
    res.setHeader("Audit-Id", randomUUID());
    res.on("finish", () => {
      record.status = res.statusCode;
    });
    try {
      const url = new URL(req.url ?? "/", "https://simulator.invalid");
      const user = this.authenticate(req, url.pathname);
      if (!user) throw errors.unauthorized();
      record.user = user.username;
      const fault = this.takeFault(req.method ?? "GET", url);
      if (fault && (await this.applyFault(fault, req, res, record))) return;
      await this.route({ req, res, url, user, record });
    } catch (e) {
      writeError(req, res, e);
    }
  }

  private readonly faults: Fault[] = [];

  /** Make matching requests fail (see `Fault`); returns a function that removes the fault. */
  injectFault(f: Fault): () => void {
    this.faults.push(f);
    return () => {
      const i = this.faults.indexOf(f);
      if (i >= 0) this.faults.splice(i, 1);
    };
  }

  private takeFault(method: string, url: URL): Fault | undefined {
    const target = `${url.pathname}${url.search}`;
    const i = this.faults.findIndex(
      (f) =>
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined ||
          (typeof f.path === "string" ? url.pathname === f.path : f.path.test(target))),
    );
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.times !== undefined) {
      f.times -= 1;
      if (f.times <= 0) this.faults.splice(i, 1);
    }
    return f;
  }

  /** true when the fault answered the request itself */
  private async applyFault(
    f: Fault,
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
  ): Promise<boolean> {
    record.fault = f.action.kind;
    const a = f.action;
    switch (a.kind) {
      case "delay":
        await new Promise((r) => setTimeout(r, a.ms));
        return false;
      case "status": {
        const body =
          a.body ??
          JSON.stringify(
            statusBody(
              a.status,
              a.reason ?? "InternalError",
              a.message ?? `fault injected by the simulator (${a.status})`,
            ),
          );
        res.writeHead(a.status, { "Content-Type": "application/json", ...(a.headers ?? {}) });
        res.end(body);
        return true;
      }
      case "hang":
        // never answer; the client's timeout (or stop()) ends it
        this.track(() => res.destroy());
        return true;
      case "destroy":
        req.socket.destroy();
        return true;
      case "malformed": {
        const payloads = {
          "truncated-json": {
            type: "application/json",
            body: Buffer.from('{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"na'),
          },
          "not-json": { type: "application/json", body: Buffer.from("<html>502 Bad Gateway</html>") },
          "bad-gzip": { type: "application/json", body: Buffer.from("this is not gzip data") },
        } as const;
        const p = payloads[a.variant];
        res.writeHead(200, {
          "Content-Type": p.type,
          ...(a.variant === "bad-gzip" ? { "Content-Encoding": "gzip" } : {}),
        });
        res.end(p.body);
        return true;
      }
    }
  }

  private async route(ctx: Ctx): Promise<void> {
    const { url, req, res } = ctx;
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (READY_PATHS.has(path) || [...READY_PATHS].some((p) => path.startsWith(`${p}/`))) {
      res.writeHead(200, {
        "Content-Type": "text/plain; charset=utf-8",
        "X-Content-Type-Options": "nosniff",
      });
      res.end("ok");
      return;
    }
    const segs = path
      .split("/")
      .slice(1)
      .map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw errors.badRequest(`malformed path segment ${JSON.stringify(s)}`);
        }
      });
    const reg = this.deps.registry;
    const discoveryGet = (fn: () => JsonObject | undefined) => {
      if (method !== "GET") throw errors.methodNotAllowed(method, path);
      const doc = fn();
      if (!doc) throw errors.pathNotFound(path);
      writeJson(req, res, 200, doc);
    };
    if (path === "/version") return discoveryGet(() => versionInfo());
    if (path === "/api" || path === "/apis") {
      if (method !== "GET") throw errors.methodNotAllowed(method, path);
      const legacy = path === "/api";
      const n = negotiate(req.headers.accept, { discovery: true });
      if (n.as === "discovery") {
        writeJson(req, res, 200, aggregatedDiscovery(reg, legacy, n.version), {
          contentType: n.version === "v2" ? DISCOVERY_V2 : DISCOVERY_V2BETA1,
        });
      } else {
        writeJson(req, res, 200, legacy ? apiVersions(this.deps.serverAddress()) : apiGroupList(reg));
      }
      return;
    }
    if (segs[0] === "openapi") {
      if (path === "/openapi/v3") return discoveryGet(() => openApiV3Root(reg));
      if (segs[1] === "v3" && segs[2] === "api" && segs.length === 4)
        return discoveryGet(() => openApiV3Doc(reg, "", segs[3]!));
      if (segs[1] === "v3" && segs[2] === "apis" && segs.length === 5)
        return discoveryGet(() => openApiV3Doc(reg, segs[3]!, segs[4]!));
      // no OpenAPI v2: kubectl falls back to its compiled-in types for strategic merge patches
      throw errors.pathNotFound(path);
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === "api" && segs.length >= 2) {
      group = "";
      version = segs[1]!;
      rest = segs.slice(2);
    } else if (segs[0] === "apis" && segs.length >= 2) {
      if (segs.length === 2) return discoveryGet(() => apiGroup(reg, segs[1]!));
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
    } else throw errors.pathNotFound(path);
    if (rest.length === 0) return discoveryGet(() => apiResourceList(reg, group, version));
    const rp = this.resolve(group, version, rest);
    if (!rp) throw errors.pathNotFound(path);
    await this.resource(ctx, rp);
  }

  /** kube-apiserver's RequestInfo rules for resource paths. */
  private resolve(group: string, version: string, parts: string[]): ResourcePath | undefined {
    let ns = "";
    let p = parts;
    if (p[0] === "namespaces" && p.length > 1) {
      ns = p[1]!;
      if (p.length > 2 && p[2] !== "status" && p[2] !== "finalize") p = p.slice(2);
      else return this.withDef(group, version, "namespaces", "", ns, p[2] ?? "");
    }
    if (p.length > 3) {
      // only proxy subresources take further path segments
      if (p[2] !== "proxy") return undefined;
    }
    return this.withDef(group, version, p[0]!, ns, p[1] ?? "", p[2] ?? "");
  }

  private withDef(
    group: string,
    version: string,
    resource: string,
    ns: string,
    name: string,
    sub: string,
  ): ResourcePath | undefined {
    const def = this.deps.registry.byResource(group, version, resource);
    if (!def) return undefined;
    if (def.namespaced !== (ns !== "") && !(def.namespaced && ns === "" && name === "")) {
      if (!(resource === "namespaces" && ns === "")) return undefined;
    }
    if (sub && !def.subresources.some((s) => s.name === sub)) return undefined;
    return { def, namespace: ns, name, subresource: sub };
  }

  private storageDef(def: ResourceDef): ResourceDef {
    if (def.storage === "events") return this.deps.registry.byResource("", "v1", "events")!;
    return def;
  }

  /** What a client gets for a stored object: its group's shape, with kind and apiVersion. */
  private out(def: ResourceDef, o: JsonObject): JsonObject {
    return present(def, o);
  }

  private async body(ctx: Ctx): Promise<{ value: Json; contentType: string; raw: Buffer }> {
    const raw = await readBody(ctx.req);
    recordBody(ctx.record, raw);
    const ct = String(ctx.req.headers["content-type"] ?? "");
    if (
      mediaTypeOf(ct) === "application/vnd.kubernetes.protobuf" ||
      raw.subarray(0, 4).equals(PROTOBUF_MAGIC)
    ) {
      return { value: decodeObject(raw), contentType: "application/json", raw };
    }
    if (raw.length === 0) return { value: null, contentType: ct, raw };
    return { value: decodeBody(raw, ct), contentType: ct, raw };
  }

  private writeOpts(
    ctx: Ctx,
    sub?: string,
  ): { dryRun?: boolean; fieldManager?: string; subresource?: string } {
    const q = query(ctx.url);
    const dry = q.all("dryRun");
    for (const d of dry)
      if (d !== "All")
        throw errors.badRequest(`invalid dryRun value ${JSON.stringify(d)}: only "All" is supported`);
    const fv = q.one("fieldValidation");
    if (fv !== undefined && !["Strict", "Warn", "Ignore", ""].includes(fv)) {
      throw errors.badRequest(
        `fieldValidation must be one of Strict, Warn, Ignore (got ${JSON.stringify(fv)})`,
      );
    }
    const fm = q.one("fieldManager") ?? String(ctx.req.headers["user-agent"] ?? "unknown").split("/")[0]!;
    const o: { dryRun?: boolean; fieldManager?: string; subresource?: string } = { fieldManager: fm };
    if (dry.length > 0) o.dryRun = true;
    if (sub) o.subresource = sub;
    return o;
  }

  private async resource(ctx: Ctx, rp: ResourcePath): Promise<void> {
    const { req, res, url } = ctx;
    const method = req.method ?? "GET";
    const { def, namespace: ns, name, subresource: sub } = rp;
    const q = query(url);
    const store = this.deps.store;
    const sdef = this.storageDef(def);

    if (isReview(def)) {
      if (method !== "POST" || name) throw errors.methodNotAllowed(method, def.resource);
      return this.review(ctx, def, ns);
    }
    if (sub === "log") return this.podLog(ctx, ns, name);
    if (sub === "exec" || sub === "attach" || sub === "portforward") {
      throw new SimulatorError(
        "SIM_UPGRADE_REQUIRED",
        statusBody(
          400,
          "BadRequest",
          `${sub} needs a connection upgrade: GET with Upgrade: websocket (subprotocol ${sub === "portforward" ? "SPDY/3.1+portforward.k8s.io or v4.channel.k8s.io" : "v5.channel.k8s.io or v4.channel.k8s.io"}), or POST with Upgrade: SPDY/3.1`,
        ),
      );
    }
    if (sub === "proxy") {
      this.get(def, ns, name);
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(`custos simulator: ${def.resource}/${name} proxy ${method} ${url.pathname}\n`);
      return;
    }
    if (sub === "scale") return this.scale(ctx, def, ns, name);
    if (sub === "eviction") {
      if (method !== "POST") throw errors.methodNotAllowed(method, "eviction");
      store.delete(def, ns, name, {});
      writeJson(req, res, 201, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Success",
        code: 201,
      });
      return;
    }
    if (sub === "token") return this.serviceAccountToken(ctx, def, ns, name);
    if (sub === "binding" || sub === "ephemeralcontainers" || sub === "finalize") {
      if (method === "GET" && sub === "ephemeralcontainers")
        return writeJson(req, res, 200, this.out(def, this.get(def, ns, name)));
      throw errors.methodNotAllowed(method, `${def.resource}/${sub}`);
    }

    if (!name) {
      if (method === "GET") {
        if (q.bool("watch")) return this.watch(ctx, def, ns || undefined);
        return this.list(ctx, def, ns || undefined);
      }
      if (method === "POST") {
        const { value } = await this.body(ctx);
        if (!isObject(value)) throw errors.badRequest(`the body of a create must be a ${def.kind} object`);
        const created = store.create(sdef, ns, toStorage(def, value), this.writeOpts(ctx));
        return writeJson(req, res, 201, this.out(def, created));
      }
      if (method === "DELETE") {
        if (!def.verbs.includes("deletecollection")) throw errors.methodNotAllowed(method, def.resource);
        const opts = await this.deleteOptions(ctx);
        const sel = this.selectors(ctx);
        const deleted: JsonObject[] = [];
        for (const o of store.list(sdef, ns || undefined, sel).items) {
          const m = o.metadata as JsonObject;
          deleted.push(this.out(def, store.delete(sdef, String(m.namespace ?? ""), String(m.name), opts)));
        }
        return writeJson(req, res, 200, {
          kind: `${def.kind}List`,
          apiVersion: apiVersionOf(def),
          metadata: { resourceVersion: String(store.currentResourceVersion()) },
          items: deleted.map(stripType),
        });
      }
      throw errors.methodNotAllowed(method, def.resource);
    }

    // a named object (or its /status)
    if (method === "GET") {
      if (q.bool("watch")) {
        return this.watch(ctx, def, ns || undefined, name);
      }
      const o = this.get(def, ns, name);
      return this.writeObject(ctx, def, o);
    }
    if (method === "PUT") {
      const { value } = await this.body(ctx);
      if (!isObject(value)) throw errors.badRequest(`the body of an update must be a ${def.kind} object`);
      const updated = store.update(sdef, ns, name, toStorage(def, value), this.writeOpts(ctx, sub));
      return writeJson(req, res, 200, this.out(def, updated));
    }
    if (method === "PATCH") {
      const { value, contentType } = await this.body(ctx);
      const type = patchTypeOf(contentType);
      const existed = store.tryGet(sdef, ns, name) !== undefined;
      const opts = { ...this.writeOpts(ctx, sub), force: q.bool("force") };
      const patched = store.patch(
        sdef,
        ns,
        name,
        type,
        isObject(value) ? toStorage(def, value) : (value as Json),
        opts,
      );
      return writeJson(req, res, existed ? 200 : 201, this.out(def, patched));
    }
    if (method === "DELETE") {
      const opts = await this.deleteOptions(ctx);
      const deleted = store.delete(sdef, ns, name, opts);
      return writeJson(req, res, 200, this.out(def, deleted));
    }
    throw errors.methodNotAllowed(method, def.resource);
  }

  private get(def: ResourceDef, ns: string, name: string): JsonObject {
    return this.deps.store.get(this.storageDef(def), ns, name);
  }

  private writeObject(ctx: Ctx, def: ResourceDef, o: JsonObject) {
    const n = negotiate(ctx.req.headers.accept, { table: true, partial: true });
    const outObj = this.out(def, o);
    if (n.as === "table") {
      const t = toTable(
        def,
        [{ printed: o, returned: outObj }],
        { resourceVersion: String((o.metadata as JsonObject).resourceVersion ?? "") },
        { include: this.includeObject(ctx), now: this.deps.clock(), version: n.version },
      );
      return writeJson(ctx.req, ctx.res, 200, t);
    }
    if (n.as === "partial")
      return writeJson(ctx.req, ctx.res, 200, {
        kind: "PartialObjectMetadata",
        apiVersion: `meta.k8s.io/${n.version}`,
        metadata: o.metadata ?? {},
      });
    writeJson(ctx.req, ctx.res, 200, outObj, { format: n.as === "object" ? n.format : "json" });
  }

  private readonly itemJsonCache = new WeakMap<JsonObject, string>();

  private itemJson(def: ResourceDef, stored: JsonObject): string {
    if (def.storage === "events" && def.group !== "") return JSON.stringify(stripType(this.out(def, stored)));
    let j = this.itemJsonCache.get(stored);
    if (j === undefined) {
      j = JSON.stringify(stripType(stored));
      this.itemJsonCache.set(stored, j);
    }
    return j;
  }

  private includeObject(ctx: Ctx): IncludeObject {
    const v = query(ctx.url).one("includeObject") ?? "Metadata";
    if (v !== "None" && v !== "Metadata" && v !== "Object")
      throw errors.badRequest(`includeObject must be None, Metadata or Object (got ${JSON.stringify(v)})`);
    return v;
  }

  private selectors(ctx: Ctx): Pick<ListOptions, "labelSelector" | "fieldSelector"> {
    const q = query(ctx.url);
    const out: Pick<ListOptions, "labelSelector" | "fieldSelector"> = {};
    const ls = q.one("labelSelector");
    const fs = q.one("fieldSelector");
    if (ls) out.labelSelector = parseLabelSelector(ls);
    if (fs) out.fieldSelector = parseFieldSelector(fs);
    return out;
  }

  private async deleteOptions(ctx: Ctx): Promise<{
    dryRun?: boolean;
    preconditions?: { uid?: string; resourceVersion?: string };
    propagationPolicy?: string;
  }> {
    const q = query(ctx.url);
    const { value } = await this.body(ctx);
    const out: {
      dryRun?: boolean;
      preconditions?: { uid?: string; resourceVersion?: string };
      propagationPolicy?: string;
    } = {};
    const body = isObject(value) ? value : {};
    const prop =
      q.one("propagationPolicy") ??
      (typeof body.propagationPolicy === "string" ? body.propagationPolicy : undefined);
    if (prop !== undefined) {
      if (!["Background", "Foreground", "Orphan"].includes(prop))
        throw errors.badRequest(
          `propagationPolicy must be Background, Foreground or Orphan (got ${JSON.stringify(prop)})`,
        );
      out.propagationPolicy = prop;
    } else if (q.one("orphanDependents") === "true" || body.orphanDependents === true)
      out.propagationPolicy = "Orphan";
    if (q.all("dryRun").includes("All") || (Array.isArray(body.dryRun) && body.dryRun.includes("All")))
      out.dryRun = true;
    if (isObject(body.preconditions)) {
      const p: { uid?: string; resourceVersion?: string } = {};
      if (typeof body.preconditions.uid === "string") p.uid = body.preconditions.uid;
      if (typeof body.preconditions.resourceVersion === "string")
        p.resourceVersion = body.preconditions.resourceVersion;
      out.preconditions = p;
    }
    return out;
  }

  private list(ctx: Ctx, def: ResourceDef, ns: string | undefined) {
    const q = query(ctx.url);
    const opts: ListOptions = { ...this.selectors(ctx) };
    const limit = q.int("limit");
    if (limit !== undefined) opts.limit = limit;
    const cont = q.one("continue");
    if (cont) opts.continueToken = cont;
    const result = this.deps.store.list(this.storageDef(def), ns, opts);
    const listMeta: JsonObject = { resourceVersion: result.resourceVersion };
    if (result.continueToken) listMeta.continue = result.continueToken;
    if (result.remainingItemCount !== undefined) listMeta.remainingItemCount = result.remainingItemCount;
    const n = negotiate(ctx.req.headers.accept, { table: true, partial: true });
    if (n.as === "table") {
      const t = toTable(
        def,
        result.items.map((o) => ({ printed: o, returned: this.out(def, o) })),
        listMeta,
        { include: this.includeObject(ctx), now: this.deps.clock(), version: n.version },
      );
      return writeJson(ctx.req, ctx.res, 200, t);
    }
    if (n.as === "partial") {
      return writeJson(ctx.req, ctx.res, 200, {
        kind: "PartialObjectMetadataList",
        apiVersion: `meta.k8s.io/${n.version}`,
        metadata: listMeta,
        items: result.items.map((o) => ({
          kind: "PartialObjectMetadata",
          apiVersion: `meta.k8s.io/${n.version}`,
          metadata: o.metadata ?? {},
        })),
      });
    }
    const format = n.as === "object" ? n.format : "json";
    if (format === "json") {
      // stored objects are immutable, so each one's JSON is made once and reused by every list
      const items = result.items.map((o) => this.itemJson(def, o)).join(",");
      const head = JSON.stringify({
        kind: `${def.kind}List`,
        apiVersion: apiVersionOf(def),
        metadata: listMeta,
      });
      return writeJson(ctx.req, ctx.res, 200, null, { raw: `${head.slice(0, -1)},"items":[${items}]}` });
    }
    const body = {
      kind: `${def.kind}List`,
      apiVersion: apiVersionOf(def),
      metadata: listMeta,
      // built-in lists carry no kind/apiVersion per item, as kube-apiserver encodes them
      items: result.items.map((o) => stripType(this.out(def, o))),
    };
    writeJson(ctx.req, ctx.res, 200, body, { format });
  }

  private watch(ctx: Ctx, def: ResourceDef, ns: string | undefined, singleName?: string): void {
    const { req, res } = ctx;
    const q = query(ctx.url);
    const store = this.deps.store;
    const sdef = this.storageDef(def);
    const sel = this.selectors(ctx);
    if (singleName)
      sel.fieldSelector = [
        ...(sel.fieldSelector ?? []),
        { key: "metadata.name", op: "=", values: [singleName] },
      ];
    const n = negotiate(req.headers.accept, { table: true, partial: true });
    // (read for Tables only: kube-apiserver ignores includeObject anywhere else)
    const include = () => this.includeObject(ctx);
    if (n.as === "table") include();
    const rvParam = q.one("resourceVersion");
    const bookmarks = q.bool("allowWatchBookmarks");
    const sendInitial = q.one("sendInitialEvents") === "true";
    const timeoutSeconds = q.int("timeoutSeconds") ?? 1800;
    let headersSent = false;

    const inNs = (e: StoreEvent) =>
      e.storage === sdef.storage && (ns === undefined || !sdef.namespaced || e.namespace === ns);
    const keyOf = (o: JsonObject) =>
      `${String((o.metadata as JsonObject).namespace ?? "")}/${String((o.metadata as JsonObject).name)}`;
    const inView = new Map<string, boolean>();
    const encode = (type: string, o: JsonObject): string => {
      let object: JsonObject;
      if (type === "BOOKMARK") {
        object =
          n.as === "table"
            ? {
                kind: "Table",
                apiVersion: "meta.k8s.io/v1",
                metadata: o.metadata as JsonObject,
                columnDefinitions: [],
                rows: [],
              }
            : o;
      } else if (n.as === "table") {
        object = toTable(
          def,
          [{ printed: o, returned: this.out(def, o) }],
          { resourceVersion: String((o.metadata as JsonObject).resourceVersion) },
          { include: include(), now: this.deps.clock(), noHeaders: headersSent, version: n.version },
        );
        headersSent = true;
      } else if (n.as === "partial") {
        object = {
          kind: "PartialObjectMetadata",
          apiVersion: `meta.k8s.io/${n.version}`,
          metadata: o.metadata as JsonObject,
        };
      } else object = this.out(def, o);
      return `${JSON.stringify({ type, object })}\n`;
    };
    const send = (type: string, o: JsonObject) => {
      if (!res.writableEnded) res.write(encode(type, o));
    };
    const onEvent = (e: StoreEvent, prevKnown: boolean) => {
      if (!inNs(e)) return;
      const k = keyOf(e.object);
      const now = store.matches(e.object, sel) && e.type !== "DELETED";
      const nowMatch = store.matches(e.object, sel);
      const was = inView.get(k);
      if (e.type === "DELETED") inView.delete(k);
      else inView.set(k, now);
      if (!prevKnown || was === undefined) {
        if (nowMatch) send(e.type, e.object);
        return;
      }
      if (e.type === "DELETED") {
        if (was || nowMatch) send("DELETED", e.object);
      } else if (now && was) send("MODIFIED", e.object);
      else if (now && !was) send("ADDED", e.object);
      else if (!now && was) send("DELETED", e.object);
    };

    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache, private",
    });
    // kube-apiserver sends a watch's headers at once, before the first event
    res.flushHeaders();
    res.socket?.setNoDelay(true);

    const fromRv =
      rvParam === undefined || rvParam === "" || rvParam === "0" || sendInitial ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isInteger(fromRv)) {
      send(
        "ERROR",
        statusBody(
          400,
          "BadRequest",
          `invalid resource version: ${JSON.stringify(rvParam)}`,
        ) as unknown as JsonObject,
      );
      res.end();
      return;
    }
    let replay: StoreEvent[] = [];
    if (fromRv === undefined) {
      for (const o of store.all(sdef, ns)) {
        const match = store.matches(o, sel);
        inView.set(keyOf(o), match);
        if (match) send("ADDED", o);
      }
      if (sendInitial && bookmarks) {
        send("BOOKMARK", {
          kind: def.kind,
          apiVersion: apiVersionOf(def),
          metadata: {
            resourceVersion: String(store.currentResourceVersion()),
            annotations: { "k8s.io/initial-events-end": "true" },
          },
        });
      }
    } else {
      const evs = store.eventsSince(fromRv, sdef.storage);
      if (evs === "expired") {
        send(
          "ERROR",
          statusBody(
            410,
            "Expired",
            `too old resource version: ${fromRv} (${store.oldestWatchableResourceVersion()})`,
          ) as unknown as JsonObject,
        );
        res.end();
        return;
      }
      replay = evs;
    }
    for (const e of replay) onEvent(e, false);
    if (fromRv !== undefined)
      for (const o of store.all(sdef, ns)) inView.set(keyOf(o), store.matches(o, sel));
    const unsubscribe = store.subscribe((e) => onEvent(e, true));
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks) {
      timers.push(
        setInterval(
          () =>
            send("BOOKMARK", {
              kind: def.kind,
              apiVersion: apiVersionOf(def),
              metadata: { resourceVersion: String(store.currentResourceVersion()) },
            }),
          this.deps.bookmarkIntervalMs,
        ),
      );
    }
    let untrack = () => {};
    const finish = () => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      untrack();
      if (!res.writableEnded) res.end();
    };
    timers.push(setTimeout(finish, timeoutSeconds * 1000));
    untrack = this.track(finish);
    req.on("close", finish);
    res.on("close", finish);
  }

  private podLog(ctx: Ctx, ns: string, name: string): void {
    const { req, res } = ctx;
    if (req.method !== "GET") throw errors.methodNotAllowed(req.method ?? "", "pods/log");
    const q = query(ctx.url);
    const podDef = this.deps.registry.byResource("", "v1", "pods")!;
    const pod = this.deps.store.get(podDef, ns, name);
    const container = resolveContainer(pod, q.one("container"));
    const previous = q.bool("previous");
    const follow = q.bool("follow") && !previous;
    const timestamps = q.bool("timestamps");
    const tail = q.int("tailLines");
    const limitBytes = q.int("limitBytes");
    const sinceSeconds = q.int("sinceSeconds");
    const sinceTime = q.one("sinceTime");
    const now = this.deps.clock();
    const since =
      sinceSeconds !== undefined
        ? now.getTime() - sinceSeconds * 1000
        : sinceTime
          ? Date.parse(sinceTime)
          : undefined;

    let lines: Array<{ time: Date; text: string }>;
    if (previous) {
      const prev = seededLogLines(pod, container, true);
      if (!prev)
        throw errors.badRequest(`previous terminated container "${container}" in pod "${name}" not found`);
      lines = prev.map((text) => ({ time: now, text }));
    } else lines = [...this.deps.logs.read(pod, container)];
    if (since !== undefined) lines = lines.filter((l) => l.time.getTime() >= since);
    if (tail !== undefined && tail >= 0) lines = tail === 0 ? [] : lines.slice(-tail);
    const fmt = (l: { time: Date; text: string }) =>
      `${timestamps ? `${nanoTimestamp(l.time)} ` : ""}${l.text}\n`;

    let budget = limitBytes !== undefined && limitBytes > 0 ? limitBytes : Number.POSITIVE_INFINITY;
    let finish = () => {};
    const write = (s: string) => {
      if (res.writableEnded) return;
      const b = Buffer.from(s, "utf8");
      if (b.length >= budget) {
        res.write(b.subarray(0, budget));
        budget = 0;
        finish();
        return;
      }
      budget -= b.length;
      res.write(b);
    };
    res.writeHead(200, {
      "Content-Type": "text/plain",
      "Cache-Control": "no-cache, private",
    });
    for (const l of lines) write(fmt(l));
    if (!follow || res.writableEnded) {
      if (!res.writableEnded) res.end();
      return;
    }
    res.socket?.setNoDelay(true);
    // follow: appended lines as they come, the pod's follow lines one per interval, until the pod goes away
    const stopFollow = this.deps.logs.follow(pod, container, (l) => write(fmt(l)));
    const queue = followLines(pod, container);
    const interval = setInterval(() => {
      const next = queue.shift();
      if (next !== undefined) write(fmt({ time: this.deps.clock(), text: next }));
    }, this.deps.logIntervalMs);
    const uid = (pod.metadata as JsonObject).uid;
    const unsub = this.deps.store.subscribe((e) => {
      if (e.type === "DELETED" && (e.object.metadata as JsonObject).uid === uid) finish();
    });
    let untrack = () => {};
    finish = () => {
      stopFollow();
      clearInterval(interval);
      unsub();
      untrack();
      if (!res.writableEnded) res.end();
    };
    untrack = this.track(finish);
    req.on("close", finish);
  }

  private scale(ctx: Ctx, def: ResourceDef, ns: string, name: string): Promise<void> | void {
    const { req, res } = ctx;
    const store = this.deps.store;
    const toScale = (o: JsonObject): JsonObject => {
      const m = o.metadata as JsonObject;
      const spec = isObject(o.spec) ? o.spec : {};
      const status = isObject(o.status) ? o.status : {};
      const sel =
        isObject(spec.selector) && isObject(spec.selector.matchLabels) ? spec.selector.matchLabels : {};
      return {
        kind: "Scale",
        apiVersion: "autoscaling/v1",
        metadata: {
          name: m.name ?? null,
          namespace: m.namespace ?? null,
          uid: m.uid ?? null,
          resourceVersion: m.resourceVersion ?? null,
          creationTimestamp: m.creationTimestamp ?? null,
        },
        spec: { replicas: Number(spec.replicas ?? 1) },
        status: {
          replicas: Number(status.replicas ?? 0),
          selector: Object.entries(sel)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(","),
        },
      };
    };
    const method = req.method ?? "GET";
    if (method === "GET") return writeJson(req, res, 200, toScale(store.get(def, ns, name)));
    if (method !== "PUT" && method !== "PATCH")
      throw errors.methodNotAllowed(method, `${def.resource}/scale`);
    return (async () => {
      const { value, contentType } = await this.body(ctx);
      const current = toScale(store.get(def, ns, name));
      const next =
        method === "PUT" ? value : store.previewPatch(current, patchTypeOf(contentType), value as Json);
      const replicas = isObject(next) && isObject(next.spec) ? next.spec.replicas : undefined;
      if (typeof replicas !== "number") throw errors.badRequest("a Scale needs spec.replicas");
      store.patch(def, ns, name, "merge", { spec: { replicas } }, this.writeOpts(ctx, "scale"));
      // status follows at once: there is no controller
      const withStatus = store.patch(
        def,
        ns,
        name,
        "merge",
        {
          status: {
            replicas,
            readyReplicas: replicas,
            availableReplicas: replicas,
            updatedReplicas: replicas,
          },
        },
        { ...this.writeOpts(ctx, "status"), fieldManager: "sim-controller" },
      );
      writeJson(req, res, 200, toScale(withStatus));
    })();
  }

  private async serviceAccountToken(ctx: Ctx, def: ResourceDef, ns: string, name: string): Promise<void> {
    if (ctx.req.method !== "POST")
      throw errors.methodNotAllowed(ctx.req.method ?? "", "serviceaccounts/token");
    this.get(def, ns, name);
    const { value } = await this.body(ctx);
    const spec = isObject(value) && isObject(value.spec) ? value.spec : {};
    const seconds = typeof spec.expirationSeconds === "number" ? spec.expirationSeconds : 3600;
    const token = `sim-sa-${randomBytes(24).toString("base64url")}`;
    this.deps.tokens.set(token, {
      username: `system:serviceaccount:${ns}:${name}`,
      groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
    });
    writeJson(ctx.req, ctx.res, 201, {
      kind: "TokenRequest",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { name, namespace: ns, creationTimestamp: null },
      spec: { ...spec, expirationSeconds: seconds },
      status: { token, expirationTimestamp: rfc3339(new Date(this.deps.clock().getTime() + seconds * 1000)) },
    });
  }

  private async review(ctx: Ctx, def: ResourceDef, ns: string): Promise<void> {
    const raw = await readBody(ctx.req);
    recordBody(ctx.record, raw);
    const ct = String(ctx.req.headers["content-type"] ?? "");
    const protobuf = mediaTypeOf(ct) === "application/vnd.kubernetes.protobuf";
    let body: Json;
    if (protobuf) {
      if (
        !["selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"].includes(def.resource)
      )
        throw errors.unsupportedMediaType(ct);
      body = decodeReview(raw);
    } else body = raw.length > 0 ? decodeBody(raw, ct) : {};
    const input = isObject(body) ? body : {};
    const spec = isObject(input.spec) ? input.spec : {};
    let status: JsonObject;
    switch (def.resource) {
      case "selfsubjectaccessreviews":
      case "subjectaccessreviews":
      case "localsubjectaccessreviews":
        status = { allowed: true, reason: "the custos simulator allows every authenticated request" };
        break;
      case "selfsubjectrulesreviews":
        status = {
          resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"] }],
          nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
          incomplete: false,
        };
        break;
      case "tokenreviews": {
        const who = typeof spec.token === "string" ? this.deps.tokens.get(spec.token) : undefined;
        status = who
          ? {
              authenticated: true,
              user: { username: who.username, ...(who.uid ? { uid: who.uid } : {}), groups: who.groups },
              audiences: Array.isArray(spec.audiences) ? spec.audiences : [],
            }
          : { authenticated: false, error: "invalid bearer token" };
        break;
      }
      case "selfsubjectreviews":
        status = {
          userInfo: {
            username: ctx.user.username,
            ...(ctx.user.uid ? { uid: ctx.user.uid } : {}),
            groups: ctx.user.groups,
          },
        };
        break;
      default:
        throw errors.methodNotAllowed("POST", def.resource);
    }
    const out: JsonObject = {
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: {
        ...(isObject(input.metadata) ? input.metadata : {}),
        creationTimestamp: null,
        ...(def.namespaced ? { namespace: ns } : {}),
      },
      spec,
      status,
    };
    writeJson(ctx.req, ctx.res, 201, out);
  }

  // ---- upgrades (exec, attach, port-forward) ----

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const record = this.recordOf(req);
    record.upgrade = String(req.headers.upgrade ?? "");
    const reject = (e: unknown) => {
      const err =
        e instanceof SimulatorError ? e : errors.internal(e instanceof Error ? e.message : String(e));
      record.status = err.httpStatus;
      const body = JSON.stringify(err.status);
      socket.end(
        `HTTP/1.1 ${err.httpStatus} ${err.status.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    try {
      const url = new URL(req.url ?? "/", "https://simulator.invalid");
      const user = this.authenticate(req, url.pathname);
      if (!user) throw errors.unauthorized();
      record.user = user.username;
      const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)\/?$/.exec(
        url.pathname,
      );
      if (!m) throw errors.pathNotFound(url.pathname);
      const ns = decodeURIComponent(m[1]!);
      const name = decodeURIComponent(m[2]!);
      const kind = m[3] as "exec" | "attach" | "portforward";
      const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
      if (kind === "portforward" && upgrade === "spdy/3.1" && req.method === "POST") {
        const podDef = this.deps.registry.byResource("", "v1", "pods")!;
        const pod = this.deps.store.get(podDef, ns, name);
        const offered = String(req.headers["x-stream-protocol-version"] ?? "")
          .split(",")
          .map((s) => s.trim());
        if (!offered.includes("portforward.k8s.io")) {
          throw errors.badRequest(
            `unsupported port-forward stream protocol(s) [${offered.join(", ")}]; expected portforward.k8s.io`,
          );
        }
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
        );
        record.status = 101;
        const session = new SpdySession(
          (b) => {
            if (!socket.destroyed) socket.write(b);
          },
          spdyPortForwardHandler((port) => portTarget(pod, port)),
          () => socket.end(),
        );
        const untrack = this.track(() => socket.destroy());
        socket.on("data", (b: Buffer) => session.push(b));
        socket.on("close", () => {
          untrack();
          session.close();
        });
        socket.on("error", () => session.close());
        if (head.length > 0) session.push(head);
        return;
      }
      if ((kind === "exec" || kind === "attach") && upgrade === "spdy/3.1" && req.method === "POST") {
        const podDef = this.deps.registry.byResource("", "v1", "pods")!;
        const pod = this.deps.store.get(podDef, ns, name);
        const offered = String(req.headers["x-stream-protocol-version"] ?? "")
          .split(",")
          .map((s) => s.trim());
        const chosen = ["v4.channel.k8s.io"].find((p) => offered.includes(p));
        if (!chosen) {
          throw errors.badRequest(
            `unsupported ${kind} stream protocol(s) [${offered.join(", ")}]; the simulator speaks v4.channel.k8s.io over SPDY`,
          );
        }
        const q = query(url);
        const er: ExecRequest = {
          command: q.all("command"),
          container: resolveContainer(pod, q.one("container")),
          stdin: q.bool("stdin"),
          stdout: q.bool("stdout"),
          stderr: q.bool("stderr"),
          tty: q.bool("tty"),
        };
        if (!er.stdin && !er.stdout && !er.stderr)
          throw errors.badRequest("you must specify at least 1 of stdin, stdout, stderr");
        if (kind === "exec" && er.command.length === 0)
          throw errors.badRequest("you must specify at least one command for the container");
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${chosen}\r\n\r\n`,
        );
        record.status = 101;
        const session = new SpdySession(
          (b) => {
            if (!socket.destroyed) socket.write(b);
          },
          spdyExecHandler(
            pod,
            er,
            kind,
            this.deps.clock,
            (fn) => this.deps.logs.follow(pod, er.container, (l) => fn(l.text)),
            () => session.close(),
          ),
          () => socket.end(),
        );
        const untrack = this.track(() => socket.destroy());
        socket.on("data", (b: Buffer) => session.push(b));
        socket.on("close", () => {
          untrack();
          session.close();
        });
        socket.on("error", () => session.close());
        if (head.length > 0) session.push(head);
        return;
      }
      if (upgrade !== "websocket" || req.method !== "GET") {
        throw new SimulatorError(
          "SIM_UPGRADE_UNSUPPORTED",
          statusBody(
            400,
            "BadRequest",
            `the custos simulator speaks ${kind} over a WebSocket GET or a SPDY/3.1 POST, not ${req.method ?? "?"} with Upgrade: ${String(req.headers.upgrade ?? "(none)")}`,
          ),
          { upgrade: req.headers.upgrade },
        );
      }
      const offered = String(req.headers["sec-websocket-protocol"] ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const supported = kind === "portforward" ? PORTFORWARD_PROTOCOLS : EXEC_PROTOCOLS;
      const protocol =
        offered.find((p) => supported.includes(p)) ??
        (offered.length === 0 && kind === "portforward" ? "" : undefined);
      if (protocol === undefined) {
        throw new SimulatorError(
          "SIM_WS_PROTOCOL_UNSUPPORTED",
          statusBody(
            400,
            "BadRequest",
            `none of the requested WebSocket subprotocols [${offered.join(", ")}] is supported for ${kind}; supported: ${supported.join(", ")}`,
          ),
          { offered },
        );
      }
      const podDef = this.deps.registry.byResource("", "v1", "pods")!;
      const pod = this.deps.store.get(podDef, ns, name);
      const q = query(url);
      let start: (ws: import("ws").WebSocket) => void;
      if (kind === "portforward") {
        const ports = q
          .all("ports")
          .flatMap((p) => p.split(","))
          .map((p) => Number(p.trim()));
        const spdy = protocol === "SPDY/3.1+portforward.k8s.io";
        if (!spdy && (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)))
          throw errors.badRequest('query parameter "ports" must list the ports to forward (1-65535)');
        start = spdy
          ? (ws) => {
              // SPDY frames tunnelled in binary WebSocket messages (kubectl 1.31+, PortForwardWebsockets)
              const session = new SpdySession(
                (b) => {
                  if (ws.readyState === ws.OPEN) ws.send(b);
                },
                spdyPortForwardHandler((port) => portTarget(pod, port)),
                () => ws.close(1000),
              );
              ws.on("message", (d: Buffer) => session.push(Buffer.from(d)));
              ws.on("close", () => session.close());
            }
          : (ws) =>
              servePortForward(
                ws,
                ports.map((port) => ({ port, target: portTarget(pod, port) })),
              );
      } else {
        const er: ExecRequest = {
          command: q.all("command"),
          container: resolveContainer(pod, q.one("container")),
          stdin: q.bool("stdin"),
          stdout: q.bool("stdout"),
          stderr: q.bool("stderr"),
          tty: q.bool("tty"),
        };
        if (!er.stdin && !er.stdout && !er.stderr)
          throw errors.badRequest("you must specify at least 1 of stdin, stdout, stderr");
        if (kind === "exec" && er.command.length === 0)
          throw errors.badRequest("you must specify at least one command for the container");
        start =
          kind === "exec"
            ? (ws) => serveExec(ws, protocol, pod, er, this.deps.clock)
            : (ws) =>
                serveAttach(ws, er, (fn) => this.deps.logs.follow(pod, er.container, (l) => fn(l.text)));
      }
      // `ws` rejects subprotocols that are not HTTP tokens ("SPDY/3.1+portforward.k8s.io" has a "/"), so it sees a
      // stand-in; the response still names the real one, which is what client-go checks
      req.headers["sec-websocket-protocol"] = "k8s-simulator";
      this.wss.options.handleProtocols = () => protocol || false;
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        record.status = 101;
        const untrack = this.track(() => ws.terminate());
        ws.on("close", untrack);
        start(ws);
      });
    } catch (e) {
      reject(e);
    }
  }
}

function recordBody(r: RequestRecord, raw: Buffer): void {
  if (raw.length === 0) return;
  const head = raw.subarray(0, 64 * 1024);
  const text = head.toString("utf8");
  r.body =
    Buffer.from(text, "utf8").equals(head) && !head.includes(0) ? text : `base64:${head.toString("base64")}`;
}

function stripType(o: JsonObject): JsonObject {
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest;
}

export function patchTypeOf(contentType: string): PatchType {
  switch (mediaTypeOf(contentType)) {
    case "application/json-patch+json":
      return "json";
    case "application/merge-patch+json":
      return "merge";
    case "application/strategic-merge-patch+json":
      return "strategic";
    case "application/apply-patch+yaml":
    case "application/apply-patch+cbor":
      return "apply";
    default:
      throw errors.unsupportedMediaType(contentType);
  }
}
