/**
 * The Node HTTP adapter for plain (non-upgrade) requests: runs a call through identity,
 * request info, body, decision, approval, upstream and masking, and writes exactly one
 * evidence record. Fails closed: any error becomes a Kubernetes Status, and a call whose
 * record cannot be made durable is refused with 503.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { Json } from "../../sdk/schema/config.ts";
import {
  asGatewayError,
  badGateway,
  badRequest,
  evidenceUnavailable,
  GatewayError,
  statusBody,
  toStatus,
} from "../errors.ts";
import { mintLoginToken } from "../identity/login-token.ts";
import type { IncludeObject, MaskContext, Masker } from "../ports.ts";
import { answerSelfReview, readSelfReview, selfReviewKind } from "../selfreview/index.ts";
import { downstreamHeaders, upstreamHeaders } from "../upstream/headers.ts";
import type { UpstreamResponse } from "../upstream/index.ts";
import { decodeBody, forwardBody, mediaType, PROTOBUF_TYPE, readBody, sha256 } from "./body.ts";
import { Call } from "./call.ts";
import { CallCancel, type CallSignal } from "./cancel.ts";
import {
  classify,
  decoded,
  maskBuffered,
  maskedHeaders,
  readAll,
  relayText,
  relayWatch,
  type StreamResult,
} from "./respond.ts";
import type { Runtime } from "./runtime.ts";

export const LOGIN_PATH = "/custos/v1/login";

/** how long a watch may wait for the upstream's response headers before the gateway starts the stream */
export const WATCH_EARLY_HEADERS_MS = 300;

function statusBodyFor(code: number): Json {
  return statusBody(
    code,
    "InternalError",
    `the upstream refused the watch with HTTP ${code}`,
  ) as unknown as Json;
}

function send(
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  body: Buffer | string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const b = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, "content-length": String(b.length) });
  res.end(b);
}

function sendStatus(res: ServerResponse, err: GatewayError, extra: OutgoingHttpHeaders = {}): void {
  send(
    res,
    err.httpStatus,
    { "content-type": "application/json", "cache-control": "no-store", ...err.headers, ...extra },
    JSON.stringify(toStatus(err)),
  );
}

/** Refuse with a Status, after recording it. */
async function refuse(
  rt: Runtime,
  call: Call,
  res: ServerResponse,
  err: GatewayError,
  closeConnection = false,
): Promise<void> {
  // HTTP/2 has no Connection header (the stream is reset instead, see handleHttp)
  const extra: OutgoingHttpHeaders = closeConnection && !isHttp2(res) ? { connection: "close" } : {};
  if (!(await call.finish(rt, err.httpStatus, err))) {
    sendStatus(res, evidenceUnavailable("sink refused the record"), extra);
    return;
  }
  sendStatus(res, err, extra);
}

function isHttp2(res: ServerResponse): boolean {
  return (res.req as IncomingMessage | undefined)?.httpVersionMajor === 2;
}

/** an Accept header that asks for a server-side Table (`application/json;as=Table;...`) */
function asksForTable(accept: string | undefined): boolean {
  return (accept ?? "").split(",").some((range) =>
    range
      .split(";")
      .slice(1)
      .some((p) => p.trim().toLowerCase() === "as=table"),
  );
}

/**
 * A Table's rows carry only their objects' metadata by default, so a column that prints a
 * masked field (a CRD's "Patient" column showing `.spec.patientName`) could be matched by
 * neither its name nor its value. When a field mask can apply, the upstream is asked for the
 * whole objects (`includeObject=Object`, replacing the client's value) and the masker gives each
 * row what the client asked for (MaskContext.tableRows). Any other request goes as it came.
 */
