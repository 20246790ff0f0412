/**
 * A small schema-driven protobuf ENCODER for the kinds in KIND_SCHEMAS, used by the tests
 * (property tests encode random objects and decode them back; e2e tests send protobuf bodies
 * kubectl's generators cannot produce, e.g. a privileged container). The gateway never encodes
 * protobuf: it forwards JSON.
 */
import {
  type FieldDef,
  type JsonObject,
  type JsonValue,
  K8S_MAGIC,
  KIND_SCHEMAS,
  type Schema,
} from "./protobuf.ts";

const enc = new TextEncoder();

function varint(v: bigint): number[] {
  let x = v & 0xffff_ffff_ffff_ffffn;
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return out;
}

const key = (no: number, wire: number) => varint(BigInt(no * 8 + wire));
const lenField = (no: number, b: Uint8Array) => [...key(no, 2), ...varint(BigInt(b.length)), ...b];
const intField = (no: number, v: number | boolean) => [
  ...key(no, 0),
  ...varint(BigInt(typeof v === "boolean" ? (v ? 1 : 0) : v)),
];

function encodeValue(no: number, def: FieldDef, v: JsonValue): number[] {
  const t = def.type;
  if (t === "int" || t === "bool") return intField(no, v as number | boolean);
  if (t === "string" || t === "quantity") return lenField(no, enc.encode(String(v)));
  if (t === "bytes") return lenField(no, Buffer.from(String(v), "base64"));
  if (t === "time") {
    const secs = v === null ? 0 : Math.floor(Date.parse(String(v)) / 1000);
    return lenField(no, Uint8Array.from(secs === 0 ? [] : intField(1, secs)));
  }
  if (t === "intOrString") {
    const inner =
      typeof v === "string"
        ? [...intField(1, 1), ...lenField(3, enc.encode(v))]
        : [...intField(1, 0), ...intField(2, v as number)];
    return lenField(no, Uint8Array.from(inner));
  }
  if (t === "zero") return lenField(no, new Uint8Array());
  if ("msg" in t) return lenField(no, encodeMessage(v as JsonObject, t.msg()));
  // map: one entry per key
  const out: number[] = [];
  for (const [k, x] of Object.entries(v as JsonObject)) {
    const val = t.map === "bytes" ? Buffer.from(String(x), "base64") : enc.encode(String(x));
    out.push(...lenField(no, Uint8Array.from([...lenField(1, enc.encode(k)), ...lenField(2, val)])));
  }
  return out;
}

export function encodeMessage(obj: JsonObject, schema: Schema, extraField?: number): Uint8Array {
  const out: number[] = [];
  const byName = new Map(Object.entries(schema).map(([no, d]) => [d.name, { no: Number(no), d }]));
  for (const [name, v] of Object.entries(obj)) {
    const e = byName.get(name);
    if (!e) throw new Error(`encoder: no field ${name} in the schema`);
    if (e.d.repeated) for (const x of v as JsonValue[]) out.push(...encodeValue(e.no, e.d, x));
    else out.push(...encodeValue(e.no, e.d, v));
  }
  if (extraField !== undefined) out.push(...lenField(extraField, enc.encode("unread")));
  return Uint8Array.from(out);
}

/**
 * Encode `{apiVersion, kind, ...fields}` in the Kubernetes envelope. `extraMetaField` appends
 * a field with that number to metadata (to test that unknown fields are refused).
 */
export function encodeObject(obj: JsonObject, o: { extraMetaField?: number } = {}): Buffer {
  const { apiVersion, kind, ...rest } = obj;
  const schema = KIND_SCHEMAS[`${String(apiVersion)}/${String(kind)}`];
  if (!schema) throw new Error(`encoder: no schema for ${String(apiVersion)}/${String(kind)}`);
  let raw: Uint8Array;
  if (o.extraMetaField !== undefined) {
    const { metadata, ...others } = rest;
    const metaDef = schema[1]!;
    const metaSchema = (metaDef.type as { msg: () => Schema }).msg();
    raw = Uint8Array.from([
      ...lenField(1, encodeMessage((metadata ?? {}) as JsonObject, metaSchema, o.extraMetaField)),
      ...encodeMessage(others, schema),
    ]);
  } else raw = encodeMessage(rest, schema);
  const typeMeta = Uint8Array.from([
    ...lenField(1, enc.encode(String(apiVersion))),
    ...lenField(2, enc.encode(String(kind))),
  ]);
  const unknown = [
    ...lenField(1, typeMeta),
    ...lenField(2, raw),
    ...lenField(3, new Uint8Array()),
    ...lenField(4, new Uint8Array()),
  ];
  return Buffer.from(Uint8Array.from([...K8S_MAGIC, ...unknown]));
}
