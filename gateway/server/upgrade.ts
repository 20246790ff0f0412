/**
 * Upgrades: exec/attach/port-forward over WebSocket. The client WebSocket is terminated here
 * and one upstream WebSocket opened with the gateway's credential; frames are relayed, with
 * the stdout/stderr channels of the channel.k8s.io protocols masked through one streaming
 * text masker per channel and the error channel's Status masked as JSON. Port-forward bytes
 * are opaque: relayed only where policy allows `create pods/portforward`, and counted.
 * SPDY upgrades are refused with a Status telling the user to use kubectl >= 1.30.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import WebSocket, { WebSocketServer } from "ws";
import type { Json } from "../../sdk/schema/config.ts";
import {
  asGatewayError,
  badGateway,
  badRequest,
  evidenceUnavailable,
  GatewayError,
  gatewayTimeout,
  toStatus,
} from "../errors.ts";
import { type AsciicastRecorder, createAsciicastRecorder } from "../masking/index.ts";
import type { MaskContext, TextStreamMasker } from "../ports.ts";
import { upstreamHeaders } from "../upstream/headers.ts";
import { Call } from "./call.ts";
import { mergeSummaries, type Runtime } from "./runtime.ts";

/** binary channel protocols (first byte of each message is the stream id) */
const CHANNEL_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
const PORTFORWARD_PROTOCOLS = [
  "SPDY/3.1+portforward.k8s.io",
  "v4.channel.k8s.io",
  "v4.portforward.k8s.io",
  "portforward.k8s.io",
];
const STREAM_SUBRESOURCES = new Set(["exec", "attach", "portforward"]);

/** the subprotocol the upstream chose, per upgrade request (read by the server's handleProtocols) */
const chosenProtocol = new WeakMap<IncomingMessage, string>();

/** The WebSocket server for client connections: it answers with the protocol the upstream chose. */
export function createWebSocketServer(): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (_offered, req) => chosenProtocol.get(req) ?? false,
  });
}

/** how long a held-back tail may wait before an idle flush (interactive shells, prompts) */
const IDLE_FLUSH_MS = 50;

const ERROR = 3;

/** what one side of a session may hold for a peer that does not read before the other side is paused */
const SESSION_HIGH_WATER = 1024 * 1024;

/**
 * Send a frame to one side, keeping backpressure: while `to` holds more than SESSION_HIGH_WATER
 * unsent (a client that does not read its stdout or forwarded port, a slow upstream) the side
 * the frames come from is paused, and resumed once `to` has drained below it.
 */
function sendPaced(to: WebSocket, from: WebSocket, data: Buffer, binary: boolean): void {
  to.send(data, { binary }, () => {
    if (from.isPaused && to.bufferedAmount < SESSION_HIGH_WATER) from.resume();
  });
  if (to.bufferedAmount >= SESSION_HIGH_WATER && !from.isPaused) from.pause();
}

/** a bearer token offered as a subprotocol (browsers' way to authenticate a WebSocket) */
const BEARER_PROTOCOL = "base64url.bearer.authorization.k8s.io.";

/** an offered subprotocol as a message may quote it (and the evidence store it): never a token */
function withoutToken(p: string): string {
  return p.toLowerCase().startsWith(BEARER_PROTOCOL) ? `${BEARER_PROTOCOL}<redacted>` : p;
}

