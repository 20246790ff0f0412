/**
 * Just enough protobuf to read what kubectl sends for `auth can-i`: the Kubernetes protobuf
 * envelope (magic `k8s\0` + runtime.Unknown{typeMeta, raw, contentEncoding, contentType},
 * k8s.io/apimachinery/pkg/runtime/generated.proto) around a SelfSubjectAccessReview or a
 * SelfSubjectRulesReview (k8s.io/api/authorization/v1/generated.proto). Anything else is
 * rejected; the decoder never reads past its input.
 */

export class ProtobufError extends Error {
  readonly code = "PROTOBUF_MALFORMED";
  readonly data: Record<string, unknown> = {};
}

type Field = { no: number; wire: number; varint?: number; bytes?: Uint8Array };

function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new ProtobufError("protobuf: truncated varint");
    const b = buf[pos++] as number;
    if (shift < 49) result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7;
  }
  throw new ProtobufError("protobuf: varint too long");
}

export function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (no === 0) throw new ProtobufError("protobuf: field number 0");
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      pos = p2;
      out.push({ no, wire, varint: v });
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      if (p2 + len > buf.length) throw new ProtobufError("protobuf: length past end of message");
      out.push({ no, wire, bytes: buf.subarray(p2, p2 + len) });
      pos = p2 + len;
    } else if (wire === 1) {
      if (pos + 8 > buf.length) throw new ProtobufError("protobuf: truncated fixed64");
      pos += 8;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) throw new ProtobufError("protobuf: truncated fixed32");
      pos += 4;
    } else throw new ProtobufError(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

const dec = new TextDecoder("utf-8", { fatal: true });
function str(fields: Field[], no: number): string {
  const f = fields.filter((x) => x.no === no && x.bytes).pop();
  if (!f?.bytes) return "";
  try {
    return dec.decode(f.bytes);
  } catch {
    throw new ProtobufError("protobuf: invalid UTF-8 string");
  }
}
function msg(fields: Field[], no: number): Field[] | undefined {
  const f = fields.filter((x) => x.no === no && x.bytes).pop();
  return f?.bytes ? readFields(f.bytes) : undefined;
}

export const K8S_MAGIC = Uint8Array.from([0x6b, 0x38, 0x73, 0x00]);

export interface Unknown {
  apiVersion: string;
  kind: string;
  raw: Uint8Array;
}

export function decodeEnvelope(body: Uint8Array): Unknown {
  if (body.length < 4 || !K8S_MAGIC.every((b, i) => body[i] === b))
    throw new ProtobufError("protobuf: missing the k8s\\0 envelope magic");
  const top = readFields(body.subarray(4));
  const tm = msg(top, 1) ?? [];
  const raw = top.filter((x) => x.no === 2 && x.bytes).pop()?.bytes ?? new Uint8Array();
  const enc = str(top, 3);
  if (enc !== "") throw new ProtobufError(`protobuf: unsupported contentEncoding "${enc}"`);
  return { apiVersion: str(tm, 1), kind: str(tm, 2), raw };
}

export interface ResourceAttributes {
  namespace: string;
  verb: string;
  group: string;
  version: string;
  resource: string;
  subresource: string;
  name: string;
}

export type SelfReview =
  | {
      kind: "SelfSubjectAccessReview";
      resourceAttributes?: ResourceAttributes;
      nonResourceAttributes?: { path: string; verb: string };
    }
  | { kind: "SelfSubjectRulesReview"; namespace: string };

/** Decode an authorization.k8s.io/v1 SelfSubjectAccessReview or SelfSubjectRulesReview from protobuf. */
export function decodeSelfReview(body: Uint8Array): SelfReview {
  const u = decodeEnvelope(body);
  if (u.apiVersion !== "authorization.k8s.io/v1")
    throw new ProtobufError(`protobuf: expected authorization.k8s.io/v1, found "${u.apiVersion}"`);
  const obj = readFields(u.raw);
  const spec = msg(obj, 2) ?? [];
  if (u.kind === "SelfSubjectAccessReview") {
    const out: SelfReview = { kind: "SelfSubjectAccessReview" };
    const ra = msg(spec, 1);
    if (ra)
      out.resourceAttributes = {
        namespace: str(ra, 1),
        verb: str(ra, 2),
        group: str(ra, 3),
        version: str(ra, 4),
        resource: str(ra, 5),
        subresource: str(ra, 6),
        name: str(ra, 7),
      };
    const nra = msg(spec, 2);
    if (nra) out.nonResourceAttributes = { path: str(nra, 1), verb: str(nra, 2) };
    return out;
  }
  if (u.kind === "SelfSubjectRulesReview") return { kind: "SelfSubjectRulesReview", namespace: str(spec, 1) };
  throw new ProtobufError(
    `protobuf: expected SelfSubjectAccessReview or SelfSubjectRulesReview, found "${u.kind}"`,
  );
}
