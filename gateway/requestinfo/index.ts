/**
 * Request info: the verb, group, version, resource, subresource, namespace and name of a
 * Kubernetes API call, computed the way kube-apiserver's RequestInfoFactory does
 * (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go), so that the gateway authorises
 * exactly what the API server will serve.
 *
 * Deviations, all fail-closed:
 * - Paths the API server might interpret differently from us are refused with
 *   {@link RequestPathError} (`REQUEST_PATH_INVALID`): encoded slashes or backslashes,
 *   dot-segments (raw or percent-encoded), empty segments, NUL and control characters,
 *   invalid percent-encoding, double encoding, `;` in the query (Go's url.ParseQuery drops
 *   such pairs; we would otherwise see a parameter the server ignores).
 * - Connect subresources `pods/exec`, `pods/attach`, `pods/portforward` are verb `create`
 *   for every method: kube-apiserver >= 1.30 (AuthorizePodWebsocketUpgradeCreatePermission)
 *   authorises the WebSocket GET as `create`, and POST (SPDY) always was.
 */
import type { RequestInfo } from "../ports.ts";

export class RequestPathError extends Error {
  readonly code = "REQUEST_PATH_INVALID" as const;
  readonly data: { path: string; problem: string };
  constructor(path: string, problem: string) {
    super(
      `request path refused: expected a normalised Kubernetes API path, found ${problem} in ${JSON.stringify(
        path.length > 200 ? `${path.slice(0, 200)}...` : path,
      )}; send the path without encoded slashes, dot-segments or empty segments`,
    );
    this.name = "RequestPathError";
    this.data = { path, problem };
  }
}

/** API prefixes kube-apiserver serves resources under; "api" is the groupless legacy prefix. */
const API_PREFIXES = new Set(["api", "apis"]);
const GROUPLESS_API_PREFIXES = new Set(["api"]);
/** verbs that may appear as the first part after the version (legacy /watch/ and /proxy/ forms) */
const SPECIAL_VERBS = new Set(["proxy", "watch"]);
const SPECIAL_VERBS_NO_SUBRESOURCES = new Set(["proxy"]);
/** subresources of a namespace object that stay on the `namespaces` resource */
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);
/** connect subresources whose every call is authorised as `create` (RBAC: `create pods/exec`) */
const CREATE_CONNECT_SUBRESOURCES = new Set(["exec", "attach", "portforward"]);

const METHOD_VERBS: Record<string, string> = {
  POST: "create",
  GET: "get",
  HEAD: "get",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

const CONTROL = /[\u0000-\u001f\u007f]/;
const BAD_PERCENT = /%(?![0-9a-fA-F]{2})/;

const PLAIN_SEGMENT = /^[A-Za-z0-9_~:@!$&'()*+,;=.-]+$/;

function decodeSegment(raw: string, whole: string): string {
  // fast path: nothing encoded, nothing to refuse but dot-segments
  if (PLAIN_SEGMENT.test(raw)) {
    if (raw === "." || raw === "..") throw new RequestPathError(whole, "a dot-segment");
    return raw;
  }
  if (BAD_PERCENT.test(raw)) throw new RequestPathError(whole, "invalid percent-encoding");
  if (/%(2f|5c|00)/i.test(raw)) throw new RequestPathError(whole, "an encoded slash, backslash or NUL");
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new RequestPathError(whole, "percent-encoding that is not UTF-8");
  }
  if (decoded === "." || decoded === "..") throw new RequestPathError(whole, "a dot-segment");
  if (decoded.includes("\\")) throw new RequestPathError(whole, "a backslash");
  if (CONTROL.test(decoded)) throw new RequestPathError(whole, "a control character");
  if (decoded.includes("%")) throw new RequestPathError(whole, "double percent-encoding");
  return decoded;
}

/** Split and validate the path; returns the decoded segments (no empty ones). */
function splitPath(rawPath: string): string[] {
  if (!rawPath.startsWith("/")) throw new RequestPathError(rawPath, "a path that does not start with '/'");
  if (rawPath === "/") return [];
  // one trailing slash is tolerated (kube-apiserver's splitPath trims it); an empty segment elsewhere is not
  const body = rawPath.endsWith("/") ? rawPath.slice(1, -1) : rawPath.slice(1);
  const raws = body.split("/");
  const out: string[] = [];
  for (const raw of raws) {
    if (raw === "") throw new RequestPathError(rawPath, "an empty segment (double slash)");
    out.push(decodeSegment(raw, rawPath));
  }
  return out;
}

/** Parse a query string like Go's url.ParseQuery, refusing what Go would silently drop. */
function parseQuery(rawQuery: string, whole: string): Record<string, string[]> {
  const query: Record<string, string[]> = {};
  if (rawQuery === "") return query;
  if (rawQuery.includes(";")) throw new RequestPathError(whole, "a ';' in the query");
  for (const pair of rawQuery.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    const key = decodeQueryPart(rawKey, whole);
    const value = decodeQueryPart(rawValue, whole);
    if (!Object.hasOwn(query, key)) query[key] = [];
    query[key]!.push(value);
  }
  return query;
}

function decodeQueryPart(raw: string, whole: string): string {
  if (!raw.includes("%") && !raw.includes("+")) return raw;
  if (BAD_PERCENT.test(raw)) throw new RequestPathError(whole, "invalid percent-encoding in the query");
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    throw new RequestPathError(whole, "percent-encoding that is not UTF-8 in the query");
  }
}

