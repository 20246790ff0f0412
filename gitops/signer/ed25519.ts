/**
 * ed25519 signers. Two implementations of one interface: `nodeSigner` (node:crypto, the
 * fast path, ~0.04 ms per signature) and `naclSigner` (tweetnacl, portable: the reviewer's
 * CLI, browsers). ed25519 signatures are deterministic (RFC 8032 section 5.1.6), so both give
 * byte-identical output for the same seed and message; a golden test holds them to it.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import nacl from "tweetnacl";
import { bytesEqual, SshReader, SshWriter, WireFormatError } from "./wire.ts";

export const SSH_ED25519 = "ssh-ed25519";

export interface Signer {
  /** `ssh-ed25519 <base64 of the public key blob>` (no comment) */
  publicKeyOpenSsh: string;
  /** the raw 32-byte public key (additive to the brief's contract) */
  publicKey: Uint8Array;
  /** a raw 64-byte ed25519 signature over `data` */
  sign(data: Uint8Array): Uint8Array;
}

export class KeyError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = "KeyError";
    this.code = code;
    this.data = data;
  }
}

// RFC 8410 DER prefixes: PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo for id-Ed25519 (1.3.101.112)
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function checkSeed(seed: Uint8Array): void {
  if (seed.length !== 32) {
    throw new KeyError(
      "ED25519_SEED_LENGTH",
      `an ed25519 seed is 32 bytes, found ${seed.length}; pass the seed, not the 64-byte secret key`,
      {
        length: seed.length,
      },
    );
  }
}

export function nodePrivateKeyFromSeed(seed: Uint8Array): KeyObject {
  checkSeed(seed);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
}

export function nodePublicKeyFromRaw(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) {
    throw new KeyError(
      "ED25519_PUBLIC_KEY_LENGTH",
      `an ed25519 public key is 32 bytes, found ${publicKey.length}`,
      {
        length: publicKey.length,
      },
    );
  }
  return createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]),
    format: "der",
    type: "spki",
  });
}

function rawPublicKeyOf(key: KeyObject): Uint8Array {
  const der = createPublicKey(key).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** `ssh-ed25519` public key blob: string "ssh-ed25519", string key (RFC 8709 section 4) */
export function publicKeyBlob(publicKey: Uint8Array): Uint8Array {
  return new SshWriter().string(SSH_ED25519).string(publicKey).bytes();
}

export function publicKeyToOpenSsh(publicKey: Uint8Array): string {
  return `${SSH_ED25519} ${Buffer.from(publicKeyBlob(publicKey)).toString("base64")}`;
}

/** Parse `ssh-ed25519 AAAA... [comment]` (or the bare blob) into the raw 32-byte key. */
export function parseOpenSshPublicKey(text: string): { publicKey: Uint8Array; comment: string } {
  const parts = text.trim().split(/\s+/);
  const [type, b64, ...rest] = parts;
  if (type !== SSH_ED25519 || b64 === undefined) {
    throw new KeyError(
      "SSH_PUBLIC_KEY_TYPE",
      `expected an "ssh-ed25519 AAAA..." public key, found "${type ?? ""}"`,
      {
        type: type ?? "",
      },
    );
  }
  return {
    publicKey: publicKeyFromBlob(new Uint8Array(Buffer.from(b64, "base64"))),
    comment: rest.join(" "),
  };
}

export function publicKeyFromBlob(blob: Uint8Array): Uint8Array {
  const r = new SshReader(blob, "ssh-ed25519 public key blob");
  const type = r.text();
  if (type !== SSH_ED25519) {
    throw new KeyError(
      "SSH_PUBLIC_KEY_TYPE",
      `expected key type ssh-ed25519, found "${type}"; custos signs and verifies ed25519 only`,
      {
        type,
      },
    );
  }
  const key = r.string();
  if (key.length !== 32 || r.remaining !== 0)
    throw new WireFormatError("ssh-ed25519 public key blob", "bad key length");
  return new Uint8Array(key);
}

/** SHA256:<unpadded base64> fingerprint, as ssh-keygen -l prints it */
export function fingerprint(publicKey: Uint8Array): string {
  const digest = createHash("sha256").update(publicKeyBlob(publicKey)).digest();
  return `SHA256:${digest.toString("base64").replace(/=+$/, "")}`;
}

/** Fast path: node:crypto. Accepts the 32-byte seed or a private KeyObject. */
export function nodeSigner(privateKey: Uint8Array | KeyObject): Signer {
  const key = privateKey instanceof Uint8Array ? nodePrivateKeyFromSeed(privateKey) : privateKey;
  if (key.asymmetricKeyType !== "ed25519") {
    throw new KeyError(
      "SIGNER_KEY_TYPE",
      `expected an ed25519 private key, found ${key.asymmetricKeyType ?? key.type}`,
      {
        type: key.asymmetricKeyType ?? key.type,
      },
    );
  }
  const publicKey = rawPublicKeyOf(key);
  return {
    publicKey,
    publicKeyOpenSsh: publicKeyToOpenSsh(publicKey),
    sign: (data) => new Uint8Array(nodeSign(null, data, key)),
  };
}

/** Portable: tweetnacl. Same signatures as nodeSigner for the same seed. */
export function naclSigner(seed: Uint8Array): Signer {
  checkSeed(seed);
  const pair = nacl.sign.keyPair.fromSeed(seed);
  return {
    publicKey: pair.publicKey,
    publicKeyOpenSsh: publicKeyToOpenSsh(pair.publicKey),
    sign: (data) => nacl.sign.detached(data, pair.secretKey),
  };
}

/** The signer for this runtime: node:crypto when it has ed25519 (Node >= 12), else tweetnacl. */
export function createSigner(seed: Uint8Array): Signer {
  try {
    return nodeSigner(seed);
  } catch (err) {
    if (err instanceof KeyError) throw err;
    return naclSigner(seed);
  }
}

export function publicKeyOfSeed(seed: Uint8Array): Uint8Array {
  checkSeed(seed);
  return nacl.sign.keyPair.fromSeed(seed).publicKey;
}

const verifyKeyCache = new Map<string, KeyObject>();

/** Verify a raw ed25519 signature with node:crypto (tweetnacl when node lacks ed25519). */
export function verifyEd25519(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const id = Buffer.from(publicKey).toString("hex");
  let key = verifyKeyCache.get(id);
  try {
    if (!key) {
      key = nodePublicKeyFromRaw(publicKey);
      if (verifyKeyCache.size > 1024) verifyKeyCache.clear();
      verifyKeyCache.set(id, key);
    }
    return nodeVerify(null, data, key, signature);
  } catch {
    return nacl.sign.detached.verify(data, signature, publicKey);
  }
}

export function samePublicKey(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b);
}
