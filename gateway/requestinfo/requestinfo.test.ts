import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRequestInfo, RequestPathError, rbacResource } from "./index.ts";

type Want = Partial<ReturnType<typeof parseRequestInfo>>;

const cases: [string, string, Want][] = [
  [
    "GET",
    "/api/v1/namespaces/default/pods",
    {
      verb: "list",
      namespace: "default",
      resource: "pods",
      name: "",
      apiGroup: "",
      apiVersion: "v1",
      apiPrefix: "api",
    },
  ],
  ["GET", "/api/v1/namespaces/default/pods/web-0", { verb: "get", resource: "pods", name: "web-0" }],
  ["HEAD", "/api/v1/namespaces/default/pods/web-0", { verb: "get" }],
  [
    "GET",
    "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1",
    { verb: "watch", resource: "pods" },
  ],
  ["GET", "/api/v1/namespaces/default/pods?watch=1", { verb: "watch" }],
  ["GET", "/api/v1/namespaces/default/pods?watch=", { verb: "watch" }],
  ["GET", "/api/v1/namespaces/default/pods?watch=false", { verb: "list" }],
  ["GET", "/api/v1/namespaces/default/pods?watch=FALSE", { verb: "list" }],
  ["GET", "/api/v1/namespaces/default/pods?watch=0", { verb: "list" }],
  ["GET", "/api/v1/watch/namespaces/default/pods", { verb: "watch", namespace: "default", resource: "pods" }],
  ["GET", "/api/v1/watch/namespaces/default/pods/web-0", { verb: "watch", name: "web-0" }],
  [
    "GET",
    "/apis/apps/v1/watch/deployments",
    { verb: "watch", apiGroup: "apps", resource: "deployments", namespace: "" },
  ],
  ["GET", "/api/v1/pods", { verb: "list", namespace: "", resource: "pods" }],
  [
    "POST",
    "/api/v1/namespaces/default/configmaps?fieldManager=kubectl",
    { verb: "create", resource: "configmaps", name: "" },
  ],
  ["PUT", "/api/v1/namespaces/default/configmaps/c", { verb: "update", name: "c" }],
  ["PATCH", "/api/v1/namespaces/default/configmaps/c", { verb: "patch" }],
  ["DELETE", "/api/v1/namespaces/default/configmaps/c", { verb: "delete" }],
  ["DELETE", "/api/v1/namespaces/default/configmaps", { verb: "deletecollection" }],
  [
    "PATCH",
    "/apis/apps/v1/namespaces/prod/deployments/web/scale",
    { verb: "patch", apiGroup: "apps", resource: "deployments", subresource: "scale", name: "web" },
  ],
  ["GET", "/api/v1/namespaces", { verb: "list", resource: "namespaces", namespace: "" }],
  [
    "GET",
    "/api/v1/namespaces/phi-a",
    { verb: "get", resource: "namespaces", namespace: "phi-a", name: "phi-a" },
  ],
  ["DELETE", "/api/v1/namespaces/phi-a", { verb: "delete", resource: "namespaces", name: "phi-a" }],
  [
    "PUT",
    "/api/v1/namespaces/phi-a/finalize",
    { verb: "update", resource: "namespaces", name: "phi-a", subresource: "finalize" },
  ],
  [
    "GET",
    "/api/v1/namespaces/phi-a/status",
    { resource: "namespaces", subresource: "status", name: "phi-a" },
  ],
  [
    "GET",
    "/api/v1/namespaces/d/pods/web-0/exec?command=ls&command=%2F",
    { verb: "create", subresource: "exec", query: { command: ["ls", "/"] } },
  ],
  ["POST", "/api/v1/namespaces/d/pods/web-0/exec?command=ls", { verb: "create", subresource: "exec" }],
  ["GET", "/api/v1/namespaces/d/pods/web-0/attach", { verb: "create", subresource: "attach" }],
  ["GET", "/api/v1/namespaces/d/pods/web-0/portforward", { verb: "create", subresource: "portforward" }],
  [
    "GET",
    "/api/v1/namespaces/d/pods/web-0/log?follow=true",
    { verb: "get", subresource: "log", query: { follow: ["true"] } },
  ],
  [
    "GET",
    "/api/v1/namespaces/d/pods/web-0/proxy/metrics",
    { verb: "get", subresource: "proxy", name: "web-0" },
  ],
  [
    "POST",
    "/api/v1/namespaces/d/services/svc:80/proxy/x",
    { verb: "create", resource: "services", subresource: "proxy", name: "svc:80" },
  ],
  [
    "GET",
    "/api/v1/nodes/n1/proxy/stats",
    { verb: "get", resource: "nodes", subresource: "proxy", namespace: "" },
  ],
  [
    "GET",
    "/api/v1/proxy/namespaces/d/pods/web-0/x",
    { verb: "proxy", resource: "pods", name: "web-0", subresource: "" },
  ],
  [
    "GET",
    "/api/v1/namespaces/d/pods?fieldSelector=metadata.name%3Dweb-0&limit=500",
    { verb: "list", name: "web-0" },
  ],
  [
    "GET",
    "/api/v1/namespaces/d/events?fieldSelector=involvedObject.name%3Dweb-0",
    { verb: "list", name: "" },
  ],
  [
    "POST",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    { verb: "create", apiGroup: "authorization.k8s.io", resource: "selfsubjectaccessreviews" },
  ],
  ["GET", "/api", { isResourceRequest: false, verb: "get", path: "/api" }],
  ["GET", "/api/v1?timeout=32s", { isResourceRequest: false, path: "/api/v1", query: { timeout: ["32s"] } }],
  ["GET", "/apis/apps/v1", { isResourceRequest: false }],
  ["GET", "/version", { isResourceRequest: false, verb: "get" }],
  ["POST", "/openapi/v3/api/v1", { isResourceRequest: false, verb: "post" }],
  ["GET", "/", { isResourceRequest: false, path: "/" }],
  ["GET", "/api/v1/namespaces/default/pods/", { verb: "list", path: "/api/v1/namespaces/default/pods" }],
  ["GET", "/api/v1/namespaces/d/configmaps/a%3Ab", { name: "a:b" }],
  ["GET", "/healthz?a=1+2&a=3", { isResourceRequest: false, query: { a: ["1 2", "3"] } }],
];