export function tableRowsRequest(
  url: string,
  accept: string | undefined,
  method: string,
  masker: Masker,
  ctx: MaskContext,
): { url: string; tableRows?: IncludeObject } {
  const r = ctx.request;
  if (
    method !== "GET" ||
    !r.isResourceRequest ||
    !(r.verb === "get" || r.verb === "list" || r.verb === "watch") ||
    !asksForTable(accept) ||
    masker.fieldMasksMayApply?.(ctx) !== true
  )
    return { url };
  const asked = r.query.includeObject?.[0] ?? "Metadata";
  // (Object: nothing to change; an unknown value: the upstream refuses it as it would)
  if (asked !== "None" && asked !== "Metadata") return { url };
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const kept = (q < 0 ? "" : url.slice(q + 1)).split("&").filter((part) => {
    if (part === "") return false;
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    try {
      return decodeURIComponent(k.replace(/\+/g, " ")) !== "includeObject";
    } catch {
      return true;
    }
  });
  kept.push("includeObject=Object");
  return { url: `${path}?${kept.join("&")}`, tableRows: asked };
}

/** HTTP/2 pseudo-headers (`:path`, `:authority`, ...) are never forwarded as headers */
function plainHeaders(h: IncomingMessage["headers"]): IncomingMessage["headers"] {
  const out: IncomingMessage["headers"] = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) out[k] = v;
  return out;
}

export async function handleHttp(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const call = new Call(rt, req);
  const cancel = new CallCancel();
  // the client went away before its answer was complete: stop what is in flight for it
  res.on("close", () => {
    if (!res.writableFinished) cancel.abort();
  });
  try {
    await serve(rt, call, req, res, cancel);
  } catch (e) {
    const err = asGatewayError(e);
    if (err.httpStatus >= 500 && err.code === "INTERNAL")
      rt.logger.error("internal error", {
        auditID: call.auditID,
        ...call.loggedError(e),
      });
    if (res.headersSent) {
      await call.finish(rt, res.statusCode, err);
      // a watch whose headers went out early ends with an ERROR event, like kube-apiserver's
      if (call.request?.verb === "watch" && !res.writableEnded) {
        res.end(`${JSON.stringify({ type: "ERROR", object: toStatus(err) })}\n`);
        return;
      }
      res.destroy();
      return;
    }
    // 413: the rest of the body is not read; the connection closes once the Status is written
    if (err.httpStatus === 413) res.on("finish", () => req.destroy());
    await refuse(rt, call, res, err, err.httpStatus === 413);
  }
}

