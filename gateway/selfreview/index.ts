/**
 * `kubectl auth can-i` (SelfSubjectAccessReview), `auth can-i --list` (SelfSubjectRulesReview)
 * and `auth whoami` (SelfSubjectReview) are answered by the gateway from custos' own policy
 * for the caller — never forwarded, since upstream they would be evaluated against the
 * gateway's credential. Bodies arrive as protobuf (kubectl) or JSON (other clients);
 * answers are JSON (every client lists application/json in its Accept).
 */
import type { GatewayConfig, Json } from "../../sdk/schema/config.ts";
import { rulesFor } from "../decision/index.ts";
import { badRequest } from "../errors.ts";
import type { DecisionInput, DecisionResult, Identity, RequestInfo } from "../ports.ts";
import { nonResourceInfo } from "../requestinfo/index.ts";
import { decodeSelfReview, ProtobufError, type ResourceAttributes, type SelfReview } from "./protobuf.ts";

export type SelfReviewKind = "selfsubjectaccessreviews" | "selfsubjectrulesreviews" | "selfsubjectreviews";

export function selfReviewKind(r: RequestInfo): SelfReviewKind | undefined {
  if (!r.isResourceRequest || r.verb !== "create" || r.subresource !== "" || r.name !== "") return undefined;
  if (
    r.apiGroup === "authorization.k8s.io" &&
    (r.resource === "selfsubjectaccessreviews" || r.resource === "selfsubjectrulesreviews")
  )
    return r.resource;
  if (r.apiGroup === "authentication.k8s.io" && r.resource === "selfsubjectreviews") return r.resource;
  return undefined;
}

/** Parse the review from protobuf or (already decoded) JSON. */
export function readSelfReview(
  kind: SelfReviewKind,
  raw: Buffer,
  json: Json | undefined,
  isProtobuf: boolean,
): SelfReview | { kind: "SelfSubjectReview" } {
  if (kind === "selfsubjectreviews") return { kind: "SelfSubjectReview" };
  if (isProtobuf) {
    try {
      const r = decodeSelfReview(raw);
      const want = kind === "selfsubjectaccessreviews" ? "SelfSubjectAccessReview" : "SelfSubjectRulesReview";
      if (r.kind !== want) throw new ProtobufError(`protobuf: expected ${want}, found ${r.kind}`);
      return r;
    } catch (e) {
      throw badRequest(
        "SELF_REVIEW_MALFORMED",
        `custos: could not read the ${kind} body (${(e as Error).message})`,
      );
    }
  }
  const obj = (json ?? {}) as { spec?: Record<string, unknown> };
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  if (kind === "selfsubjectrulesreviews")
    return { kind: "SelfSubjectRulesReview", namespace: String(spec.namespace ?? "") };
  const out: SelfReview = { kind: "SelfSubjectAccessReview" };
  const ra = spec.resourceAttributes as Record<string, unknown> | undefined;
  if (ra && typeof ra === "object")
    out.resourceAttributes = {
      namespace: String(ra.namespace ?? ""),
      verb: String(ra.verb ?? ""),
      group: String(ra.group ?? ""),
      version: String(ra.version ?? ""),
      resource: String(ra.resource ?? ""),
      subresource: String(ra.subresource ?? ""),
      name: String(ra.name ?? ""),
    };
  const nra = spec.nonResourceAttributes as Record<string, unknown> | undefined;
  if (nra && typeof nra === "object")
    out.nonResourceAttributes = { path: String(nra.path ?? ""), verb: String(nra.verb ?? "") };
  return out;
}

/** The RequestInfo a real call with these attributes would have. */
export function requestFromAttributes(ra: ResourceAttributes): RequestInfo {
  const apiPrefix = ra.group === "" ? "api" : "apis";
  const version = ra.version === "" || ra.version === "*" ? "v1" : ra.version;
  const segs = [apiPrefix, ...(ra.group ? [ra.group] : []), version];
  if (ra.namespace) segs.push("namespaces", ra.namespace);
  segs.push(ra.resource);
  if (ra.name) segs.push(ra.name);
  if (ra.subresource) segs.push(ra.subresource);
  return {
    isResourceRequest: true,
    path: `/${segs.join("/")}`,
    verb: ra.verb,
    apiPrefix,
    apiGroup: ra.group,
    apiVersion: version,
    namespace: ra.namespace,
    resource: ra.resource,
    subresource: ra.subresource,
    name: ra.name,
    query: {},
  };
}

export interface SelfReviewAnswer {
  body: Json;
  /** for SSAR: the decision that answered it */
  decision?: DecisionResult;
}

export function answerSelfReview(
  review: SelfReview | { kind: "SelfSubjectReview" },
  who: { identity: Identity; purpose?: string },
  config: GatewayConfig,
  evaluate: (config: GatewayConfig, input: DecisionInput) => DecisionResult,
): SelfReviewAnswer {
  if (review.kind === "SelfSubjectReview") {
    const extra: Record<string, Json> = {};
    if (who.purpose !== undefined) extra["custos.dev/purpose"] = [who.purpose];
    return {
      body: {
        kind: "SelfSubjectReview",
        apiVersion: "authentication.k8s.io/v1",
        metadata: { creationTimestamp: null },
        status: { userInfo: { username: who.identity.subject, groups: who.identity.groups, extra } },
      },
    };
  }
  if (review.kind === "SelfSubjectRulesReview") {
    const who2: Parameters<typeof rulesFor>[1] = { identity: who.identity, namespace: review.namespace };
    if (who.purpose !== undefined) who2.purpose = who.purpose;
    const r = rulesFor(config, who2);
    const status: Record<string, Json> = {
      resourceRules: r.resourceRules.map((x) => ({ ...x }) as unknown as Json),
      nonResourceRules: r.nonResourceRules.map((x) => ({ ...x }) as unknown as Json),
      incomplete: r.incomplete,
    };
    if (r.evaluationError) status.evaluationError = r.evaluationError;
    return {
      body: {
        kind: "SelfSubjectRulesReview",
        apiVersion: "authorization.k8s.io/v1",
        metadata: { creationTimestamp: null },
        spec: { namespace: review.namespace },
        status,
      },
    };
  }
  let request: RequestInfo;
  let spec: Json;
  if (review.resourceAttributes) {
    request = requestFromAttributes(review.resourceAttributes);
    spec = { resourceAttributes: { ...review.resourceAttributes } };
  } else if (review.nonResourceAttributes) {
    const { path, verb } = review.nonResourceAttributes;
    request = nonResourceInfo(path, verb);
    spec = { nonResourceAttributes: { path, verb } };
  } else
    throw badRequest(
      "SELF_REVIEW_MALFORMED",
      "custos: SelfSubjectAccessReview needs spec.resourceAttributes or spec.nonResourceAttributes",
    );
  const input: DecisionInput = { identity: who.identity, request };
  if (who.purpose !== undefined) input.purpose = who.purpose;
  const d = evaluate(config, input);
  const allowed = d.effective === "allow";
  const status: Record<string, Json> = { allowed, reason: `custos rule ${d.ruleId}: ${d.reason}` };
  if (!allowed && d.decision === "deny") status.denied = true;
  if (d.decision === "requireApproval" && !allowed)
    status.reason = `custos rule ${d.ruleId}: requires approval (${d.reason})`;
  return {
    body: {
      kind: "SelfSubjectAccessReview",
      apiVersion: "authorization.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec,
      status,
    },
    decision: d,
  };
}
