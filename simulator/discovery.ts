/**
 * Discovery documents: legacy (APIVersions, APIGroupList, APIResourceList), aggregated
 * (apidiscovery.k8s.io/v2 and v2beta1 APIGroupDiscoveryList), /version and OpenAPI v3.
 *
 * The OpenAPI v3 documents are minimal on purpose: each group-version lists its paths with a
 * PATCH operation that carries `x-kubernetes-group-version-kind` and the `fieldValidation`,
 * `dryRun`, `fieldManager` and `force` query parameters. That is what kubectl's query-param
 * verifier looks for before it sends `fieldValidation=Strict`. The PATCH operations carry no
 * request body, so kubectl does not compute strategic merge patches from them; it falls back
 * to /openapi/v2 (404 here) and then to its compiled-in types, exactly as against a server
 * that has no OpenAPI v2.
 */
import { createHash } from "node:crypto";
import type { Json, JsonObject } from "./errors.ts";
import { type ResourceDef, type ResourceRegistry, apiVersionOf } from "./resources.ts";

export const DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
export const DISCOVERY_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

export function versionInfo(): JsonObject {
  return {
    major: "1",
    minor: "32",
    gitVersion: "v1.32.0",
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2024-12-11T00:00:00Z",
    goVersion: "go1.23.3",
    compiler: "gc",
    platform: "linux/amd64",
  };
}

export function apiVersions(serverAddress: string): JsonObject {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

export function apiGroupList(reg: ResourceRegistry): JsonObject {
  const groups: Json[] = [];
  for (const [name, versions] of reg.groups()) {
    if (name === "") continue;
    const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    groups.push({ name, versions: vs, preferredVersion: vs[0]! });
  }
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function apiGroup(reg: ResourceRegistry, group: string): JsonObject | undefined {
  const versions = reg.groups().get(group);
  if (!versions || group === "") return undefined;
  const vs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { kind: "APIGroup", apiVersion: "v1", name: group, versions: vs, preferredVersion: vs[0]! };
}

function storageVersionHash(d: ResourceDef): string {
  return createHash("sha256").update(`${d.group}/${d.version}/${d.kind}`).digest("base64").slice(0, 12);
}

export function apiResourceList(
  reg: ResourceRegistry,
  group: string,
  version: string,
): JsonObject | undefined {
  const defs = reg.list().filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  const resources: Json[] = [];
  for (const d of [...defs].sort((a, b) => (a.resource < b.resource ? -1 : 1))) {
    const r: JsonObject = {
      name: d.resource,
      singularName: d.singular,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.verbs,
    };
    if (d.shortNames) r.shortNames = d.shortNames;
    if (d.categories) r.categories = d.categories;
    r.storageVersionHash = storageVersionHash(d);
    resources.push(r);
    for (const s of d.subresources) {
      const sr: JsonObject = {
        name: `${d.resource}/${s.name}`,
        singularName: "",
        namespaced: d.namespaced,
        kind: s.kind,
        verbs: s.verbs,
      };
      if (s.group !== undefined) sr.group = s.group;
      if (s.version !== undefined) sr.version = s.version;
      resources.push(sr);
    }
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: apiVersionOf({ group, version }),
    resources,
  };
}

function discoveryResource(d: ResourceDef): JsonObject {
  const r: JsonObject = {
    resource: d.resource,
    responseKind: { group: "", version: "", kind: d.kind },
    scope: d.namespaced ? "Namespaced" : "Cluster",
    singularResource: d.singular,
    verbs: d.verbs,
  };
  if (d.shortNames) r.shortNames = d.shortNames;
  if (d.categories) r.categories = d.categories;
  if (d.subresources.length > 0) {
    r.subresources = d.subresources.map((s) => ({
      subresource: s.name,
      responseKind: { group: s.group ?? "", version: s.version ?? "", kind: s.kind },
      verbs: s.verbs,
    }));
  }
  return r;
}

/** `legacy`: the document for /api (core group only); otherwise for /apis (every named group). */
export function aggregatedDiscovery(
  reg: ResourceRegistry,
  legacy: boolean,
  version: "v2" | "v2beta1",
): JsonObject {
  const items: Json[] = [];
  for (const [group, versions] of reg.groups()) {
    if ((group === "") !== legacy) continue;
    items.push({
      metadata: group === "" ? { creationTimestamp: null } : { name: group, creationTimestamp: null },
      versions: versions.map((v) => ({
        version: v,
        resources: reg
          .list()
          .filter((d) => d.group === group && d.version === v)
          .sort((a, b) => (a.resource < b.resource ? -1 : 1))
          .map(discoveryResource),
        freshness: "Current",
      })),
    });
  }
  return { kind: "APIGroupDiscoveryList", apiVersion: `apidiscovery.k8s.io/${version}`, metadata: {}, items };
}

const QUERY_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"].map((name) => ({
  name,
  in: "query",
  schema: { type: name === "force" ? "boolean" : "string", uniqueItems: true },
}));

function openApiPaths(defs: ResourceDef[]): JsonObject {
  const paths: JsonObject = {};
  for (const d of defs) {
    const gv = d.group ? `/apis/${d.group}/${d.version}` : `/api/${d.version}`;
    const base = d.namespaced ? `${gv}/namespaces/{namespace}/${d.resource}` : `${gv}/${d.resource}`;
    const gvk = { group: d.group, version: d.version, kind: d.kind };
    const op = (action: string): JsonObject => ({
      "x-kubernetes-action": action,
      "x-kubernetes-group-version-kind": gvk,
      parameters: QUERY_PARAMS,
      responses: { "200": { description: "OK" } },
    });
    paths[base] = { get: op("list"), post: op("post") };
    paths[`${base}/{name}`] = { get: op("get"), put: op("put"), patch: op("patch"), delete: op("delete") };
  }
  return paths;
}

export function openApiV3Doc(reg: ResourceRegistry, group: string, version: string): JsonObject | undefined {
  const defs = reg.list().filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes (custos simulator)", version: "v1.32.0" },
    paths: openApiPaths(defs),
    components: { schemas: {} },
  };
}

export function openApiV3Root(reg: ResourceRegistry): JsonObject {
  const paths: JsonObject = {};
  for (const [group, versions] of reg.groups()) {
    for (const v of versions) {
      const key = group ? `apis/${group}/${v}` : `api/${v}`;
      const doc = openApiV3Doc(reg, group, v);
      const hash = createHash("sha512").update(JSON.stringify(doc)).digest("hex").toUpperCase();
      paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
    }
  }
  return { paths };
}
