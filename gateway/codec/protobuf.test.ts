import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeMessage, encodeObject } from "./encoder.ts";
import {
  decodeEnvelope,
  decodeObject,
  type FieldDef,
  type JsonObject,
  type JsonValue,
  KIND_SCHEMAS,
  ProtobufMalformedError,
  ProtobufUnsupportedError,
  type Schema,
} from "./protobuf.ts";

const str = fc.string({ minLength: 1, maxLength: 12, unit: "grapheme" });
const int = fc.integer({ min: -2_000_000_000, max: 2_000_000_000 });
const b64 = fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString("base64"));
const time = fc
  .integer({ min: 1, max: 4_000_000_000 })
  .map((s) => new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"));

/** values the decoder outputs as they were encoded: non-zero scalars unless the field is a pointer */
function valueArb(def: FieldDef, depth: number): fc.Arbitrary<JsonValue> {
  const t = def.type;
  const one = (): fc.Arbitrary<JsonValue> => {
    if (t === "string" || t === "quantity") return def.repeated ? fc.string({ maxLength: 8 }) : str;
    if (t === "int") return def.ptr ? int : int.filter((x) => x !== 0);
    if (t === "bool") return def.ptr ? fc.boolean() : fc.constant(true);
    if (t === "bytes") return b64.filter((x) => x !== "");
    if (t === "time") return time;
    if (t === "intOrString") return fc.oneof(int, str);
    if (t === "zero") return fc.constant(null);
    if ("msg" in t) return objectArb(t.msg(), depth + 1);
    return fc.dictionary(str, t.map === "bytes" ? b64 : fc.string({ maxLength: 8 }), {
      minKeys: 1,
      maxKeys: 3,
    });
  };
  return def.repeated ? fc.array(one(), { minLength: 1, maxLength: 3 }) : one();
}

function objectArb(schema: Schema, depth = 0): fc.Arbitrary<JsonObject> {
  const rec: Record<string, fc.Arbitrary<JsonValue>> = {};
  for (const def of Object.values(schema)) {
    if (def.type === "zero") continue;
    if (depth > 6 && typeof def.type === "object") continue;
    rec[def.name] = valueArb(def, depth);
  }
  return fc.record(rec, { requiredKeys: [] }) as fc.Arbitrary<JsonObject>;
}

describe("gateway/codec/protobuf", () => {
  it("decodes what the encoder wrote, for random objects of every kind it reads", () => {
    const kinds = Object.entries(KIND_SCHEMAS);
    fc.assert(
      fc.property(
        fc.constantFrom(...kinds).chain(([key, schema]) =>
          objectArb(schema).map((o) => {
            const i = key.lastIndexOf("/");
            return { apiVersion: key.slice(0, i), kind: key.slice(i + 1), ...o } as JsonObject;
          }),
        ),
        (obj) => {
          expect(decodeObject(encodeObject(obj))).toEqual(obj);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses an unknown field anywhere in a known message (fail closed)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 30, max: 5000 }), (no) => {
        const body = encodeObject(
          { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } },
          { extraMetaField: no },
        );
        expect(() => decodeObject(body)).toThrow(ProtobufUnsupportedError);
      }),
      { numRuns: 50 },
    );
  });

  it("refuses kinds it does not read, non-zero values in unmodelled fields, and malformed bytes", () => {
    expect(() =>
      decodeObject(encodeObject({ apiVersion: "v1", kind: "ConfigMap" }).fill(0x41, 4, 5)),
    ).toThrow();
    const ingress = Buffer.from("k8s\0\x0a\x1f\x0a\x14networking.k8s.io/v1\x12\x07Ingress", "latin1");
    expect(() => decodeObject(ingress)).toThrow(ProtobufUnsupportedError);
    // Deployment.status (field 3) carrying replicas = 5: not read, so refused
    const dep = KIND_SCHEMAS["apps/v1/Deployment"]!;
    const raw = Buffer.concat([
      Buffer.from(encodeMessage({ metadata: { name: "d" } }, dep)),
      Buffer.from([0x1a, 0x02, 0x10, 0x05]),
    ]);
    const typeMeta = Buffer.from("\x0a\x07apps/v1\x12\x0aDeployment", "latin1");
    const env = Buffer.concat([
      Buffer.from("k8s\0", "latin1"),
      Buffer.from([0x0a, typeMeta.length]),
      typeMeta,
      Buffer.from([0x12, raw.length]),
      raw,
    ]);
    expect(decodeEnvelope(env).kind).toBe("Deployment");
    expect(() => decodeObject(env)).toThrow(/status is set/);
    expect(() => decodeObject(Buffer.from("k8s\0\x0a\x05ab", "latin1"))).toThrow(ProtobufMalformedError);
    expect(() => decodeObject(Buffer.from("{}"))).toThrow(ProtobufMalformedError);
  });

  it("never throws anything but its two errors on random bytes after the magic", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeObject(Buffer.concat([Buffer.from("k8s\0", "latin1"), b]));
        } catch (e) {
          expect(e instanceof ProtobufMalformedError || e instanceof ProtobufUnsupportedError).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