describe("parseRequestInfo", () => {
  it.each(cases)("%s %s", (method, url, want) => {
    const got = parseRequestInfo(method, url);
    expect(got).toMatchObject({ isResourceRequest: want.isResourceRequest ?? true, ...want });
  });

  const refused = [
    "/api/v1/namespaces/default/secrets%2Fx",
    "/api/v1/namespaces/default/secrets%2fx",
    "/api/v1/namespaces/default%5Csecrets",
    "/api/v1/namespaces/default/../kube-system/secrets",
    "/api/v1/namespaces/default/./pods",
    "/api/v1/namespaces/default/%2e%2e/secrets",
    "/api/v1/namespaces/default/%2E/pods",
    "/api/v1//namespaces/default/pods",
    "//api/v1/pods",
    "/api/v1/namespaces/default/pods%00",
    "/api/v1/namespaces/default/pods\u0000",
    "/api/v1/namespaces/default/pods%zz",
    "/api/v1/namespaces/default/pods%",
    "/api/v1/namespaces/default/pods%252F",
    "/api/v1/namespaces/default/pods%C0",
    "/api/v1/namespaces/a\\b/pods",
    "api/v1/pods",
    "/api/v1/pods?watch=true;x=1",
    "/api/v1/pods?watch=%zz",
    "/api/v1/pods#frag",
    "/api/v1/watch",
  ];
  it.each(refused)("refuses %s", (url) => {
    let err: unknown;
    try {
      parseRequestInfo("GET", url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestPathError);
    expect((err as RequestPathError).code).toBe("REQUEST_PATH_INVALID");
  });

  it("gives the RBAC resource form", () => {
    expect(rbacResource(parseRequestInfo("GET", "/api/v1/namespaces/d/pods/p/log"))).toBe("pods/log");
    expect(rbacResource(parseRequestInfo("GET", "/api/v1/namespaces/d/pods/p"))).toBe("pods");
  });

  const seg = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/);
  it("agrees with the path grammar (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          group: fc.option(fc.stringMatching(/^[a-z]{1,8}(\.[a-z]{1,6})?$/), { nil: undefined }),
          version: fc.constantFrom("v1", "v1beta1", "v2"),
          watchPrefix: fc.boolean(),
          namespace: fc.option(seg, { nil: undefined }),
          resource: seg.filter((s) => s !== "namespaces" && s !== "watch" && s !== "proxy"),
          name: fc.option(seg, { nil: undefined }),
          sub: fc.option(seg, { nil: undefined }),
          method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"),
          watchQuery: fc.boolean(),
        }),
        (g) => {
          const sub = g.name === undefined ? undefined : g.sub;
          const parts = [g.group === undefined ? "api" : "apis"];
          if (g.group !== undefined) parts.push(g.group);
          parts.push(g.version);
          if (g.watchPrefix) parts.push("watch");
          if (g.namespace !== undefined) parts.push("namespaces", g.namespace);
          parts.push(g.resource);
          if (g.name !== undefined) parts.push(g.name);
          if (sub !== undefined) parts.push(sub);
          const url = `/${parts.join("/")}${g.watchQuery ? "?watch=true" : ""}`;
          const info = parseRequestInfo(g.method, url);
          expect(info.isResourceRequest).toBe(true);
          expect(info.apiGroup).toBe(g.group ?? "");
          expect(info.apiVersion).toBe(g.version);
          expect(info.namespace).toBe(g.namespace ?? "");
          expect(info.resource).toBe(g.resource);
          expect(info.name).toBe(g.name ?? "");
          expect(info.subresource).toBe(sub ?? "");
          expect(info.path).toBe(url.split("?")[0]);
          const methodVerb = {
            GET: "get",
            HEAD: "get",
            POST: "create",
            PUT: "update",
            PATCH: "patch",
            DELETE: "delete",
          }[g.method]!;
          let verb = g.watchPrefix ? "watch" : methodVerb;
          if (g.name === undefined && verb === "get") verb = g.watchQuery ? "watch" : "list";
          if (g.name === undefined && verb === "delete") verb = "deletecollection";
          if (
            g.group === undefined &&
            g.resource === "pods" &&
            ["exec", "attach", "portforward"].includes(sub ?? "")
          )
            verb = "create";
          expect(info.verb).toBe(verb);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("never accepts a path whose decoded form has dot-segments or empty segments (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("api", "v1", "pods", "..", ".", "%2e", "%2E%2e", "", "%2F", "x%5c"), {
          maxLength: 6,
        }),
        (segs) => {
          const url = `/${segs.join("/")}`;
          try {
            const info = parseRequestInfo("GET", url);
            const decoded = info.path.split("/").slice(1);
            expect(
              decoded.every((s) => s !== "." && s !== ".." && !s.includes("/") && !s.includes("\\")),
            ).toBe(true);
            expect(info.path === "/" || !decoded.includes("")).toBe(true);
          } catch (e) {
            expect(e).toBeInstanceOf(RequestPathError);
          }
        },
      ),
    );
  });
});
