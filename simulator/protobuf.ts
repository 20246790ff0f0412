/**
 * Just enough of Kubernetes' protobuf encoding to read the bodies kubectl sends as protobuf:
 * the SelfSubjectAccessReview/SelfSubjectRulesReview of `auth can-i`, and the objects of
 * `kubectl create namespace|configmap|secret|serviceaccount|role|rolebinding|clusterrole|
 * clusterrolebinding|deployment|service` (magic "k8s\0", then a runtime.Unknown envelope:
 * 1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType). Field numbers
 * come from k8s.io/api's generated.proto files; objects are decoded by the gateway's codec
 * (gateway/codec/protobuf.ts, strict: unknown fields are refused). Replies are JSON, which
 * kubectl accepts because its Accept lists it.
 */
import { decodeObject as decodeK8sObject, K8S_MAGIC } from "../gateway/codec/protobuf.ts";
import { errors, type JsonObject } from "./errors.ts";

export const PROTOBUF_MAGIC = Buffer.from(K8S_MAGIC);

type Fields = Map<number, Array<Buffer | number>>;

function readVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7;
    if (shift > 63) throw new Error("varint too long");
  }
}

function parse(buf: Buffer): Fields {
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let value: Buffer | number;
    if (wire === 0) {
      [value, pos] = readVarint(buf, pos);
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      if (p2 + len > buf.length) throw new Error("truncated field");
      value = buf.subarray(p2, p2 + len);
      pos = p2 + len;
    } else if (wire === 1) {
      value = 0;
      pos += 8;
    } else if (wire === 5) {
      value = 0;
      pos += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(value);
    out.set(field, list);
  }
  return out;
}

function bytes(f: Fields, n: number): Buffer | undefined {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? v : undefined;
}

function str(f: Fields, n: number): string {
  return bytes(f, n)?.toString("utf8") ?? "";
}

/** Decode a protobuf-encoded SelfSubjectAccessReview or SelfSubjectRulesReview into its JSON shape. */
export function decodeReview(body: Buffer): JsonObject {
  try {
    if (!body.subarray(0, 4).equals(PROTOBUF_MAGIC)) throw new Error("missing k8s\\0 magic");
    const unknown = parse(body.subarray(4));
    const typeMeta = parse(bytes(unknown, 1) ?? Buffer.alloc(0));
    const apiVersion = str(typeMeta, 1);
    const kind = str(typeMeta, 2);
    const raw = parse(bytes(unknown, 2) ?? Buffer.alloc(0));
    const spec = parse(bytes(raw, 2) ?? Buffer.alloc(0));
    if (kind === "SelfSubjectAccessReview") {
      const out: JsonObject = {};
      const ra = bytes(spec, 1);
      if (ra) {
        const r = parse(ra);
        out.resourceAttributes = {
          namespace: str(r, 1),
          verb: str(r, 2),
          group: str(r, 3),
          version: str(r, 4),
          resource: str(r, 5),
          subresource: str(r, 6),
          name: str(r, 7),
        };
      }
      const na = bytes(spec, 2);
      if (na) {
        const r = parse(na);
        out.nonResourceAttributes = { path: str(r, 1), verb: str(r, 2) };
      }
      return { apiVersion, kind, metadata: {}, spec: out };
    }
    if (kind === "SelfSubjectRulesReview")
      return { apiVersion, kind, metadata: {}, spec: { namespace: str(spec, 1) } };
    if (kind === "SelfSubjectReview") return { apiVersion, kind, metadata: {} };
    throw new Error(`kind ${JSON.stringify(kind)} is not decoded`);
  } catch (e) {
    throw errors.unsupportedMediaType(
      `application/vnd.kubernetes.protobuf (${e instanceof Error ? e.message : String(e)})`,
    );
  }
}

// ---- the kinds `kubectl create <generator>` sends: the gateway's codec (one decoder for both) ----

/** Decode a protobuf-encoded object of one of the kinds kubectl's generators create; 415 for any other. */
export function decodeObject(body: Buffer): JsonObject {
  try {
    return decodeK8sObject(body) as JsonObject;
  } catch (e) {
    throw errors.unsupportedMediaType(
      `application/vnd.kubernetes.protobuf (${e instanceof Error ? e.message : String(e)}; send JSON instead)`,
    );
  }
}
