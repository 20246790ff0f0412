/**
 * Request bodies: read with a size limit (413), hashed (the approval fingerprint and the
 * evidence bind the exact bytes), and decoded for the decision (JSON, YAML, apply-patch);
 * a body the policy cannot read is refused with 415 rather than forwarded unseen.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { parse as parseYaml } from "yaml";
import type { Json } from "../../sdk/schema/config.ts";
import { badRequest, bodyTooLarge, unsupportedMediaType } from "../errors.ts";

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
export const PROTOBUF_TYPE = "application/vnd.kubernetes.protobuf";

/** Decode a request body for the decision stage. Empty body: undefined. */
export function decodeBody(buf: Buffer, contentType: string | undefined): Json | undefined {
  if (buf.length === 0) return undefined;
  const mt = mediaType(contentType);
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
  if (YAML_TYPES.has(mt)) {
    try {
      const v = parseYaml(text, { maxAliasCount: 100 }) as unknown;
      return JSON.parse(JSON.stringify(v ?? null)) as Json;
    } catch {
      throw badRequest(
        "BODY_MALFORMED",
        `custos: the request body is not valid YAML (${buf.length} bytes); send one YAML document`,
      );
    }
  }
  throw unsupportedMediaType(mt);
}
