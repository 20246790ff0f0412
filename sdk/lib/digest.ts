/**
 * The keyed digest custos stores beside a masked value it must still tell apart — an object's
 * name holding an identifier, in evidence records and approvals (`record-[MASKED:mrn]#<digest>`):
 * HMAC-SHA256 under the deployment's pseudonym key, 32 hex digits. Without the key it cannot be
 * reversed (an unkeyed hash of an MRN can: there are few of them); with it, an auditor finds the
 * records of one object (`custos audit query --name … --pseudonym-key …`).
 */
import { createHmac } from "node:crypto";

export function bindDigest(key: Uint8Array, value: string): string {
  return createHmac("sha256", key).update(`custos-bind:${value}`, "utf8").digest("hex").slice(0, 32);
}

/** A key file as custos writes it (base64 text) or raw bytes. */
export function parseKeyFile(content: Buffer): Uint8Array {
  const s = content.toString("utf8").trim();
  return new Uint8Array(/^[A-Za-z0-9+/=_-]+$/.test(s) ? Buffer.from(s, "base64") : content);
}
