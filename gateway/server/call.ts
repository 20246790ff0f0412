/**
 * One call through the stages shared by plain HTTP and upgrades: identity (+ purpose) ->
 * request info -> decision -> approval. And the one evidence record each call produces.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Decision, Enforcement, Json } from "../../sdk/schema/config.ts";
import { approvalStage } from "../approval/stage.ts";
import { DEFAULT_DENY_RULE_ID, type DecisionOutcome } from "../decision/index.ts";
import { badRequest, forbidden, GatewayError } from "../errors.ts";
import { callRecord, type RecordStatics, recordStatics } from "../evidence/record.ts";
import { splitPurposePrefix } from "../identity/index.ts";
import type { DecisionResult, EvidenceRecord, Identity, MaskSummary, RequestInfo } from "../ports.ts";
import { nonResourceInfo } from "../requestinfo/index.ts";
import type { CallSignal } from "./cancel.ts";
import type { Runtime, Snapshot } from "./runtime.ts";

export const PURPOSE_HEADER = "custos-purpose";

interface PreparedRecord {
  identity?: Identity;
  request?: RequestInfo;
  statics: RecordStatics;
  uri: string;
}

/** a path segment that names an API version (v1, v1beta1, v2alpha3): structure, never data */
const API_VERSION = /^v\d+(?:(?:alpha|beta)\d+)?$/;

export class Call {
  readonly auditID = randomUUID();
  readonly received: Date;
  readonly method: string;
  /** the URL as received (with any /purpose/<id> prefix) */
  readonly requestURI: string;
  /** the URL without the purpose prefix: what is parsed and forwarded */
  readonly url: string;
  readonly pathPurpose: string | undefined;
  readonly sourceIP: string;
  readonly userAgent: string | undefined;
  readonly snap: Snapshot;
  identity?: Identity;
  purpose?: string;
  request?: RequestInfo;
  outcome?: DecisionOutcome;
  approval?: NonNullable<EvidenceRecord["custos"]["approval"]>;
  masking?: MaskSummary;
  bodySha256?: string;
  bytes?: { in: number; out: number };
  annotations: Record<string, string> = {};
  /** set when the record was written (exactly one per call) */
  recorded = false;
  /** the record's parts known before the upstream answers, for this identity and request */
  #pre: PreparedRecord | undefined;

  constructor(rt: Runtime, req: IncomingMessage) {
    this.received = rt.clock.now();
    this.snap = rt.snapshot();
    this.method = (req.method ?? "GET").toUpperCase();
    this.requestURI = req.url ?? "/";
    const { purpose, url } = splitPurposePrefix(this.requestURI);
    this.url = url;
    this.pathPurpose = purpose;
    this.sourceIP = req.socket.remoteAddress ?? "";
    const ua = req.headers["user-agent"];
    this.userAgent = typeof ua === "string" ? ua : undefined;
  }

  /** identity, purpose and request info; throws GatewayError (401, 400) */
  async identify(rt: Runtime, req: IncomingMessage): Promise<void> {
    const auth = await rt.auth.authenticate(req.headers.authorization, rt.clock.now());
    this.identity = auth.identity;
    const header = req.headers[PURPOSE_HEADER];
    const headerPurpose = typeof header === "string" && header.trim() !== "" ? header.trim() : undefined;
    const given = [auth.tokenPurpose, this.pathPurpose, headerPurpose].filter(
      (p): p is string => p !== undefined,
    );
    const distinct = [...new Set(given)];
    if (distinct.length > 1)
      throw badRequest(
        "PURPOSE_CONFLICT",
        `custos: conflicting purposes ${distinct.map((p) => `"${p}"`).join(", ")} (login token, server URL path, Custos-Purpose header); declare one purpose`,
        { purposes: distinct },
      );
    const purpose = distinct[0];
    if (purpose !== undefined) {
      if (!Object.hasOwn(this.snap.config.purposes, purpose)) {
        const known = Object.keys(this.snap.config.purposes);
        throw badRequest(
          "PURPOSE_UNKNOWN",
          `custos: unknown purpose "${purpose}"; declare one of the policy's purposes: ${known.length > 0 ? known.join(", ") : "(none defined)"}`,
          { purpose },
        );
      }
      this.purpose = purpose;
    }
    try {
      this.request = rt.engine.parseRequestInfo(this.method, this.url);
    } catch (e) {
      // requestinfo's typed path errors (REQUEST_PATH_INVALID): 400, never forwarded
      const code = (e as { code?: unknown }).code;
      if (typeof code === "string" && e instanceof Error)
        throw badRequest(code, `custos: ${e.message}`, {
          problem: (e as { data?: { problem?: string } }).data?.problem ?? "",
        });
      throw e;
    }
  }