async function serve(
  rt: Runtime,
  call: Call,
  req: IncomingMessage,
  res: ServerResponse,
  signal: CallSignal,
): Promise<void> {
  if (call.url.split("?")[0] === LOGIN_PATH) return login(rt, call, req, res);
  await call.identify(rt, req);
  const request = call.request!;
  const identity = call.identity!;

  // Body: read (bounded), hash, decode for the decision.
  let raw: Buffer = Buffer.alloc(0);
  let body: Json | undefined;
  const method = call.method;
  const hasBody = method === "POST" || method === "PUT" || method === "PATCH" || method === "DELETE";
  const ct = typeof req.headers["content-type"] === "string" ? req.headers["content-type"] : undefined;
  if (hasBody) {
    raw = await readBody(req, rt.limits.maxBodyBytes);
    if (raw.length > 0) call.bodySha256 = sha256(raw);
  }
  const review = selfReviewKind(request);
  const isProtobuf = mediaType(ct) === PROTOBUF_TYPE;
  if (hasBody && !(review && isProtobuf)) body = decodeBody(raw, ct);
  // a protobuf object goes upstream as the JSON the decision read, never as unread bytes
  const forward = review ? { bytes: raw } : forwardBody(raw, ct, body);
  if (forward.contentType) call.annotations["custos.dev/request-encoding"] = "protobuf-as-json";

  if (review) {
    const parsed = readSelfReview(review, raw, body, isProtobuf);
    const who: { identity: typeof identity; purpose?: string } = { identity };
    if (call.purpose !== undefined) who.purpose = call.purpose;
    const answer = answerSelfReview(parsed, who, call.snap.config, rt.engine.evaluate);
    call.annotations["custos.dev/self-review"] = review;
    if (answer.decision) call.annotations["custos.dev/self-review-rule"] = answer.decision.ruleId;
    call.outcome = {
      decision: "allow",
      effective: "allow",
      enforcement: "enforce",
      ruleId: "self-review",
      reason: "answered by the gateway from custos policy (never forwarded upstream)",
      policyHash: call.snap.config.policyHash,
      dryRunMatches: [],
      namespaceClass: "cluster",
    };
    const out = Buffer.from(JSON.stringify(answer.body));
    if (!(await call.finish(rt, 201))) throw evidenceUnavailable("sink refused the record");
    send(res, 201, { "content-type": "application/json" }, out);
    return;
  }

  await call.decide(rt, body, signal);
  // a call that changes the cluster is in the evidence before the API server sees it
  if (method !== "GET" && method !== "HEAD" && !(await call.writeAhead(rt)))
    throw evidenceUnavailable("sink refused the request-received record");

  // Upstream.
  const headers = upstreamHeaders(plainHeaders(req.headers), {
    impersonate: rt.impersonate,
    identity,
    ...(hasBody ? { contentLength: forward.bytes.length } : {}),
  });
  if (forward.contentType) headers["content-type"] = forward.contentType;
  const ctx: MaskContext = { request, identity };
  const masker = call.snap.masker;
  const table = tableRowsRequest(call.url, req.headers.accept, method, masker, ctx);
  if (table.tableRows !== undefined) ctx.tableRows = table.tableRows;
  // A watch whose upstream holds its response headers back until the first event would keep
  // client-go waiting (it can only drop a watch once the response has started): after a short
  // grace the gateway starts the stream itself; a later upstream error becomes an ERROR event.
  const watching = request.verb === "watch" && method === "GET";
  const early = watching
    ? setTimeout(() => {
        if (res.headersSent || res.writableEnded) return;
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache, private" });
        res.flushHeaders();
      }, WATCH_EARLY_HEADERS_MS)
    : undefined;
  // plain GETs (objects, lists) go through the lean client; watches, log streams and bodies through https.request
  const logs = request.subresource === "log" && request.resource === "pods";
  const lean = method === "GET" && !watching && !logs;
  let up: UpstreamResponse;
  try {
    const pending = lean
      ? rt.upstream.get(table.url, headers, signal)
      : rt.upstream.request(
          method,
          table.url,
          headers,
          hasBody ? forward.bytes : undefined,
          signal,
          watching || logs,
        );
    // the request is on its way (the lean client writes it synchronously): build the record's
    // known parts while the upstream works
    call.prepare();
    up = await pending;
  } finally {
    clearTimeout(early);
  }
  if (watching && res.headersSent && up.statusCode !== 200) {
    // the stream already started: the upstream's refusal goes to the client as an ERROR event
    const status = up.statusCode ?? 502;
    const buf = await readAll(decoded(up), 1024 * 1024, rt.upstream.timeoutMs);
    let object: Json = statusBodyFor(status);
    try {
      object = masker.maskJson(JSON.parse(buf.toString("utf8")) as Json, ctx).value;
    } catch {
      // not a readable Status: keep the generic one (never pass an unread body through)
    }
    const err = new GatewayError(
      "UPSTREAM_WATCH_REFUSED",
      status,
      "BadGateway",
      `custos: the upstream refused the watch with HTTP ${status}`,
    );
    if (!(await call.finish(rt, status, err))) {
      res.destroy();
      return;
    }
    res.end(`${JSON.stringify({ type: "ERROR", object })}\n`);
    return;
  }
  rt.live.add(up);
  res.on("close", () => rt.live.delete(up));
  const status = up.statusCode ?? 502;
  const isStream =
    status === 200 &&
    method !== "HEAD" &&
    (request.verb === "watch" || (request.subresource === "log" && request.resource === "pods"));

  if (isStream) {
    const ctUp = String(up.headers["content-type"] ?? "");
    const src = decoded(up);
    const watch = request.verb === "watch";
    if (watch && (mediaType(ctUp) !== "application/json" || classify(ctUp) !== "json")) {
      up.resume();
      throw badGateway(
        "MASK_UNREADABLE_ENCODING",
        `custos: the watch stream's content type "${ctUp}" cannot be masked; it was refused`,
      );
    }
    if (!watch && ctUp !== "" && classify(ctUp) !== "text") {
      up.resume();
      throw badGateway(
        "MASK_UNREADABLE_ENCODING",
        `custos: the log stream's content type "${ctUp}" cannot be masked; it was refused`,
      );
    }
    // the stream is in the evidence before its first event or line goes out (a stream's own
    // record is written when it ends, and a gateway that stops during it would leave none)
    if (!(await call.opened(rt, status))) {
      up.destroy();
      throw evidenceUnavailable("sink refused the stream-opened record");
    }
    if (!res.headersSent) {
      const h: OutgoingHttpHeaders = {
        ...maskedHeaders(downstreamHeaders(up.headers), masker, ctx),
        "content-type": ctUp || "text/plain",
      };
      res.writeHead(status, h);
      res.flushHeaders();
    }
    await new Promise<void>((resolve) => {
      // a reload that changes the policy ends the stream: the client re-opens it under the new
      // policy (client-go re-watches; `logs -f` ends), so a mask added to stop a leak reaches it
      let stop = () => {};
      const reloaded = ({ newPolicyHash }: { newPolicyHash: string }) => {
        call.annotations["custos.dev/ended-by-reload"] = newPolicyHash;
        stop();
      };
      rt.reloads.add(reloaded);
      const done = async (r: StreamResult) => {
        rt.reloads.delete(reloaded);
        if (r.summary) call.masking = r.summary;
        call.bytes = { in: raw.length, out: r.bytesOut };
        call.annotations["custos.dev/stream-end"] = r.end;
        const ok = await call.finish(rt, status, r.error);
        // fail closed: a stream whose record failed ends abnormally, never cleanly; a failed
        // watch too, once its ERROR event is out (r.flushed, capped)
        if (!ok) res.destroy();
        else if (r.end === "mask-error" || r.end === "upstream-error") {
          if (r.flushed) await r.flushed;
          res.destroy();
        } else res.end();
        resolve();
      };
      stop = watch
        ? relayWatch(src, res, masker, ctx, rt.limits.maxEventBytes, (r) => void done(r))
        : relayText(src, res, masker, ctx, (r) => void done(r));
    });
    return;
  }

  const noBody = method === "HEAD" || status === 204 || status === 304;
  // Nothing in the policy can touch this response: record it, then stream the (decompressed,
  // readable) body through instead of buffering it. Unreadable media types are still refused.
  const upCt = typeof up.headers["content-type"] === "string" ? up.headers["content-type"] : undefined;
  if (!noBody && masker.appliesTo?.(ctx) === false && classify(upCt) !== "unreadable") {
    const src = decoded(up);
    if (!(await call.finish(rt, status))) {
      up.destroy();
      throw evidenceUnavailable("sink refused the record");
    }
    // (no mask nor detector applies to this request: the headers go as they came)
    const h = downstreamHeaders(up.headers);
    const identityEncoded = String(up.headers["content-encoding"] ?? "identity").toLowerCase() === "identity";
    if (identityEncoded && up.headers["content-length"]) h["content-length"] = up.headers["content-length"];
    res.writeHead(status, h);
    relayRaw(src, res, rt.upstream.timeoutMs);
    return;
  }
  const buf = noBody
    ? Buffer.alloc(0)
    : await readAll(decoded(up), rt.limits.maxResponseBytes, rt.upstream.timeoutMs);
  if (noBody) up.resume();
  const masked = maskBuffered({ status, headers: up.headers, body: buf }, masker, ctx);
  if (masked.summary) call.masking = masked.summary;
  if (!(await call.finish(rt, status))) throw evidenceUnavailable("sink refused the record");
  send(res, status, masked.headers, masked.body);
}

