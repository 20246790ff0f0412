import { describe, expect, it } from "vitest";
import { createAsciicastRecorder } from "./asciicast.ts";
import { MaskingError } from "./errors.ts";

const header = {
  width: 120,
  height: 40,
  timestamp: 1_710_237_600,
  custos: {
    auditID: "7c1f0c2e-0000-4000-8000-000000000001",
    identity: { subject: "ci:acme/app:deploy", groups: ["ci"], source: "oidc" as const },
    purpose: "incident-123",
    namespace: "phi-a",
    pod: "intake-0",
    container: "app",
    command: ["sh", "-c", "cat /data/x"],
    tty: true,
    ruleId: "exec-with-approval",
    policyHash: `sha256:${"0".repeat(64)}`,
  },
};

function clock(steps: number[]) {
  let i = 0;
  return () => steps[Math.min(i++, steps.length - 1)]!;
}

describe("asciicast v2 recorder", () => {
  it("writes a header line and one JSON event per line that players accept", async () => {
    const rec = createAsciicastRecorder(header, { now: clock([1000, 1000, 1250.5, 2000, 3500]) });
    rec.output("$ ");
    rec.input("cat /data/x\r");
    rec.resize(100, 30);
    rec.output("SSN [MASKED:ssn]\r\n\u001b[0m");
    const lines = rec.content().split("\n");
    expect(lines.at(-1)).toBe("");
    const parsed = lines.slice(0, -1).map((l) => JSON.parse(l));
    const h = parsed[0];
    expect(h.version).toBe(2);
    expect(h.width).toBe(120);
    expect(h.height).toBe(40);
    expect(h.timestamp).toBe(1_710_237_600);
    expect(h.env.TERM).toBe("xterm-256color");
    expect(h.custos.ruleId).toBe("exec-with-approval");
    expect(h.custos.identity.subject).toBe("ci:acme/app:deploy");
    expect(h.custos.command).toEqual(["sh", "-c", "cat /data/x"]);
    const events = parsed.slice(1);
    expect(events).toEqual([
      [0, "o", "$ "],
      [0.2505, "i", "cat /data/x\r"],
      [1, "r", "100x30"],
      [2.5, "o", "SSN [MASKED:ssn]\r\n\u001b[0m"],
    ]);
    for (const e of events) {
      expect(
        Array.isArray(e) &&
          e.length === 3 &&
          typeof e[0] === "number" &&
          ["o", "i", "r"].includes(e[1]) &&
          typeof e[2] === "string",
      ).toBe(true);
    }
    let last = -1;
    for (const e of events) {
      expect(e[0]).toBeGreaterThanOrEqual(last);
      last = e[0];
    }
    const stored: { kind: string; name: string; content: string; auditID: string }[] = [];
    await rec.finish({ appendArtifact: async (a) => void stored.push(a) });
    expect(stored).toEqual([
      {
        kind: "session",
        name: `${header.custos.auditID}.cast`,
        content: rec.content(),
        auditID: header.custos.auditID,
      },
    ]);
  });

  it("fails closed: an oversized recording or a failing sink throws MASK_RECORDING_FAILED", async () => {
    const rec = createAsciicastRecorder(header, { now: () => 0, maxBytes: 600 });
    expect(() => rec.output("x".repeat(1000))).toThrow(MaskingError);
    expect(() => rec.output("y")).toThrow(/recording failed|recorded/);
    const ok = createAsciicastRecorder(header, { now: () => 0 });
    ok.output("hi");
    await expect(
      ok.finish({
        appendArtifact: async () => {
          throw Object.assign(new Error("disk full"), { code: "ENOSPC" });
        },
      }),
    ).rejects.toMatchObject({ code: "MASK_RECORDING_FAILED" });
  });
});
