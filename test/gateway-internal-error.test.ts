/**
 * An unexpected exception inside the gateway is logged by class and masked message: a message
 * quoting request data (a name, a path) never reaches the log as it was.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenFileAuthenticator } from "../gateway/identity/token-file.ts";
import type { Logger } from "../gateway/server/runtime.ts";
import {
  call,
  PLANTED,
  startRecordingUpstream,
  startTestGateway,
  type TestGateway,
  TOKEN_FILE,
  testTls,
  upstreamFor,
} from "./gateway-helpers.ts";

const UPSTREAM_TOKEN = "upstream-token-internal-0123456789";
const logged: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
const logger: Logger = {
  info: (msg, fields = {}) => logged.push({ level: "info", msg, fields }),
  warn: (msg, fields = {}) => logged.push({ level: "warn", msg, fields }),
  error: (msg, fields = {}) => logged.push({ level: "error", msg, fields }),
};

class LookupBug extends Error {}

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let t: TestGateway;

beforeAll(async () => {
  const tls = await testTls();
  up = await startRecordingUpstream({ token: UPSTREAM_TOKEN });
  t = await startTestGateway(upstreamFor(up.url, tls.caPem, UPSTREAM_TOKEN), {
    logger,
    auth: {
      tokenFile: new TokenFileAuthenticator(TOKEN_FILE),
      // a bug in a token source: its message quotes what it was working on
      tokenReview: async () => {
        throw new LookupBug(`no record for ${PLANTED} under /patients/${PLANTED}`);
      },
    },
  });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

describe("the internal error log line", () => {
  it("names the error's class and masks its message; the client gets a 500 Status", async () => {
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/default/pods", {
      token: "unknown-token-0123456789",
    });
    expect(r.status).toBe(500);
    const line = logged.find((l) => l.msg === "internal error");
    expect(line, JSON.stringify(logged)).toBeDefined();
    expect(JSON.stringify(line)).not.toContain(PLANTED);
    expect(line?.fields).toMatchObject({ errorClass: "LookupBug" });
    expect(String(line?.fields.error)).toContain("[MASKED:name]");
    expect(String(line?.fields.error)).toContain("no record for");
  });
});