function writeRaw(socket: Duplex, err: GatewayError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(toStatus(err));
  const text = `HTTP/1.1 ${err.httpStatus} ${err.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  socket.end(text);
}

/**
 * client-go falls back to SPDY whenever a WebSocket upgrade is refused, and then reports only the
 * SPDY error. The last WebSocket refusal per caller and URL is kept briefly so that the SPDY
 * refusal can carry the real reason (pod not found, container unknown, ...).
 */
const WS_FAILURE_TTL_MS = 30_000;
const recentWsFailures = new Map<string, { err: GatewayError; at: number }>();

function failureKey(call: Call): string {
  return `${call.identity?.subject ?? ""}\n${call.url}`;
}

export async function handleUpgrade(
  rt: Runtime,
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const call = new Call(rt, req);
  socket.on("error", () => {});
  const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
  const refuse = async (err: GatewayError) => {
    const ok = await call.finish(rt, err.httpStatus, err);
    if (upgrade === "websocket" && call.identity) {
      if (recentWsFailures.size > 1000) recentWsFailures.clear();
      recentWsFailures.set(failureKey(call), { err, at: rt.clock.now().getTime() });
    }
    writeRaw(socket, ok ? err : evidenceUnavailable("sink refused the record"));
  };
  try {
    await call.identify(rt, req);
    const request = call.request!;
    await call.decide(rt, undefined);
    if (upgrade.startsWith("spdy/")) {
      const key = failureKey(call);
      const prior = recentWsFailures.get(key);
      recentWsFailures.delete(key);
      if (prior && rt.clock.now().getTime() - prior.at < WS_FAILURE_TTL_MS)
        throw new GatewayError(
          prior.err.code,
          prior.err.httpStatus,
          prior.err.reason,
          `${prior.err.message} (the WebSocket upgrade failed; custos does not serve the SPDY fallback)`,
        );
      throw badRequest(
        "SPDY_UNSUPPORTED",
        "custos: SPDY streaming is not supported by the gateway; use kubectl 1.30 or later (exec, attach and port-forward over WebSocket) or a client speaking v5.channel.k8s.io",
      );
    }
    if (upgrade !== "websocket")
      throw badRequest("UPGRADE_UNSUPPORTED", `custos: upgrade "${upgrade}" is not supported; use WebSocket`);
    if (
      !request.isResourceRequest ||
      request.resource !== "pods" ||
      !STREAM_SUBRESOURCES.has(request.subresource)
    )
      throw badRequest(
        "UPGRADE_UNSUPPORTED",
        "custos: WebSocket upgrades are served for pods/exec, pods/attach and pods/portforward only",
      );
    await relay(rt, wss, call, req, socket, head);
  } catch (e) {
    await refuse(asGatewayError(e));
  }
}

async function relay(
  rt: Runtime,
  wss: WebSocketServer,
  call: Call,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const request = call.request!;
  const identity = call.identity!;
  const portforward = request.subresource === "portforward";
  const allowed = portforward ? PORTFORWARD_PROTOCOLS : CHANNEL_PROTOCOLS;
  const offered = String(req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const protocols = offered.filter((p) => allowed.includes(p));
  const problem = clientHandshakeProblem(req);
  if (problem !== undefined)
    throw badRequest(
      "WS_HANDSHAKE_INVALID",
      `custos: the WebSocket handshake is not valid (${problem}); the session was not started`,
    );
  if (protocols.length === 0)
    throw badRequest(
      "WS_PROTOCOL_UNSUPPORTED",
      `custos: none of the offered WebSocket subprotocols (${offered.map(withoutToken).join(", ") || "none"}) is supported; use one of ${allowed.join(", ")}`,
    );
  // the session is in the evidence before the upstream is asked to start it (opening the
  // upstream WebSocket already runs the command); if that cannot be written, it never starts
  if (!(await call.opened(rt))) throw evidenceUnavailable("sink refused the session-opened record");
  const headers = upstreamHeaders(req.headers, { impersonate: rt.impersonate, identity });
  const { headers: credHeaders, tls } = await rt.upstream.wsOptions();
  const target = rt.upstream.url(call.url, "wss");
  const upstream = new WebSocket(target, protocols, {
    headers: { ...(headers as Record<string, string>), ...credHeaders },
    ...tls,
    handshakeTimeout: rt.upstream.timeoutMs,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  await new Promise<void>((resolve, reject) => {
    upstream.once("open", () => resolve());
    upstream.once("unexpected-response", (_r, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const status = res.statusCode ?? 502;
        let message = `custos: the upstream refused the upgrade with HTTP ${status}`;
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json;
          const masked = call.snap.masker.maskJson(parsed, { request, identity }).value as {
            message?: unknown;
          };
          if (typeof masked?.message === "string") message = masked.message;
        } catch {
          // not a Status: keep the generic message (never pass an unread body through)
        }
        reject(
          new GatewayError(
            "UPSTREAM_REFUSED_UPGRADE",
            status,
            status === 404 ? "NotFound" : status === 403 ? "Forbidden" : "BadGateway",
            message,
          ),
        );
      });
      res.on("error", () => reject(badGateway("UPSTREAM_RESET", "custos: the upstream reset the upgrade")));
    });
    upstream.once("error", (e: Error & { code?: string }) => {
      if (/timed out/i.test(e.message)) reject(gatewayTimeout(rt.upstream.timeoutMs));
      else
        reject(
          badGateway(
            "UPSTREAM_UNREACHABLE",
            `custos: the Kubernetes API server could not be reached for the upgrade (${e.code ?? "connection error"}); retry later`,
          ),
        );
    });
  }).catch((e) => {
    upstream.terminate();
    throw e;
  });
  upstream.on("error", () => {});
  const chosen = upstream.protocol;
  chosenProtocol.set(req, chosen);
  const client = await new Promise<WebSocket>((resolve, reject) => {
    // ws answers a handshake it refuses itself and never calls back: the socket's close ends the wait
    const gone = () => reject(badRequest("WS_HANDSHAKE_INVALID", "custos: the WebSocket handshake failed"));
    socket.once("close", gone);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off("close", gone);
      resolve(ws);
    });
  }).catch((e) => {
    upstream.terminate();
    throw e;
  });
  client.on("error", () => {});
  const live = {
    destroy: () => {
      client.terminate();
      upstream.terminate();
    },
  };
  rt.live.add(live);
  // a reload does not end a session (that would kill a shell or a tunnel mid-work): it goes on
  // under the policy it was decided and masked by, and says so
  const reloaded = ({ oldPolicyHash, newPolicyHash }: { oldPolicyHash: string; newPolicyHash: string }) => {
    const decidedBy = call.outcome?.policyHash ?? oldPolicyHash;
    call.annotations["custos.dev/continued-under-policy"] = decidedBy;
    call.annotations["custos.dev/policy-reloaded-to"] = newPolicyHash;
    rt.logger.warn("session continues under the old policy after a reload", {
      auditID: call.auditID,
      policyHash: decidedBy,
      newPolicyHash,
    });
  };
  rt.reloads.add(reloaded);
  // a client that vanished without a FIN would hold the upstream session for ever: ping it, and
  // close both sides when neither a pong nor a frame came back within the next interval
  let heard = true;
  const alive = () => {
    heard = true;
  };
  client.on("pong", alive);
  const pinger = setInterval(() => {
    if (client.readyState !== WebSocket.OPEN) return;
    // not reading the client (paused for a slow upstream): its pong could not be seen
    if (client.isPaused) {
      heard = true;
      return;
    }
    if (!heard) {
      call.annotations["custos.dev/session-end"] = "client-unresponsive";
      rt.logger.warn("session client did not answer a ping; closing the session", { auditID: call.auditID });
      client.terminate();
      upstream.terminate();
      return;
    }
    heard = false;
    client.ping();
  }, rt.limits.sessionPingMs);

  const ctx: MaskContext = { request, identity };
  type ChannelMasker = {
    t: TextStreamMasker & { flush?: () => string };
    dec: StringDecoder;
    idle?: NodeJS.Timeout;
  };
  const maskers = new Map<number, ChannelMasker>();
  const channelMasker = (ch: number) => {
    let m = maskers.get(ch);
    if (!m) {
      m = { t: call.snap.masker.textStream(ctx), dec: new StringDecoder("utf8") };
      maskers.set(ch, m);
    }
    return m;
  };
  // Session recording (rule.recordSession): masked output and input as an asciicast artefact.
  let recorder: AsciicastRecorder | undefined;
  let recordingError: string | undefined;
  if (call.outcome?.recordSession && !portforward) {
    const started = rt.clock.now();
    const header: Parameters<typeof createAsciicastRecorder>[0] = {
      width: 80,
      height: 24,
      timestamp: Math.floor(started.getTime() / 1000),
      custos: {
        auditID: call.auditID,
        identity: {
          subject: identity.subject,
          groups: identity.groups,
          source: identity.source,
          claims: identity.claims,
        },
        // the recording is stored: the namespace, the pod's name and the command's arguments
        // (`grep <an SSN>`, `cat /data/<an SSN>`) are masked as the record's URI is (fail
        // closed: what cannot be masked is not kept)
        namespace: call.storedText(request.namespace, request.namespace, "[MASKED:namespace]"),
        pod: call.storedText(request.name, request.name, "[MASKED:name]"),
        command: (request.query.command ?? []).map((arg) => call.storedText(arg, arg, "[MASKED:argument]")),
        tty: (request.query.tty?.[0] ?? "") === "true",
        ruleId: call.outcome.ruleId,
        policyHash: call.outcome.policyHash,
      },
    };
    if (call.purpose !== undefined) header.custos.purpose = call.purpose;
    const container = request.query.container?.[0];
    if (container) header.custos.container = call.storedText(container, container, "[MASKED:name]");
    recorder = createAsciicastRecorder(header, {
      now: () => rt.clock.now().getTime(),
      maxBytes: rt.limits.maxRecordingBytes,
    });
  }
  const record = (fn: (r: AsciicastRecorder) => void) => {
    if (!recorder || recordingError) return;
    try {
      fn(recorder);
    } catch (e) {
      // recording is required by the rule: a recording failure closes the session
      recordingError = (e as { code?: string }).code ?? "error";
      client.terminate();
      upstream.terminate();
    }
  };
  const stdinMasker = recorder ? call.snap.masker.textStream(ctx) : undefined;
  let summary: ReturnType<typeof mergeSummaries> | undefined;
  const emitText = (ch: number, out: string) => {
    if (out === "") return;
    record((r) => r.output(out));
    sendClient(Buffer.concat([Buffer.from([ch]), Buffer.from(out)]));
  };
  let bytesIn = 0;
  let bytesOut = 0;
  const sendClient = (data: Buffer) => {
    bytesOut += data.length;
    if (client.readyState === WebSocket.OPEN) sendPaced(client, upstream, data, true);
  };

  upstream.on("message", (data: Buffer | Buffer[] | ArrayBuffer) => {
    try {
      fromUpstream(data);
    } catch (e) {
      // a masking failure closes the session (fail closed), never passes the frame through
      rt.logger.error("session masking failed; closing the session", {
        auditID: call.auditID,
        code: (e as { code?: string }).code ?? "error",
      });
      call.annotations["custos.dev/session-error"] = "mask-failed";
      client.terminate();
      upstream.terminate();
    }
  });
  const interactive = (request.query.tty?.[0] ?? "") === "true";
  const fromUpstream = (data: Buffer | Buffer[] | ArrayBuffer) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (portforward || buf.length === 0) {
      sendClient(buf);
      return;
    }
    const ch = buf[0]!;
    // stdout (1), stderr (2) and any other channel the upstream writes on (a conforming server
    // writes none: 0 is stdin, 4 resize, 255 close, all the client's) are text to mask, never
    // relayed unread
    if (ch !== ERROR) {
      const m = channelMasker(ch);
      const out = m.t.push(m.dec.write(buf.subarray(1)));
      emitText(ch, out);
      // an interactive (tty) session must not wait on a held-back tail: flush it after a short
      // idle gap. Non-tty streams keep holding it, so an identifier split across a pause is
      // still masked whole (the tail is flushed at the end of the stream).
      clearTimeout(m.idle);
      if (interactive && m.t.flush)
        m.idle = setTimeout(() => {
          try {
            emitText(ch, m.t.flush?.() ?? "");
          } catch {
            client.terminate();
            upstream.terminate();
          }
        }, IDLE_FLUSH_MS);
      return;
    }
    let text = buf.subarray(1).toString("utf8");
    try {
      const m = call.snap.masker.maskJson(JSON.parse(text) as Json, ctx);
      summary = mergeSummaries(summary, m.summary);
      text = JSON.stringify(m.value);
    } catch {
      const t = call.snap.masker.textStream(ctx);
      text = t.push(text) + t.end();
      summary = mergeSummaries(summary, t.summary());
    }
    sendClient(Buffer.concat([Buffer.from([ch]), Buffer.from(text)]));
  };
  client.on("message", (data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    heard = true;
    bytesIn += buf.length;
    if (recorder && buf.length > 0) {
      if (buf[0] === 0 && stdinMasker) {
        record((r) => {
          const text = stdinMasker.push(buf.subarray(1).toString("utf8"));
          if (text !== "") r.input(text);
        });
      } else if (buf[0] === 4) {
        try {
          const size = JSON.parse(buf.subarray(1).toString("utf8")) as { Width?: number; Height?: number };
          if (size.Width && size.Height) record((r) => r.resize(size.Width!, size.Height!));
        } catch {
          // not a resize message: ignore for the recording
        }
      }
    }
    if (upstream.readyState === WebSocket.OPEN) sendPaced(upstream, client, buf, isBinary);
  });

  // the upstream's close reason is text it wrote too: masked, then cut to the 123 bytes a close frame holds
  const closeReason = (reason: Buffer): string => {
    if (reason.length === 0) return "";
    let chars: string[];
    try {
      const t = call.snap.masker.textStream(ctx);
      chars = Array.from(t.push(reason.toString("utf8")) + t.end());
    } catch {
      return "";
    }
    while (Buffer.byteLength(chars.join("")) > 123) chars.pop();
    return chars.join("");
  };
  await new Promise<void>((resolve) => {
    let closed = false;
    const end = (code: number, reason: Buffer, who: "upstream" | "client") => {
      if (closed) return;
      closed = true;
      // a side paused for backpressure must still read the other's close handshake
      upstream.resume();
      client.resume();
      if (who === "upstream") {
        // flush what the text maskers held back, before the close frame
        for (const [ch, m] of maskers) {
          clearTimeout(m.idle);
          try {
            emitText(ch, m.t.push(m.dec.end()) + m.t.end());
          } catch {
            call.annotations["custos.dev/session-error"] = "mask-failed";
          }
        }
        if (client.readyState === WebSocket.OPEN) client.close(validClose(code), closeReason(reason));
      } else if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING)
        upstream.close(validClose(code), reason);
      resolve();
    };
    upstream.on("close", (code, reason) => end(code, reason, "upstream"));
    client.on("close", (code, reason) => end(code, reason, "client"));
  });
  rt.live.delete(live);
  rt.reloads.delete(reloaded);
  clearInterval(pinger);
  for (const m of maskers.values()) {
    clearTimeout(m.idle);
    summary = mergeSummaries(summary, m.t.summary());
  }
  if (recorder) {
    if (!recordingError) {
      try {
        await recorder.finish(rt.sink, `${call.auditID}.cast`);
        call.annotations["custos.dev/session-recording"] = `${call.auditID}.cast`;
      } catch (e) {
        recordingError = (e as { code?: string }).code ?? "error";
      }
    }
    if (recordingError) call.annotations["custos.dev/session-recording-error"] = recordingError;
  }
  if (summary) call.masking = summary;
  call.bytes = { in: bytesIn, out: bytesOut };
  call.annotations["custos.dev/websocket-protocol"] = chosen;
  // relayed as they came, by design (allowed by policy, counted): no masker can read a TCP stream
  if (portforward) call.annotations["custos.dev/unmasked"] = "port-forward bytes are opaque";
  if (!(await call.finish(rt, 101))) {
    rt.logger.error("session evidence could not be written after the session ended", {
      auditID: call.auditID,
    });
    client.terminate();
  }
}

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
const WS_TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const WS_PROTOCOLS = new RegExp(`^${WS_TOKEN}(?:[ \\t]*,[ \\t]*${WS_TOKEN})*$`);

/**
 * What `ws` would refuse in the client's handshake (RFC 6455 §4.2.1: GET, a 16-byte key,
 * version 13 or 8, a list of distinct subprotocol tokens), checked before the upstream session
 * is opened — opening it already runs the command.
 */
export function clientHandshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== "GET") return "the method must be GET";
  const key = req.headers["sec-websocket-key"];
  if (typeof key !== "string" || !WS_KEY.test(key)) return "missing or invalid Sec-WebSocket-Key";
  const version = Number(req.headers["sec-websocket-version"]);
  if (version !== 13 && version !== 8) return "Sec-WebSocket-Version must be 13";
  const header = req.headers["sec-websocket-protocol"];
  if (header !== undefined) {
    const list = String(header)
      .split(",")
      .map((p) => p.trim());
    if (!WS_PROTOCOLS.test(String(header)) || new Set(list).size !== list.length)
      return "invalid Sec-WebSocket-Protocol list";
  }
  return undefined;
}

function validClose(code: number): number {
  return code >= 1000 && code <= 4999 && code !== 1005 && code !== 1006 && code !== 1015 ? code : 1000;
}
