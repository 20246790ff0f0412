/**
 * Builds the one evidence record per call: the fields of a Kubernetes audit.k8s.io/v1 Event
 * plus custos' decision, rule, policy hash, purpose, job run, approval and masking summary.
 */
import type { Decision, Enforcement } from "../../sdk/schema/config.ts";
import type { EvidenceRecord, Identity, MaskSummary, RequestInfo } from "../ports.ts";

/** RFC 3339 with microseconds, as kube-apiserver writes audit timestamps. */
export function rfc3339Micro(d: Date): string {
  const iso = d.toISOString();
  // "...T12:34:56.789Z" -> "...T12:34:56.789000Z" (years past 9999 have a longer prefix, same ending)
  return iso.endsWith("Z") && iso.charCodeAt(iso.length - 5) === 46 ? `${iso.slice(0, -1)}000Z` : iso;
}

/** job-run claims worth keeping per call (never the token itself) */
const JOB_RUN_CLAIMS = [
  "repository",
  "workflow",
  "ref",
  "runId",
  "runAttempt",
  "sha",
  "jobWorkflowRef",
  "actor",
  "environment",
  "issuer",
];

export interface CallFacts {
  auditID: string;
  requestURI: string;
  method: string;
  sourceIP: string;
  userAgent?: string;
  received: Date;
  completed: Date;
  identity?: Identity;
  request?: RequestInfo;
  purpose?: string;
  code: number;
  statusReason?: string;
  message?: string;
  decision: Decision;
  effective: Decision;
  enforcement: Enforcement;
  ruleId: string;
  reason: string;
  policyHash: string;
  approval?: NonNullable<EvidenceRecord["custos"]["approval"]>;
  masking?: MaskSummary;
  bodySha256?: string;
  bytes?: { in: number; out: number };
  annotations?: Record<string, string>;
}

/** The parts of a call's record that are known before the upstream answers (built while it works). */
export interface RecordStatics {
  user: EvidenceRecord["user"];
  objectRef?: NonNullable<EvidenceRecord["objectRef"]>;
  jobRun?: Record<string, string>;
  received: string;
}

export function recordStatics(f: {
  identity?: Identity | undefined;
  request?: RequestInfo | undefined;
  received: Date;
}): RecordStatics {
  const s: RecordStatics = {
    user: f.identity
      ? {
          username: f.identity.subject,
          groups: [...f.identity.groups],
          extra: { "custos.dev/source": [f.identity.source] },
        }
      : { username: "system:anonymous", groups: ["system:unauthenticated"] },
    received: rfc3339Micro(f.received),
  };
  const jobRun: Record<string, string> = {};
  let any = false;
  for (const k of JOB_RUN_CLAIMS) {
    const v = f.identity?.claims[k];
    if (v !== undefined) {
      jobRun[k] = v;
      any = true;
    }
  }
  if (any) s.jobRun = jobRun;
  const r = f.request;
  if (r?.isResourceRequest) {
    const o: NonNullable<EvidenceRecord["objectRef"]> = { resource: r.resource, apiVersion: r.apiVersion };
    if (r.namespace) o.namespace = r.namespace;
    if (r.name) o.name = r.name;
    if (r.apiGroup) o.apiGroup = r.apiGroup;
    if (r.subresource) o.subresource = r.subresource;
    s.objectRef = o;
  }
  return s;
}

/** The record; `statics` (from recordStatics with the same identity, request and received) when prepared earlier. */
export function callRecord(f: CallFacts, statics?: RecordStatics): EvidenceRecord {
  // prepared parts may serve more than one record of a call (a session's opening record and its
  // final one): those are copied, so the records share no objects; fresh ones are used as built
  const shared = statics !== undefined;
  const s = statics ?? recordStatics(f);
  const verb = f.request?.verb ?? f.method.toLowerCase();
  const rec: EvidenceRecord = {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: f.auditID,
    stage: "ResponseComplete",
    requestURI: f.requestURI,
    verb,
    user: !shared
      ? s.user
      : s.user.extra
        ? { username: s.user.username, groups: [...s.user.groups], extra: { ...s.user.extra } }
        : { username: s.user.username, groups: [...s.user.groups] },
    sourceIPs: [f.sourceIP],
    responseStatus: { code: f.code },
    requestReceivedTimestamp: s.received,
    stageTimestamp: rfc3339Micro(f.completed),
    custos: {
      type: "call",
      decision: f.decision,
      effective: f.effective,
      enforcement: f.enforcement,
      ruleId: f.ruleId,
      reason: f.reason,
      policyHash: f.policyHash,
    },
  };
  if (f.userAgent) rec.userAgent = f.userAgent.slice(0, 256);
  if (f.statusReason) rec.responseStatus.reason = f.statusReason;
  if (f.message) rec.responseStatus.message = f.message.slice(0, 1024);
  if (f.code >= 400) rec.responseStatus.status = "Failure";
  if (s.objectRef) rec.objectRef = shared ? { ...s.objectRef } : s.objectRef;
  if (f.annotations) rec.annotations = f.annotations;
  if (f.purpose !== undefined) rec.custos.purpose = f.purpose;
  if (s.jobRun) rec.custos.jobRun = shared ? { ...s.jobRun } : s.jobRun;
  if (f.approval) rec.custos.approval = f.approval;
  if (f.masking) rec.custos.masking = f.masking;
  if (f.bodySha256) rec.custos.bodySha256 = f.bodySha256;
  if (f.bytes) rec.custos.bytes = f.bytes;
  return rec;
}

export function reloadRecord(o: {
  auditID: string;
  at: Date;
  oldPolicyHash: string;
  newPolicyHash: string;
  by: string;
}): EvidenceRecord {
  const ts = rfc3339Micro(o.at);
  return {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: o.auditID,
    stage: "ResponseComplete",
    requestURI: "custos:policy-reload",
    verb: "update",
    user: { username: o.by, groups: [] },
    sourceIPs: [],
    responseStatus: { code: 200 },
    requestReceivedTimestamp: ts,
    stageTimestamp: ts,
    annotations: {
      "custos.dev/old-policy-hash": o.oldPolicyHash,
      "custos.dev/new-policy-hash": o.newPolicyHash,
    },
    custos: {
      type: "policy-reload",
      decision: "allow",
      effective: "allow",
      enforcement: "enforce",
      ruleId: "policy-reload",
      reason: `policy reloaded: ${o.oldPolicyHash} -> ${o.newPolicyHash}`,
      policyHash: o.newPolicyHash,
      extra: { oldPolicyHash: o.oldPolicyHash, newPolicyHash: o.newPolicyHash },
    },
  };
}
