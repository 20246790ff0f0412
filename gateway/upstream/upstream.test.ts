import { KubeConfig } from "@kubernetes/client-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Upstream } from "./index.ts";

function upstream(server: string): Upstream {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server }],
    users: [{ name: "u" }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
  return new Upstream(kc, { timeoutMs: 1000 });
}

const PIECES = [
  "/",
  "a",
  "Z",
  "0",
  ".",
  "..",
  "%2e",
  "%2E",
  "%2F",
  "%",
  "%zz",
  "%20",
  "?",
  "&",
  "=",
  "'",
  "//",
];
const ODD = [
  "\\",
  " ",
  "é",
  "#",
  ":",
  "@",
  "~",
  "+",
  "|",
  "^",
  "`",
  "{",
  '"',
  "<",
  "-",
  "_",
  "!",
  "$",
  "(",
  ";",
  ",",
];

describe("upstream request target", () => {
  it("path() is exactly what the URL parser makes of a path (+ query), with or without a server prefix", () => {
    for (const server of ["https://127.0.0.1:6443", "https://h.example/prefix/", "http://[::1]:8080/a/b"]) {
      const up = upstream(server);
      fc.assert(
        fc.property(fc.array(fc.constantFrom(...PIECES, ...ODD), { maxLength: 12 }), (parts) => {
          const p = `/${parts.join("")}`;
          const u = up.url(p);
          expect(up.path(p)).toBe(u.pathname + u.search);
        }),
        { numRuns: 3000 },
      );
      expect(up.path("/api/v1/namespaces/default/pods?limit=500&labelSelector=app%3Dweb")).toBe(
        `${new URL(server).pathname.replace(/\/+$/, "")}/api/v1/namespaces/default/pods?limit=500&labelSelector=app%3Dweb`,
      );
    }
  });
});
