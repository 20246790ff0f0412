/** Locks the simulator's public surface (the demo command and the tests import these). */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as api from "./index.ts";
import * as planted from "./seed/planted.ts";

describe("public surface", () => {
  it("exports exactly these names", () => {
    expect(Object.keys(api).sort()).toEqual(
      [
        "ResourceRegistry",
        "SIM_ANNOTATIONS",
        "SeedError",
        "SimulatorError",
        "Store",
        "generateTlsMaterial",
        "loadSeed",
        "startSimulator",
      ].sort(),
    );
    expect(Object.keys(planted).sort()).toEqual([
      "DEMO_SEED_PATH",
      "PLANTED",
      "PLANTED_LOCATIONS",
      "PLANTED_VALUES",
    ]);
  });

  it("documents the annotation names the seeds use", () => {
    expect(api.SIM_ANNOTATIONS).toEqual({
      logs: "sim.custos.dev/logs",
      logsFollow: "sim.custos.dev/logs-follow",
      logsPrevious: "sim.custos.dev/logs-previous",
      exec: "sim.custos.dev/exec",
      ports: "sim.custos.dev/ports",
    });
  });

  it("plants only synthetic values (invalid SSN areas, fictional phones, reserved domains)", () => {
    for (const ssn of planted.PLANTED.ssns) expect(ssn).toMatch(/^9\d\d-\d\d-\d{4}$/);
    for (const phone of planted.PLANTED.phones) expect(phone).toMatch(/555-01\d\d$/);
    for (const email of planted.PLANTED.emails) expect(email).toMatch(/@example\.org$/);
  });

  it("every planted value is really in the demo seed (in clear text or base64 Secret data)", () => {
    const objects = api.loadSeed(readFileSync(planted.DEMO_SEED_PATH, "utf8"));
    const text = JSON.stringify(objects);
    const decoded = objects
      .filter((o) => o.kind === "Secret")
      .flatMap((o) =>
        Object.values((o.data ?? {}) as Record<string, string>).map((v) =>
          Buffer.from(v, "base64").toString("utf8"),
        ),
      )
      .join("\n");
    for (const v of planted.PLANTED_VALUES) expect(text.includes(v) || decoded.includes(v), v).toBe(true);
  });
});
