/**
 * Request bodies: read with a size limit (413), hashed (the approval fingerprint and the
 * evidence bind the exact bytes), and decoded for the decision (JSON, YAML, apply-patch, and
 * the Kubernetes protobuf of kubectl's `create` generators); a body the policy cannot read is
 * refused with 415 rather than forwarded unseen. A protobuf body is forwarded as the JSON the
 * decision read (`application/json`), never as the original bytes.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { parse as parseYaml } from "yaml";
import type { Json } from "../../sdk/schema/config.ts";
import {
  decodeObject,
  PROTOBUF_MEDIA_TYPE,
  ProtobufMalformedError,
  ProtobufUnsupportedError,
} from "../codec/protobuf.ts";
import { badRequest, bodyTooLarge, GatewayError, unsupportedMediaType } from "../errors.ts";

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) throw bodyTooLarge(limit, declared);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw bodyTooLarge(limit, "unknown");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

export function sha256(buf: Buffer): string {
  return createHash("sha256").update(buf).digest("hex");
}

export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

const JSON_TYPES = new Set([
  "application/json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
  "application/json-patch+json",
]);
const YAML_TYPES = new Set(["application/yaml", "application/apply-patch+yaml"]);
export const PROTOBUF_TYPE = PROTOBUF_MEDIA_TYPE;

/** Decode a request body for the decision stage. Empty body: undefined. */
export function decodeBody(buf: Buffer, contentType: string | undefined): Json | undefined {
  const mt = mediaType(contentType);
  // a declared media type the policy could not read is refused even when the body is empty,
  // so what the decision saw and what the API server is told always agree
  if (mt !== "" && !JSON_TYPES.has(mt) && !YAML_TYPES.has(mt) && mt !== PROTOBUF_TYPE)
    throw unsupportedMediaType(mt);
  if (buf.length === 0) return undefined;
  const text = buf.toString("utf8");
  if (JSON_TYPES.has(mt) || mt === "") {
    try {
      return JSON.parse(text) as Json;
    } catch {
      throw badRequest(
        "BODY_MALFORMED",
        `custos: the request body is not valid JSON (content type "${mt || "none"}", ${buf.length} bytes); send a JSON object`,
      );
    }
  }
  if (YAML_TYPES.has(mt)) return decodeYaml(text, buf.length);
  return decodeProtobuf(buf);
}

/**
 * kube-apiserver reads YAML with sigs.k8s.io/yaml over go-yaml v2, a YAML 1.1 reader: `yes`,
 * `on`, `y` are true there, `0b1` and `1_000` numbers, `<<` merges — where YAML 1.2 (this
 * library's default) reads strings. The body is read both ways (1.1 without the timestamp and
 * base-60 forms go-yaml v2 leaves as strings); where the readings differ the policy cannot know
 * what the server will store, so the body is refused (fail closed), never decided on one reading.
 */
function decodeYaml(text: string, size: number): Json {
  let v12: string;
  let v11: string;
  try {
    v12 = JSON.stringify(parseYaml(text, { maxAliasCount: 100, merge: true }) ?? null);
    v11 = JSON.stringify(
      parseYaml(text, {
        version: "1.1",
        maxAliasCount: 100,
        merge: true,
        customTags: (tags) =>
          tags.filter(
            (t) => typeof t !== "object" || (t.format !== "TIME" && t.tag !== "tag:yaml.org,2002:timestamp"),
          ),
      }) ?? null,
    );
  } catch {
    throw badRequest(
      "BODY_MALFORMED",
      `custos: the request body is not valid YAML (${size} bytes); send one YAML document`,
    );
  }
  if (v11 !== v12)
    throw badRequest(
      "BODY_AMBIGUOUS",
      `custos: the YAML request body has unquoted values that YAML 1.1 (read by the API server) and YAML 1.2 read differently (such as yes/no/on/off/y/n, 0o17, 0b1 or 1_000); quote them, write true/false, or send JSON`,
    );
  return JSON.parse(v12) as Json;
}

/** What goes upstream for a decoded body: protobuf is re-encoded as the JSON the policy read. */
export function forwardBody(
  raw: Buffer,
  contentType: string | undefined,
  body: Json | undefined,
): { bytes: Buffer; contentType?: string } {
  if (raw.length === 0 || mediaType(contentType) !== PROTOBUF_TYPE) return { bytes: raw };
  return { bytes: Buffer.from(JSON.stringify(body)), contentType: "application/json" };
}

/** kubectl's protobuf request bodies (create generators) -> the JSON a JSON client would send. */
export function decodeProtobuf(buf: Buffer): Json {
  try {
    return decodeObject(buf) as Json;
  } catch (e) {
    if (e instanceof ProtobufUnsupportedError)
      throw new GatewayError(
        "PROTOBUF_UNSUPPORTED",
        415,
        "UnsupportedMediaType",
        `custos: the protobuf request body cannot be read by the policy (${e.message}); it was not forwarded. Send the object as JSON or YAML instead: write it with "kubectl create ... --dry-run=client -o yaml > obj.yaml" and run "kubectl apply -f obj.yaml" (or "kubectl create -f obj.yaml")`,
        { contentType: PROTOBUF_TYPE, kind: e.data.kind, path: e.data.path },
      );
    if (e instanceof ProtobufMalformedError)
      throw badRequest(
        "BODY_MALFORMED",
        `custos: the request body is not a valid Kubernetes protobuf message (${e.message}, ${buf.length} bytes); send JSON or YAML`,
        { path: e.data.path },
      );
    throw e;
  }
}