  /** decision (+ approval); throws a 403 GatewayError when the call must not proceed */
  async decide(rt: Runtime, body: Json | undefined, signal?: CallSignal): Promise<void> {
    if (!this.identity || !this.request)
      throw new GatewayError("INTERNAL", 500, "InternalError", "custos: decide before identify");
    const input: Parameters<Runtime["engine"]["evaluate"]>[1] = {
      identity: this.identity,
      request: this.request,
    };
    if (this.purpose !== undefined) input.purpose = this.purpose;
    if (body !== undefined) input.body = body;
    const outcome = rt.engine.evaluate(this.snap.config, input);
    this.outcome = outcome;
    if (outcome.effective === "allow") return;
    if (outcome.effective === "deny") throw denial(outcome);
    // requireApproval
    const requirement =
      outcome.approval ?? this.snap.config.rules.find((r) => r.id === outcome.ruleId)?.approval;
    if (!requirement)
      throw denial({
        ...outcome,
        reason: `${outcome.reason} (approval required, but the rule names no approval requirement)`,
      });
    const op: Parameters<typeof approvalStage>[1] = {
      identity: this.identity,
      request: this.approvalRequest(this.request),
      bodySha256: this.bodySha256 ?? "",
      ruleId: outcome.ruleId,
      policyHash: outcome.policyHash,
    };
    if (this.purpose !== undefined) op.purpose = this.purpose;
    if (body !== undefined)
      op.maskedBody = this.snap.masker.maskJson(body, {
        request: this.request,
        identity: this.identity,
      }).value;
    const deps: Parameters<typeof approvalStage>[0] = {
      service: rt.approval,
      sleep: rt.sleep,
      now: () => rt.clock.now().getTime(),
      pollMs: rt.approvalPollMs,
    };
    if (signal) deps.signal = signal;
    const result = await approvalStage(deps, op, requirement);
    if (result.approval) this.approval = result.approval;
    if (!result.ok) {
      // a refusal (denied, expired, service down) is what the gateway did; a hold (429) stays pending
      if (result.error.httpStatus !== 429) this.outcome = { ...outcome, effective: "deny" };
      throw result.error;
    }
    // a grant was used: the call goes ahead, and the record says so next to the rule's decision
    this.outcome = { ...outcome, effective: "allow" };
  }

  /**
   * Build what the record needs that is already known (masked URI, user, objectRef, job run,
   * received timestamp) — called while the upstream works on the request, so that only the
   * status and completion are left once it answers. Writes nothing: the record is still
   * written (and must be accepted) before any byte of the answer.
   */
  prepare(): void {
    const p: PreparedRecord = {
      statics: recordStatics({
        identity: this.identity,
        request: this.recordedRequest(),
        received: this.received,
      }),
      uri: this.maskedURI(),
    };
    if (this.identity) p.identity = this.identity;
    if (this.request) p.request = this.request;
    this.#pre = p;
  }

