/**
 * Evidence records of type "approval": one per step (request opened, each review with its
 * signature, grant, use, denial, expiry). Each carries `custos.approval` {requestId,
 * fingerprint, grantId, url} — the same fields a call record carries — so an auditor follows
 * operation -> approval -> reviewer -> signature -> execution by fingerprint and grant id.
 */
import { randomUUID } from "node:crypto";
import type { EvidenceRecord } from "../../gateway/ports.ts";
import type { Json } from "../../sdk/schema/config.ts";
import type { RequestFile } from "./fingerprint.ts";

export type ApprovalEvent = "request-opened" | "review" | "granted" | "used" | "denied" | "expired";

/** RFC 3339 with microseconds, as kube-apiserver's audit events carry them. */
export function microTimestamp(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

const STATUS: Record<ApprovalEvent, { code: number; status: string }> = {
  "request-opened": { code: 202, status: "Pending" },
  review: { code: 202, status: "Pending" },
  granted: { code: 200, status: "Success" },
  used: { code: 200, status: "Success" },
  denied: { code: 403, status: "Failure" },
  expired: { code: 403, status: "Failure" },
};

export function approvalRecord(
  file: RequestFile,
  ev: {
    event: ApprovalEvent;
    at: Date;
    message: string;
    url?: string;
    grantId?: string;
    extra?: Record<string, Json>;
    auditID?: string;
  },
): EvidenceRecord {
  const r = file.operation.request;
  const objectRef: NonNullable<EvidenceRecord["objectRef"]> = {};
  if (r.resource) objectRef.resource = r.resource;
  if (r.namespace) objectRef.namespace = r.namespace;
  if (r.name) objectRef.name = r.name;
  if (r.apiGroup) objectRef.apiGroup = r.apiGroup;
  if (r.apiVersion) objectRef.apiVersion = r.apiVersion;
  if (r.subresource) objectRef.subresource = r.subresource;
  const ts = microTimestamp(ev.at);
  const approval: NonNullable<EvidenceRecord["custos"]["approval"]> = {
    requestId: file.requestId,
    fingerprint: file.fingerprint,
  };
  if (ev.grantId) approval.grantId = ev.grantId;
  if (ev.url) approval.url = ev.url;
  const st = STATUS[ev.event];
  const record: EvidenceRecord = {
    apiVersion: "audit.k8s.io/v1",
    kind: "Event",
    level: "Metadata",
    auditID: ev.auditID ?? randomUUID(),
    stage: "ResponseComplete",
    requestURI: r.path,
    verb: r.verb,
    user: { username: file.operation.identity.subject, groups: file.operation.identity.groups },
    sourceIPs: [],
    responseStatus: { code: st.code, status: st.status, reason: ev.event, message: ev.message },
    requestReceivedTimestamp: ts,
    stageTimestamp: ts,
    custos: {
      decision: "requireApproval",
      effective:
        ev.event === "granted" || ev.event === "used"
          ? "allow"
          : ev.event === "denied" || ev.event === "expired"
            ? "deny"
            : "requireApproval",
      enforcement: "enforce",
      ruleId: file.rule.id,
      reason: ev.message,
      policyHash: file.rule.policyHash,
      approval,
      type: "approval",
      extra: { event: ev.event, ...(ev.extra ?? {}) },
    },
  };
  if (Object.keys(objectRef).length > 0) record.objectRef = objectRef;
  if (file.purpose !== null) record.custos.purpose = file.purpose;
  if (file.operation.bodySha256) record.custos.bodySha256 = file.operation.bodySha256;
  return record;
}
