/**
 * Signed evidence checkpoints, in the spirit of C2SP tlog-checkpoint / signed-note:
 *
 *   custos-evidence/<gatewayId>\n
 *   <record count = last seq>\n
 *   <chain hash, 64 hex>\n
 *   <oid of the last record commit covered>\n
 *   <ISO 8601 UTC time>\n
 *   \n
 *   — <principal> <base64 of the raw 64-byte ed25519 signature>\n
 *
 * The signature covers every byte before the signature line (the five lines and the blank
 * line). The chain hash is h_n = sha256(h_{n-1} || sha256(line_n)), h_0 = 32 zero bytes,
 * line_n = the canonical JSON of record n WITHOUT its trailing newline.
 * The key is found through allowed_signers: the entries whose principals match <principal>.
 */
import { createHash, hash } from "node:crypto";
import { type AllowedSigner, principalMatches } from "./allowed-signers.ts";
import { fingerprint, type Signer, verifyEd25519 } from "./ed25519.ts";

export const CHECKPOINT_ORIGIN_PREFIX = "custos-evidence/";
const DASH = "\u2014";

export interface CheckpointBody {
  gatewayId: string;
  /** record count = last seq covered */
  count: number;
  /** 64 lower-case hex chars */
  chain: string;
  /** commit oid of the last record commit covered ("" when count is 0) */
  commit: string;
  /** ISO 8601 UTC */
  time: string;
}

export interface Checkpoint extends CheckpointBody {
  origin: string;
  principal: string;
  signature: Uint8Array;
  /** the exact signed bytes */
  signedText: string;
  text: string;
}

export class CheckpointError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "CheckpointError";
    this.code = code;
    this.data = data;
  }
}

export const CHAIN_ZERO = new Uint8Array(32);

/** one step of the record chain: sha256(prev || sha256(line)) */
export function chainStep(prev: Uint8Array, line: string | Uint8Array): Uint8Array {
  if (typeof hash === "function") {
    // one-shot hashing (Node >= 20.12) is ~2x faster than createHash for short inputs
    const leaf = hash("sha256", line, "buffer");
    return hash("sha256", Buffer.concat([prev, leaf], 64), "buffer");
  }
  const leaf = createHash("sha256").update(line).digest();
  return new Uint8Array(createHash("sha256").update(prev).update(leaf).digest());
}

/**
 * Advance the chain over a buffer of "\n"-terminated lines (a segment file), hashing each line
 * without its "\n". Same result as calling chainStep per line; no per-line string encoding.
 */
export function chainSegment(prev: Uint8Array, segment: Uint8Array): Uint8Array {
  const buf = Buffer.from(segment.buffer, segment.byteOffset, segment.length);
  const scratch = Buffer.alloc(64);
  scratch.set(prev, 0);
  let start = 0;
  let h: Uint8Array = prev;
  const oneShot = typeof hash === "function";
  while (start < buf.length) {
    let nl = buf.indexOf(0x0a, start);
    if (nl < 0) nl = buf.length;
    const line = buf.subarray(start, nl);
    const leaf = oneShot ? hash("sha256", line, "buffer") : createHash("sha256").update(line).digest();
    scratch.set(leaf, 32);
    h = oneShot ? hash("sha256", scratch, "buffer") : createHash("sha256").update(scratch).digest();
    scratch.set(h, 0);
    start = nl + 1;
  }
  return new Uint8Array(h);
}

export function checkpointSignedText(body: CheckpointBody): string {
  if (!/^[0-9a-f]{64}$/.test(body.chain))
    throw new CheckpointError("CHECKPOINT_CHAIN", `chain must be 64 hex chars, found "${body.chain}"`);
  if (/\s/.test(body.gatewayId) || body.gatewayId === "") {
    throw new CheckpointError(
      "CHECKPOINT_GATEWAY_ID",
      `gateway id "${body.gatewayId}" must be non-empty without whitespace`,
    );
  }
  return `${CHECKPOINT_ORIGIN_PREFIX}${body.gatewayId}\n${body.count}\n${body.chain}\n${body.commit}\n${body.time}\n\n`;
}