  record(rt: Runtime, code: number, err?: GatewayError): EvidenceRecord {
    const o = this.outcome;
    const pre = preDecision(err);
    // prepared parts are used only if identity and request are still the ones they were built from
    const p =
      this.#pre && this.#pre.identity === this.identity && this.#pre.request === this.request
        ? this.#pre
        : undefined;
    // the record's texts name the object as its objectRef does (a default-deny reason quotes it)
    const request = this.recordedRequest();
    const raw = this.request?.name;
    const named = (text: string): string =>
      raw && request && request.name !== raw ? text.replaceAll(raw, request.name) : text;
    // ... and quote what the client sent (a path, a namespace, a purpose) masked as the URI is;
    // a matched rule's reason is the policy's own text
    const reason = named(o?.reason ?? pre.reason);
    const facts: Parameters<typeof callRecord>[0] = {
      auditID: this.auditID,
      requestURI: p ? p.uri : this.maskedURI(),
      method: this.method,
      sourceIP: this.sourceIP,
      received: this.received,
      completed: rt.clock.now(),
      code,
      decision: o?.decision ?? pre.decision,
      effective: o?.effective ?? pre.decision,
      enforcement: o?.enforcement ?? pre.enforcement,
      ruleId: o?.ruleId ?? pre.ruleId,
      reason: o?.ruleId === DEFAULT_DENY_RULE_ID ? this.storedText(reason) : reason,
      policyHash: o?.policyHash ?? this.snap.config.policyHash,
    };
    // a client names itself freely: what it says is masked as the URI is
    if (this.userAgent) facts.userAgent = this.storedText(this.userAgent);
    if (this.identity) facts.identity = this.identity;
    if (request) facts.request = request;
    if (this.purpose !== undefined) facts.purpose = this.purpose;
    if (err) {
      facts.statusReason = err.reason;
      facts.message = this.storedText(named(err.message));
    }
    if (this.approval) facts.approval = this.approval;
    if (this.masking) facts.masking = this.masking;
    if (this.bodySha256) facts.bodySha256 = this.bodySha256;
    if (this.bytes) facts.bytes = this.bytes;
    const ann = { ...this.annotations };
    if (o?.dryRunMatches && o.dryRunMatches.length > 0)
      ann["custos.dev/dry-run-matches"] = o.dryRunMatches.join(",");
    if (err) ann["custos.dev/error-code"] = err.code;
    if (Object.keys(ann).length > 0) facts.annotations = ann;
    return callRecord(facts, p?.statics);
  }

  /**
   * The request URI for evidence: query strings carry exec commands, selectors and names, so
   * the decoded URI goes through the masker; when nothing fires, the URI is kept as received.
   */
  maskedURI(): string {
    return this.storedText(this.requestURI.replace(/\+/g, " "), this.requestURI, "[MASKED:request-uri]");
  }

  /**
   * A text custos stores that can quote what the client sent (a refusal's message quotes the
   * path or the purpose it refused): percent-decoded where it can be, then masked as a path is;
   * when nothing fires, kept as it was (`original`). Also for calls whose request was never
   * parsed (unauthenticated, a refused path): they are stored too.
   */
  storedText(text: string, original = text, failed = "[MASKED]"): string {
    let decoded: string;
    try {
      decoded = decodeURIComponent(text);
    } catch {
      // malformed escapes elsewhere (a "%ZZ", a cut UTF-8 sequence) must not keep the rest
      // encoded past the masker: the ASCII escapes an identifier is written with are decoded
      decoded = text.replace(/%([0-7][0-9A-Fa-f])/g, (_m, h: string) =>
        String.fromCharCode(Number.parseInt(h, 16)),
      );
    }
    // (fail closed: a text that could not be masked is not stored as it was)
    const masked = this.maskedPath(decoded) ?? failed;
    return masked === decoded ? original : masked;
  }

  /**
   * An unexpected exception as the log names it: its class, and its message (which may quote
   * what the client sent: a name, a path) masked as stored texts are, and cut short.
   */
  loggedError(e: unknown): { errorClass: string; error: string } {
    const errorClass = e instanceof Error ? e.constructor.name || e.name : typeof e;
    const message = (e instanceof Error ? e.message : String(e)).slice(0, 500);
    return { errorClass, error: this.storedText(message) };
  }

  /**
   * A path (and query) masked as a whole, then each piece between `/`, `?`, `&` and `=` that
   * could hold an identifier alone, as a body's metadata.name is read: a detector that leaves
   * "/900-12-3456" alone in a path (its lookbehind keeps paths and versions whole) must still
   * find the SSN an object is named after, or an exec argument names (`command=/data/<SSN>`).
   * Undefined when masking failed.
   */
  private maskedPath(text: string): string | undefined {
    const whole = this.maskedText(text);
    if (whole === undefined) return undefined;
    // odd indices are the separators
    const pieces = whole.split(/([/?&=])/);
    let changed = false;
    for (let i = 0; i < pieces.length; i += 2) {
      const seg = pieces[i]!;
      if (!/[0-9@]/.test(seg) || API_VERSION.test(seg)) continue;
      const m = this.maskedText(seg);
      if (m === undefined) return undefined;
      if (m !== seg) {
        pieces[i] = m;
        changed = true;
      }
    }
    return changed ? pieces.join("") : whole;
  }