/** the unmasked relay writes at least every this many bytes (besides once per event-loop turn) */
const RELAY_FLUSH_BYTES = 64 * 1024;

/**
 * Relay a body no mask can touch. The chunks read from the upstream in one turn of the event
 * loop go out as one write (fewer TLS records and syscalls than a pipe's write per 16 KiB
 * chunk); a body that is complete by then is sent with the end of the response (one write with
 * the headers). Backpressure is kept (the upstream is paused while the client's socket is full);
 * an upstream that stalls mid-body or fails ends the response abnormally, never cleanly.
 */
export function relayRaw(src: Readable, res: ServerResponse, idleMs: number): void {
  // failed (reset, malformed, shut down) before it was read: what was buffered is gone, end abnormally
  if (src.destroyed) {
    res.destroy();
    return;
  }
  // the whole body is already here (an upstream response parsed to its end while the record was
  // written): send it with the end of the response now, without waiting for another turn
  if ((src as Partial<UpstreamResponse>).complete === true && src.readableFlowing !== true) {
    const chunks: Buffer[] = [];
    let size = 0;
    for (let c = src.read() as Buffer | null; c !== null; c = src.read() as Buffer | null) {
      chunks.push(c);
      size += c.length;
    }
    if (chunks.length === 0) res.end();
    else res.end(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    return;
  }
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let scheduled = false;
  let ended = false;
  const idle = setTimeout(() => src.destroy(), idleMs);
  const flush = () => {
    scheduled = false;
    if (res.destroyed || res.writableEnded) return;
    const chunks = pending;
    const size = pendingBytes;
    pending = [];
    pendingBytes = 0;
    const data =
      chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    if (ended) {
      if (data) res.end(data);
      else res.end();
      return;
    }
    if (data && !res.write(data) && !src.isPaused()) {
      src.pause();
      res.once("drain", () => src.resume());
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  src.on("data", (c: Buffer) => {
    idle.refresh();
    pending.push(c);
    pendingBytes += c.length;
    // a large body keeps moving while it is read (and at most this much waits in memory)
    if (pendingBytes >= RELAY_FLUSH_BYTES) flush();
    else schedule();
  });
  src.on("end", () => {
    clearTimeout(idle);
    ended = true;
    schedule();
  });
  src.on("close", () => {
    clearTimeout(idle);
    if (!src.readableEnded) res.destroy();
  });
  src.on("error", () => res.destroy());
  res.on("close", () => {
    if (!src.readableEnded) src.destroy();
  });
}

/**
 * POST /custos/v1/login {"purpose": "...", "ttlSeconds": 3600}: exchange the caller's own
 * token for a short-lived purpose-bound custos token. A login token cannot mint another.
 */
async function login(rt: Runtime, call: Call, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (call.method !== "POST") throw badRequest("LOGIN_METHOD", `custos: ${LOGIN_PATH} takes POST`);
  if (!rt.loginKey)
    throw badRequest(
      "LOGIN_DISABLED",
      "custos: login tokens are not enabled on this gateway (no login key configured)",
    );
  const auth = await rt.auth.authenticate(req.headers.authorization, rt.clock.now());
  call.identity = auth.identity;
  if (auth.identity.source === "login")
    throw badRequest(
      "LOGIN_FROM_LOGIN",
      "custos: a login token cannot mint another; log in with your own token (token file, OIDC)",
    );
  const raw = await readBody(req, 64 * 1024);
  const input = (decodeBody(raw, "application/json") ?? {}) as { purpose?: unknown; ttlSeconds?: unknown };
  const purpose = typeof input.purpose === "string" ? input.purpose : "";
  if (!Object.hasOwn(call.snap.config.purposes, purpose)) {
    const known = Object.keys(call.snap.config.purposes);
    throw badRequest(
      "PURPOSE_UNKNOWN",
      `custos: unknown purpose "${purpose}"; declare one of: ${known.length > 0 ? known.join(", ") : "(none defined)"}`,
    );
  }
  call.purpose = purpose;
  const ttl = typeof input.ttlSeconds === "number" ? input.ttlSeconds : 3600;
  let minted: Awaited<ReturnType<typeof mintLoginToken>>;
  try {
    minted = await mintLoginToken({
      key: rt.loginKey,
      identity: auth.identity,
      purpose,
      ttlSeconds: ttl,
      now: rt.clock.now(),
    });
  } catch (e) {
    throw badRequest("LOGIN_INVALID", `custos: ${(e as Error).message}`);
  }
  call.annotations["custos.dev/login-token-id"] = minted.tokenId;
  call.outcome = {
    decision: "allow",
    effective: "allow",
    enforcement: "enforce",
    ruleId: "login",
    reason: "purpose-bound login token minted",
    policyHash: call.snap.config.policyHash,
    dryRunMatches: [],
    namespaceClass: "cluster",
  };
  if (!(await call.finish(rt, 200))) throw evidenceUnavailable("sink refused the record");
  send(
    res,
    200,
    { "content-type": "application/json", "cache-control": "no-store" },
    JSON.stringify({ token: minted.token, expiresAt: minted.expiresAt.toISOString(), purpose }),
  );
}
