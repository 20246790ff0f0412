import { describe, expect, it } from "vitest";
import { Metrics } from "./metrics.ts";

describe("readiness", () => {
  it("follows the sink's own health when it has one: a sink that recovers by itself is ready again without an append", () => {
    let health = { ok: false, reason: "the evidence writer failed (EFBIG); retrying" };
    const m = new Metrics({ policyHash: () => "sha256:x", inFlight: () => 0, sinkHealth: () => health });
    m.appendFailed();
    expect(m.readiness()).toEqual({ ready: false, reason: health.reason });
    health = { ok: true, reason: "ok" };
    expect(m.readiness()).toEqual({ ready: true, reason: "ok" });
  });

  it("without a sink view: not ready after a failed append", () => {
    const m = new Metrics({ policyHash: () => "sha256:x", inFlight: () => 0 });
    expect(m.readiness().ready).toBe(true);
    m.appendFailed();
    expect(m.readiness().ready).toBe(false);
  });
});
