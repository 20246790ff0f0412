import fc from "fast-check";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  formatSignatureBlock,
  parseSignatureBlock,
  signDecision,
  verifySignatureBlock,
} from "./signature.ts";
import { formatPublicKey } from "./sshkey.ts";

const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
const key = { ...kp, comment: "" };
const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
const FP = `sha256:${"ab".repeat(32)}`;
const ID = "abababababab-miexk2ab";
const registered = [formatPublicKey(kp.publicKey, "alice")];

describe("custos signature blocks", () => {
  it("round-trips through a review body and verifies", () => {
    const block = signDecision(key, "approve", FP, ID);
    const body = `LGTM\r\n\r\n${formatSignatureBlock(block).replaceAll("\n", "\r\n")}\r\nthanks`;
    const parsed = parseSignatureBlock(body);
    expect(parsed).toEqual(block);
    expect(
      verifySignatureBlock(parsed!, {
        fingerprint: FP,
        requestId: ID,
        decision: "approve",
        registeredKeys: registered,
      }),
    ).toMatchObject({ ok: true });
  });

  it("is deterministic (ed25519, RFC 8032): the same key and message give the same signature", () => {
    expect(signDecision(key, "deny", FP, ID).signature).toBe(signDecision(key, "deny", FP, ID).signature);
  });

  it("refuses ambiguous bodies: two blocks, duplicate fields, unknown decision", () => {
    const b = formatSignatureBlock(signDecision(key, "approve", FP, ID));
    expect(parseSignatureBlock(`${b}\n${b}`)).toBeNull();
    expect(
      parseSignatureBlock(b.replace("decision: approve", "decision: approve\ndecision: deny")),
    ).toBeNull();
    expect(parseSignatureBlock(b.replace("decision: approve", "decision: maybe"))).toBeNull();
    expect(parseSignatureBlock("no block")).toBeNull();
  });

  it("any change to what was signed fails verification (property)", () => {
    const block = signDecision(key, "approve", FP, ID);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const sig = Buffer.from(block.signature, "base64");
        sig[i] = (sig[i] ?? 0) ^ x;
        const r = verifySignatureBlock(
          { ...block, signature: sig.toString("base64") },
          { fingerprint: FP, requestId: ID, decision: "approve", registeredKeys: registered },
        );
        return !r.ok && r.code === "bad-signature";
      }),
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{64}$/), (hex) => {
        fc.pre(`sha256:${hex}` !== FP);
        // a signature over FP presented as a signature over another fingerprint
        const forged = { ...block, fingerprint: `sha256:${hex}` };
        const r = verifySignatureBlock(forged, {
          fingerprint: `sha256:${hex}`,
          requestId: ID,
          decision: "approve",
          registeredKeys: registered,
        });
        return !r.ok && r.code === "bad-signature";
      }),
      { numRuns: 50 },
    );
  });

  it("names each failed binding", () => {
    const block = signDecision(key, "approve", FP, ID);
    const exp = { fingerprint: FP, requestId: ID, decision: "approve" as const, registeredKeys: registered };
    expect(verifySignatureBlock(block, { ...exp, fingerprint: `sha256:${"cd".repeat(32)}` })).toMatchObject({
      code: "fingerprint-mismatch",
    });
    expect(verifySignatureBlock(block, { ...exp, requestId: "cdcdcdcdcdcd-1" })).toMatchObject({
      code: "request-mismatch",
    });
    expect(verifySignatureBlock(block, { ...exp, decision: "deny" })).toMatchObject({
      code: "decision-mismatch",
    });
    expect(
      verifySignatureBlock(block, { ...exp, registeredKeys: [formatPublicKey(other.publicKey)] }),
    ).toMatchObject({ code: "unregistered-key" });
    expect(verifySignatureBlock({ ...block, key: "garbage" }, exp)).toMatchObject({ code: "malformed" });
  });
});

describe("verifyEd25519", () => {
  it("agrees with tweetnacl on valid and corrupted signatures (property)", async () => {
    const { verifyEd25519, signingPayload } = await import("./signature.ts");
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.integer({ min: 0, max: 63 }),
        fc.boolean(),
        (msg, i, corrupt) => {
          const sig = nacl.sign.detached(msg, kp.secretKey);
          if (corrupt) sig[i] = (sig[i] ?? 0) ^ 0x40;
          return verifyEd25519(msg, sig, kp.publicKey) === nacl.sign.detached.verify(msg, sig, kp.publicKey);
        },
      ),
      { numRuns: 30 },
    );
    expect(verifyEd25519(signingPayload("approve", FP, ID), new Uint8Array(63), kp.publicKey)).toBe(false);
  });
});
