/**
 * Every way an upstream answer reaches the client carries no planted value unmasked: bodiless
 * answers (204, HEAD) and their headers, headers that echo a value, bodies in a charset the
 * masker cannot read, and the frames and close of an exec session.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT_TOKEN,
  call,
  PLANTED,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  testTls,
  upstreamFor,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-secret-token-xyz";

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

function raw(
  res: import("node:http").ServerResponse,
  status: number,
  headers: Record<string, string>,
  body?: string | Buffer,
): true {
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

beforeAll(async () => {
  up = await startRecordingUpstream({
    token: UPSTREAM_TOKEN,
    routes: [
      (r, res) =>
        r.url.startsWith("/api/v1/namespaces/default/pods/nocontent") &&
        raw(res, 204, { warning: `299 - "annotation patient holds ${PLANTED}"` }),
    ],
  });
  t = await startTestGateway(upstreamFor(up.url, (await testTls()).caPem, UPSTREAM_TOKEN, 1000));
});
afterAll(async () => {
  await t?.close();
  await up?.close();
});

describe("responses without a body", () => {
  it("mask the Warning header of a 204 and of a HEAD", async () => {
    for (const method of ["GET", "HEAD"]) {
      const r = await call(t.gw.url, method, "/api/v1/namespaces/default/pods/nocontent", {
        token: AGENT_TOKEN,
      });
      expect(r.status, method).toBe(204);
      expect(r.headers.warning, method).toBe('299 - "annotation patient holds [MASKED:name]"');
    }
  });
});