export function signCheckpoint(signer: Signer, principal: string, body: CheckpointBody): string {
  if (/\s/.test(principal) || principal === "") {
    throw new CheckpointError(
      "CHECKPOINT_PRINCIPAL",
      `principal "${principal}" must be non-empty without whitespace`,
    );
  }
  const signed = checkpointSignedText(body);
  const sig = signer.sign(new TextEncoder().encode(signed));
  return `${signed}${DASH} ${principal} ${Buffer.from(sig).toString("base64")}\n`;
}

export function parseCheckpoint(text: string): Checkpoint {
  const blank = text.indexOf("\n\n");
  if (blank < 0)
    throw new CheckpointError(
      "CHECKPOINT_SYNTAX",
      "no blank line between the checkpoint body and its signature",
    );
  const signedText = text.slice(0, blank + 2);
  const lines = signedText.split("\n").slice(0, -2);
  const sigLines = text
    .slice(blank + 2)
    .split("\n")
    .filter((l) => l !== "");
  if (lines.length !== 5)
    throw new CheckpointError("CHECKPOINT_SYNTAX", `expected 5 body lines, found ${lines.length}`);
  const [origin, countText, chain, commit, time] = lines as [string, string, string, string, string];
  if (!origin.startsWith(CHECKPOINT_ORIGIN_PREFIX)) {
    throw new CheckpointError(
      "CHECKPOINT_SYNTAX",
      `origin "${origin}" must start with "${CHECKPOINT_ORIGIN_PREFIX}"`,
    );
  }
  if (!/^(0|[1-9][0-9]*)$/.test(countText))
    throw new CheckpointError("CHECKPOINT_SYNTAX", `bad record count "${countText}"`);
  if (!/^[0-9a-f]{64}$/.test(chain))
    throw new CheckpointError("CHECKPOINT_SYNTAX", `bad chain hash "${chain}"`);
  if (!/^([0-9a-f]{40}|[0-9a-f]{64})?$/.test(commit))
    throw new CheckpointError("CHECKPOINT_SYNTAX", `bad commit oid "${commit}"`);
  const sigLine = sigLines[0];
  const m = sigLine === undefined ? null : /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(sigLine);
  if (!m)
    throw new CheckpointError("CHECKPOINT_SYNTAX", 'expected a signature line "— <principal> <base64>"');
  const signature = new Uint8Array(Buffer.from(m[2]!, "base64"));
  return {
    origin,
    gatewayId: origin.slice(CHECKPOINT_ORIGIN_PREFIX.length),
    count: Number(countText),
    chain,
    commit,
    time,
    principal: m[1]!,
    signature,
    signedText,
    text,
  };
}

export interface CheckpointVerifyResult {
  ok: boolean;
  checkpoint?: Checkpoint;
  /** SHA256:... of the key that verified */
  fingerprint?: string;
  reason?: "malformed" | "unknown-principal" | "bad-signature";
  detail?: string;
}

/** Parse and verify a checkpoint against allowed_signers entries (by its principal). */
export function verifyCheckpoint(text: string, allowed: readonly AllowedSigner[]): CheckpointVerifyResult {
  let cp: Checkpoint;
  try {
    cp = parseCheckpoint(text);
  } catch (err) {
    return { ok: false, reason: "malformed", detail: err instanceof Error ? err.message : String(err) };
  }
  const candidates = allowed.filter(
    (a) => a.publicKey && !a.options["cert-authority"] && principalMatches(a.principals, cp.principal),
  );
  if (candidates.length === 0) {
    return {
      ok: false,
      checkpoint: cp,
      reason: "unknown-principal",
      detail: `no allowed signer for principal "${cp.principal}"`,
    };
  }
  const data = new TextEncoder().encode(cp.signedText);
  for (const c of candidates) {
    if (verifyEd25519(c.publicKey!, data, cp.signature))
      return { ok: true, checkpoint: cp, fingerprint: fingerprint(c.publicKey!) };
  }
  return {
    ok: false,
    checkpoint: cp,
    reason: "bad-signature",
    detail: `the signature does not verify with the key(s) of "${cp.principal}"`,
  };
}