  /**
   * The request as the record names it: an object's name can hold an identifier (a Job per
   * patient, a ConfigMap named after a record) and is masked as the URI is, so the record's
   * objectRef never holds what its requestURI does not — followed, as in approvals, by the keyed
   * digest of the real name, so the records of one object can still be found
   * (`custos audit query --name … --pseudonym-key …`) and two objects told apart.
   */
  private recordedRequest(): RequestInfo | undefined {
    const r = this.request;
    if (!r?.name && !r?.namespace) return r;
    if (this.#recorded?.from === r) return this.#recorded.request;
    const masker = this.snap.masker;
    // the namespace too: the URI masks a namespace named after a patient, so must the objectRef
    const recorded = (v: string, what: string): string => {
      if (v === "") return v;
      const masked = this.maskedText(v) ?? `[MASKED:${what}]`;
      return masked === v || masker.digest === undefined ? masked : `${masked}#${masker.digest(v)}`;
    };
    const name = recorded(r.name, "name");
    const namespace = recorded(r.namespace, "namespace");
    const request = name === r.name && namespace === r.namespace ? r : { ...r, name, namespace };
    this.#recorded = { from: r, request };
    return request;
  }
  #recorded: { from: RequestInfo; request: RequestInfo } | undefined;

  /**
   * The request as an approval names it — in request files, pull requests and approval
   * evidence, all stored: its name and path masked as the record's are, each followed by a keyed
   * digest of what it was (`record-[MASKED:mrn]#3f2a…`), so that the approval's fingerprint still
   * binds that exact object and a grant for one patient's object is no grant for another's.
   * The path carries the query (approvalQuery): what an exec runs, which objects a
   * deletecollection's selector picks, a dry run or not are part of what the reviewer approves.
   */
  private approvalRequest(r: RequestInfo): RequestInfo {
    const full = r.path + approvalQuery(r.query);
    const masker = this.snap.masker;
    if (masker.digest === undefined) return full === r.path ? r : { ...r, path: full };
    const recorded = this.recordedRequest() ?? r;
    const { name, namespace } = recorded;
    // the query's keys and values are masked one by one, as they were sent (not encoded: an
    // escape before an identifier would hide it from the detectors); the digest binds them all
    const maskedPath = this.maskedPath(r.path);
    let changed = maskedPath !== r.path;
    const stored = (v: string): string => {
      const m = this.storedText(v, v, "[MASKED:argument]");
      if (m !== v) changed = true;
      return m;
    };
    const maskedQuery: Record<string, string[]> = {};
    for (const [k, vs] of Object.entries(r.query)) maskedQuery[stored(k)] = vs.map(stored);
    const path = changed
      ? `${maskedPath ?? "[MASKED]"}${approvalQuery(maskedQuery)}#${masker.digest(full)}`
      : full;
    return name === r.name && namespace === r.namespace && path === r.path
      ? r
      : { ...r, name, namespace, path };
  }

  /**
   * `s` (a URI, an object name, a command argument) through the masker's text stream for this
   * request, for what custos stores about the call; undefined when masking failed.
   */
  maskedText(s: string): string | undefined {
    // the object's name is asked for twice (objectRef, its path segment)
    if (s === this.#lastMaskedIn) return this.#lastMaskedOut;
    const out = this.maskText(s);
    this.#lastMaskedIn = s;
    this.#lastMaskedOut = out;
    return out;
  }
  #lastMaskedIn: string | undefined;
  #lastMaskedOut: string | undefined;

  private maskText(s: string): string | undefined {
    try {
      const identity = this.identity ?? {
        subject: "system:anonymous",
        groups: [],
        claims: {},
        source: "token-file" as const,
      };
      // a call refused before its request was parsed is masked as a non-resource request
      // (the detectors that apply everywhere still do)
      const request = this.request ?? unparsedRequest(this.method, this.url);
      const t = this.snap.masker.textStream({ request, identity });
      return t.push(s) + t.end();
    } catch {
      return undefined;
    }
  }

  /**
   * Before the upstream is asked to start a session (exec/attach/port-forward), and before the
   * first byte of a stream (watch, pod log) goes out: a durable `session` record with stage
   * ResponseStarted, so a session or stream that never ends cleanly (a crash, a kill) is still
   * in the evidence. Resolves false (and logs) when the sink refused it: the session must not
   * start, the stream must deliver nothing. The call's own record is written when it ends.
   */
  async opened(rt: Runtime, code = 101): Promise<boolean> {
    const r = this.record(rt, code);
    return this.append(
      rt,
      {
        ...r,
        stage: "ResponseStarted",
        annotations: { ...r.annotations, "custos.dev/session": "opened" },
        custos: { ...r.custos, type: "session" },
      },
      "session",
    );
  }

  /**
   * Before a call that changes the cluster (POST, PUT, PATCH, DELETE) is forwarded: a durable
   * `session` record with stage RequestReceived (no response status yet), so a change the API
   * server made is in the evidence even when the call's own record cannot be written after its
   * answer (a full disk, a gateway killed in between): the auditor sees the attempt, with its
   * outcome unknown. Resolves false (and logs) when the sink refused it: the request must not
   * be forwarded.
   */
  async writeAhead(rt: Runtime): Promise<boolean> {
    // (response code 0: not answered yet)
    const r = this.record(rt, 0);
    return this.append(
      rt,
      {
        ...r,
        stage: "RequestReceived",
        annotations: { ...r.annotations, "custos.dev/session": "received" },
        custos: { ...r.custos, type: "session" },
      },
      "session",
    );
  }

  /** Write this call's one record. Resolves false (and logs) when the sink refused it. */
  async finish(rt: Runtime, code: number, err?: GatewayError): Promise<boolean> {
    if (this.recorded) return true;
    this.recorded = true;
    return this.append(rt, this.record(rt, code, err), "call");
  }

  private async append(rt: Runtime, rec: EvidenceRecord, refusing: "call" | "session"): Promise<boolean> {
    try {
      await rt.sink.append(rec);
      return true;
    } catch (e) {
      rt.logger.error(`evidence append failed; refusing the ${refusing}`, {
        auditID: this.auditID,
        code: (e as { code?: string }).code ?? "error",
      });
      return false;
    }
  }
}

/**
 * Query parameters that change neither what a call does nor what it returns: how long the
 * client waits, bookmarks, indentation. A client may vary them between the retries of one
 * operation (client-go randomises a watch's timeoutSeconds), so they are left out of what an
 * approval binds.
 */
const UNBOUND_QUERY = new Set(["timeout", "timeoutSeconds", "allowWatchBookmarks", "pretty"]);

/**
 * The query as an approval binds it: "" when none, else "?" and every parameter but
 * UNBOUND_QUERY, keys sorted, each key's values in the order sent (`command=rm&command=-rf`
 * is not `command=-rf&command=rm`), escaped by queryEscape.
 */
export function approvalQuery(query: Readonly<Record<string, readonly string[]>>): string {
  const parts: string[] = [];
  for (const k of Object.keys(query).sort()) {
    if (UNBOUND_QUERY.has(k)) continue;
    for (const v of query[k]!) parts.push(`${queryEscape(k)}=${queryEscape(v)}`);
  }
  return parts.length === 0 ? "" : `?${parts.join("&")}`;
}

/**
 * A query key or value as an approval writes it, for people to read: only what would make it
 * ambiguous is escaped (`%`, `&`, `=`, `#` — the digest follows a `#` — and control characters);
 * `/data/x` stays `/data/x`.
 */
function queryEscape(s: string): string {
  return s.replace(
    /[%&=#\x00-\x1f\x7f]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`,
  );
}

/** the request info of a call whose path was never parsed (refused before, or refused by, parsing) */
function unparsedRequest(method: string, url: string): RequestInfo {
  return nonResourceInfo(url.split("?")[0] ?? url, method.toLowerCase());
}

function preDecision(err: GatewayError | undefined): {
  decision: Decision;
  enforcement: Enforcement;
  ruleId: string;
  reason: string;
} {
  if (!err)
    return {
      decision: "allow",
      enforcement: "enforce",
      ruleId: "gateway",
      reason: "answered by the gateway",
    };
  const ruleId =
    err.httpStatus === 401
      ? "authentication"
      : err.httpStatus === 400 || err.httpStatus === 413 || err.httpStatus === 415
        ? "request-invalid"
        : "gateway";
  return { decision: "deny", enforcement: "enforce", ruleId, reason: err.code };
}

export function denial(o: DecisionResult): GatewayError {
  const where = o.source ? ` [${o.source.file}:${o.source.line}]` : "";
  const fix = o.remediation ? ` To proceed: ${o.remediation}` : "";
  return forbidden(
    "DENIED_BY_POLICY",
    `custos: denied by rule ${o.ruleId}: ${o.reason}.${fix} (policy ${o.policyHash}${where})`,
    {
      ruleId: o.ruleId,
    },
  );
}
