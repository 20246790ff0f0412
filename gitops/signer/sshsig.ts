/**
 * SSHSIG signatures (OpenSSH PROTOCOL.sshsig): what `ssh-keygen -Y sign` writes and what
 * git's `gpg.format=ssh` verifies. ed25519 keys, sha512 message hash.
 *
 * Signed data:  "SSHSIG" || string namespace || string reserved("") || string "sha512" || string H(message)
 * Blob:         "SSHSIG" || uint32 1 || string pubkey-blob || string namespace || string reserved
 *               || string "sha512" || string (string "ssh-ed25519" || string sig64)
 */
import { createHash } from "node:crypto";
import { type AllowedSigner, principalsForKey, signerInvalidAt } from "./allowed-signers.ts";
import {
  fingerprint,
  parseOpenSshPublicKey,
  publicKeyBlob,
  publicKeyFromBlob,
  publicKeyToOpenSsh,
  SSH_ED25519,
  type Signer,
  verifyEd25519,
} from "./ed25519.ts";
import { bytesEqual, SshReader, SshWriter, unarmor, wrapBase64 } from "./wire.ts";

const MAGIC = new TextEncoder().encode("SSHSIG");
const SIG_VERSION = 1;
const HASH = "sha512";
const LABEL = "SSH SIGNATURE";

function toBytes(message: Uint8Array | string): Uint8Array {
  return typeof message === "string" ? new TextEncoder().encode(message) : message;
}

/** the bytes the key actually signs (PROTOCOL.sshsig, "Signed Data") */
export function sshsigSignedData(
  message: Uint8Array | string,
  namespace: string,
  hashAlgorithm = HASH,
): Uint8Array {
  const digest = createHash(hashAlgorithm).update(toBytes(message)).digest();
  return new SshWriter().raw(MAGIC).string(namespace).string("").string(hashAlgorithm).string(digest).bytes();
}

/** Sign `message` as `ssh-keygen -Y sign -n <namespace>` does; returns the armoured text ending in "\n". */
export function sshsigSign(signer: Signer, message: Uint8Array | string, namespace: string): string {
  if (namespace === "")
    throw new SshsigError("SSHSIG_NAMESPACE", 'the SSHSIG namespace must not be empty (git uses "git")', {});
  const signature = signer.sign(sshsigSignedData(message, namespace));
  const blob = new SshWriter()
    .raw(MAGIC)
    .uint32(SIG_VERSION)
    .string(publicKeyBlob(signer.publicKey))
    .string(namespace)
    .string("")
    .string(HASH)
    .string(new SshWriter().string(SSH_ED25519).string(signature).bytes())
    .bytes();
  return `-----BEGIN ${LABEL}-----\n${wrapBase64(blob)}\n-----END ${LABEL}-----\n`;
}

export interface ParsedSshsig {
  publicKey: Uint8Array;
  namespace: string;
  hashAlgorithm: string;
  signature: Uint8Array;
}

export class SshsigError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown>) {
    super(message);
    this.name = "SshsigError";
    this.code = code;
    this.data = data;
  }
}

export function parseSshsig(armored: string): ParsedSshsig {
  const bytes = unarmor(armored, LABEL);
  const r = new SshReader(bytes, "SSH signature");
  if (!bytesEqual(r.raw(MAGIC.length), MAGIC)) {
    throw new SshsigError("SSHSIG_MAGIC", 'the signature blob does not start with "SSHSIG"', {});
  }
  const version = r.uint32();
  if (version !== SIG_VERSION) {
    throw new SshsigError("SSHSIG_VERSION", `expected SSHSIG version 1, found ${version}`, { version });
  }
  const publicKey = publicKeyFromBlob(r.string());
  const namespace = r.text();
  r.string(); // reserved
  const hashAlgorithm = r.text();
  const sig = new SshReader(r.string(), "SSH signature value");
  const sigType = sig.text();
  if (sigType !== SSH_ED25519) {
    throw new SshsigError("SSHSIG_KEY_TYPE", `expected an ssh-ed25519 signature, found ${sigType}`, {
      sigType,
    });
  }
  const signature = new Uint8Array(sig.string());
  return { publicKey, namespace, hashAlgorithm, signature };
}