/** Go's Convert_Slice_string_To_bool: anything but "0" or "false" (any case) is true. */
function queryBool(values: string[] | undefined): boolean {
  if (values === undefined || values.length === 0) return false;
  const first = values[0]!;
  return !(first === "0" || first.toLowerCase() === "false");
}

/** `metadata.name=x` (or `==`) among the AND'ed terms of a field selector, as fields.RequiresExactMatch does. */
function fieldSelectorName(selector: string | undefined): string | undefined {
  if (selector === undefined || selector === "" || selector.includes("\\")) return undefined;
  for (const term of selector.split(",")) {
    const m = /^\s*metadata\.name\s*(==|=)(.*)$/.exec(term);
    if (m) return m[2]!.trim();
  }
  return undefined;
}

/** path.IsValidPathSegmentName: not "." or "..", no "/" or "%". */
function validPathSegmentName(name: string): boolean {
  return name !== "." && name !== ".." && !name.includes("/") && !name.includes("%");
}

/**
 * Parse one request the way kube-apiserver does.
 *
 * @param method HTTP method (any case)
 * @param rawUrl the request target in origin form, e.g. `/api/v1/namespaces/default/pods?watch=true`
 * @param headers `upgrade` is accepted for callers' convenience; connect subresources are `create` regardless
 * @throws RequestPathError (code `REQUEST_PATH_INVALID`) for paths that must not be forwarded
 */
export function parseRequestInfo(
  method: string,
  rawUrl: string,
  _headers?: { upgrade?: string },
): RequestInfo {
  const hashAt = rawUrl.indexOf("#");
  if (hashAt >= 0) throw new RequestPathError(rawUrl, "a fragment");
  const q = rawUrl.indexOf("?");
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q < 0 ? "" : rawUrl.slice(q + 1);
  const parts = splitPath(rawPath);
  const query = parseQuery(rawQuery, rawUrl);
  const upper = method.toUpperCase();
  const path = `/${parts.join("/")}`;

  const info: RequestInfo = nonResourceInfo(path, method.toLowerCase(), query);

  if (parts.length < 3 || !API_PREFIXES.has(parts[0]!)) return info;
  let current = parts.slice(1);
  const apiPrefix = parts[0]!;
  let apiGroup = "";
  if (!GROUPLESS_API_PREFIXES.has(apiPrefix)) {
    if (current.length < 3) return info;
    apiGroup = current[0]!;
    current = current.slice(1);
  }
  info.apiPrefix = apiPrefix;
  info.apiGroup = apiGroup;
  info.isResourceRequest = true;
  info.apiVersion = current[0]!;
  current = current.slice(1);

  if (SPECIAL_VERBS.has(current[0]!)) {
    if (current.length < 2) {
      throw new RequestPathError(rawUrl, `a '${current[0]}' prefix with no resource after it`);
    }
    info.verb = current[0]!;
    current = current.slice(1);
  } else {
    info.verb = METHOD_VERBS[upper] ?? "";
  }

  if (current[0] === "namespaces") {
    if (current.length > 1) {
      info.namespace = current[1]!;
      if (current.length > 2 && !NAMESPACE_SUBRESOURCES.has(current[2]!)) current = current.slice(2);
    }
  }

  if (current.length >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.has(info.verb)) info.subresource = current[2]!;
  if (current.length >= 2) info.name = current[1]!;
  if (current.length >= 1) info.resource = current[0]!;

  if (info.name === "" && info.verb === "get") {
    info.verb = queryBool(query.watch) ? "watch" : "list";
    const name = fieldSelectorName(query.fieldSelector?.[0]);
    if (name !== undefined && validPathSegmentName(name)) info.name = name;
  }
  if (info.name === "" && info.verb === "delete") info.verb = "deletecollection";

  if (info.apiGroup === "" && info.resource === "pods" && CREATE_CONNECT_SUBRESOURCES.has(info.subresource)) {
    info.verb = "create";
  }
  return info;
}

/** The RBAC form of a request's resource: "pods" or "pods/exec". */
export function rbacResource(info: Pick<RequestInfo, "resource" | "subresource">): string {
  return info.subresource === "" ? info.resource : `${info.resource}/${info.subresource}`;
}

/** The request info of a non-resource request (`/version`, `/healthz`, a path never parsed further). */
export function nonResourceInfo(
  path: string,
  verb: string,
  query: Record<string, string[]> = {},
): RequestInfo {
  return {
    isResourceRequest: false,
    path,
    verb,
    apiPrefix: "",
    apiGroup: "",
    apiVersion: "",
    namespace: "",
    resource: "",
    subresource: "",
    name: "",
    query,
  };
}
