import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeSelfReview, ProtobufError } from "./protobuf.ts";

// captured from kubectl 1.32: `kubectl auth can-i delete pods` (shared/reference/kubectl-1.32-wire.md)
const CAN_I_DELETE_PODS =
  "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577123f0a100a0012001a0022002a0032003800420012210a1f0a0764656661756c74120664656c6574651a0022002a04706f647332003a001a08080012001a0020001a002200";

describe("protobuf self reviews", () => {
  it("decodes kubectl's SelfSubjectAccessReview", () => {
    expect(decodeSelfReview(Buffer.from(CAN_I_DELETE_PODS, "hex"))).toEqual({
      kind: "SelfSubjectAccessReview",
      resourceAttributes: {
        namespace: "default",
        verb: "delete",
        group: "",
        version: "",
        resource: "pods",
        subresource: "",
        name: "",
      },
    });
  });
  it("rejects a missing magic and truncated input", () => {
    expect(() => decodeSelfReview(Buffer.from("0a00", "hex"))).toThrow(ProtobufError);
    const b = Buffer.from(CAN_I_DELETE_PODS, "hex");
    expect(() => decodeSelfReview(b.subarray(0, 40))).toThrow(ProtobufError);
  });
  it("never throws anything but ProtobufError on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const input = Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0]), Buffer.from(bytes)]);
        try {
          decodeSelfReview(input);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtobufError);
        }
      }),
    );
  });
});