export interface SshsigVerifyResult {
  ok: boolean;
  /** the signing key as `ssh-ed25519 AAAA...` (when the blob parsed) */
  publicKey: string;
  /** SHA256:... of the signing key */
  fingerprint: string;
  /** principals the allowed keys grant this key (allowed_signers entries), empty when given bare keys */
  principals: string[];
  namespace: string;
  /**
   * why it failed: stable codes "malformed" | "namespace" | "hash" | "bad-signature" |
   * "untrusted-key" | "expired-key" (allowed, but not at the verify time: valid-after / valid-before)
   */
  reason?: "malformed" | "namespace" | "hash" | "bad-signature" | "untrusted-key" | "expired-key";
  detail?: string;
}

/**
 * Verify an armoured SSHSIG over `message` in `namespace`. `allowedKeys` are either
 * allowed_signers entries (then `principals` says who signed) or OpenSSH public key strings.
 * The signature must verify AND the key must be one of the allowed keys.
 */
export function sshsigVerify(
  armored: string,
  message: Uint8Array | string,
  namespace: string,
  allowedKeys: readonly (AllowedSigner | string)[],
  /** when the signature was made (seconds since the epoch): allowed_signers lines not valid then do not count */
  opts: { verifyTime?: number } = {},
): SshsigVerifyResult {
  let parsed: ParsedSshsig;
  try {
    parsed = parseSshsig(armored);
  } catch (err) {
    return {
      ok: false,
      publicKey: "",
      fingerprint: "",
      principals: [],
      namespace: "",
      reason: "malformed",
      detail: err instanceof Error ? err.message : String(err),
    };
  }
  const base = {
    publicKey: publicKeyToOpenSsh(parsed.publicKey),
    fingerprint: fingerprint(parsed.publicKey),
    namespace: parsed.namespace,
  };
  if (parsed.namespace !== namespace) {
    return {
      ok: false,
      ...base,
      principals: [],
      reason: "namespace",
      detail: `signed for namespace "${parsed.namespace}", expected "${namespace}"`,
    };
  }
  if (parsed.hashAlgorithm !== "sha512" && parsed.hashAlgorithm !== "sha256") {
    return {
      ok: false,
      ...base,
      principals: [],
      reason: "hash",
      detail: `unsupported hash ${parsed.hashAlgorithm}`,
    };
  }
  const valid = verifyEd25519(
    parsed.publicKey,
    sshsigSignedData(message, parsed.namespace, parsed.hashAlgorithm),
    parsed.signature,
  );
  if (!valid)
    return {
      ok: false,
      ...base,
      principals: [],
      reason: "bad-signature",
      detail: "the signature does not match the message",
    };
  const entries = allowedKeys.filter((k): k is AllowedSigner => typeof k !== "string");
  const principals = principalsForKey(entries, parsed.publicKey, namespace, opts.verifyTime).flatMap(
    (e) => e.principals,
  );
  const bareMatch = allowedKeys.some((k) => {
    if (typeof k !== "string") return false;
    try {
      return bytesEqual(parseOpenSshPublicKey(k).publicKey, parsed.publicKey);
    } catch {
      return false;
    }
  });
  if (principals.length === 0 && !bareMatch) {
    const vt = opts.verifyTime;
    const expired =
      vt === undefined
        ? []
        : principalsForKey(entries, parsed.publicKey, namespace).map((e) => signerInvalidAt(e, vt));
    if (expired.length > 0)
      return {
        ok: false,
        ...base,
        principals: [],
        reason: "expired-key",
        detail: `key ${base.fingerprint} is not valid when the signature was made: ${expired.join("; ")}`,
      };
    return {
      ok: false,
      ...base,
      principals: [],
      reason: "untrusted-key",
      detail: `key ${base.fingerprint} is not among the allowed signers`,
    };
  }
  return { ok: true, ...base, principals };
}
