/**
 * Reviewers' OpenSSH ed25519 keys, in the shapes the approval code uses (a NaCl 64-byte secret
 * key for tweetnacl's sign.detached). Parsing and formatting are the signer module's
 * (`gitops/signer`): one implementation of the OpenSSH formats, tested against ssh-keygen.
 * Its errors are re-raised as KeyFormatError (code E_APPROVAL_KEY_FORMAT) with the same fix text.
 */

import { samePublicKey as sameKey } from "../signer/ed25519.ts";
import {
  fingerprint,
  formatOpenSshPrivateKey,
  parseOpenSshPrivateKey,
  parseOpenSshPublicKey,
  publicKeyToOpenSsh,
} from "../signer/index.ts";
import { KeyFormatError } from "./errors.ts";

export interface Ed25519PublicKey {
  /** 32-byte raw public key */
  publicKey: Uint8Array;
  comment: string;
}

export interface Ed25519PrivateKey extends Ed25519PublicKey {
  /** 64-byte NaCl secret key (seed || public key), as tweetnacl's sign.detached takes it */
  secretKey: Uint8Array;
}

function asKeyFormatError<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as { code?: string; message?: string; data?: Record<string, unknown> };
    throw new KeyFormatError(`${what}: ${err.message ?? String(e)}`, {
      ...(err.data ?? {}),
      cause: err.code ?? "",
    });
  }
}

/** Parse "ssh-ed25519 AAAA... comment". */
export function parsePublicKey(line: string): Ed25519PublicKey {
  return asKeyFormatError("the reviewer's public key", () => parseOpenSshPublicKey(line));
}

/** "ssh-ed25519 AAAA... comment" (comment omitted when empty). */
export function formatPublicKey(publicKey: Uint8Array, comment = ""): string {
  const base = publicKeyToOpenSsh(publicKey);
  return comment ? `${base} ${comment}` : base;
}

/** "SHA256:..." as `ssh-keygen -l` prints it. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return fingerprint(publicKey);
}

/** Compare two public keys by their raw bytes (comments ignored). */
export function samePublicKey(a: Uint8Array, b: Uint8Array): boolean {
  return sameKey(a, b);
}

/** Parse an unencrypted OpenSSH ed25519 private key file (what `ssh-keygen -t ed25519 -N ""` or `custos keygen` writes). */
export function parsePrivateKey(pem: string): Ed25519PrivateKey {
  if (!pem.includes("-----BEGIN OPENSSH PRIVATE KEY-----"))
    throw new KeyFormatError(
      'expected an OpenSSH private key ("-----BEGIN OPENSSH PRIVATE KEY-----"), found something else; pass the private key file made by ssh-keygen -t ed25519 or custos keygen',
    );
  const k = asKeyFormatError("the private key", () => parseOpenSshPrivateKey(pem));
  const secretKey = new Uint8Array(64);
  secretKey.set(k.seed, 0);
  secretKey.set(k.publicKey, 32);
  return { publicKey: k.publicKey, secretKey, comment: k.comment };
}

/** Write an unencrypted OpenSSH private key file for a NaCl key pair (used by tests and the demo). */
export function formatPrivateKey(
  key: { secretKey: Uint8Array; publicKey: Uint8Array },
  comment = "",
  checkInt = 0x2a2a2a2a,
): string {
  return formatOpenSshPrivateKey(key.secretKey.subarray(0, 32), comment, checkInt);
}
