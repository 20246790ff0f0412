/**
 * OpenSSH private key files ("openssh-key-v1", OpenSSH PROTOCOL.key), unencrypted ed25519
 * only: what `ssh-keygen -t ed25519 -N ''` writes. Keys we write load in ssh-keygen and
 * ssh-keygen's load here.
 */
import { randomBytes } from "node:crypto";
import { KeyError, publicKeyBlob, publicKeyOfSeed, SSH_ED25519 } from "./ed25519.ts";
import { bytesEqual, SshReader, SshWriter, unarmor, WireFormatError, wrapBase64 } from "./wire.ts";

const AUTH_MAGIC = new TextEncoder().encode("openssh-key-v1\0");
const LABEL = "OPENSSH PRIVATE KEY";

export interface OpenSshPrivateKey {
  /** the 32-byte ed25519 seed (RFC 8032 private key) */
  seed: Uint8Array;
  publicKey: Uint8Array;
  comment: string;
}

/** Parse an unencrypted openssh-key-v1 ed25519 private key file. */
export function parseOpenSshPrivateKey(text: string): OpenSshPrivateKey {
  const bytes = unarmor(text, LABEL);
  if (!bytesEqual(bytes.subarray(0, AUTH_MAGIC.length), AUTH_MAGIC)) {
    throw new WireFormatError("openssh private key", 'missing the "openssh-key-v1" magic');
  }
  const r = new SshReader(bytes.subarray(AUTH_MAGIC.length), "openssh private key");
  const cipher = r.text();
  const kdf = r.text();
  r.string(); // kdf options
  if (cipher !== "none" || kdf !== "none") {
    throw new KeyError(
      "SSH_KEY_ENCRYPTED",
      `the private key is encrypted (cipher ${cipher}); custos needs an unencrypted key: run "ssh-keygen -p -N '' -f <file>" on a copy, or make one with "custos keygen"`,
      { cipher, kdf },
    );
  }
  const n = r.uint32();
  if (n !== 1) throw new KeyError("SSH_KEY_COUNT", `expected one key in the file, found ${n}`, { count: n });
  const outerPublic = r.string();
  const priv = new SshReader(r.string(), "openssh private key section");
  const check1 = priv.uint32();
  const check2 = priv.uint32();
  if (check1 !== check2)
    throw new WireFormatError("openssh private key", "check integers differ (corrupt file)");
  const type = priv.text();
  if (type !== SSH_ED25519) {
    throw new KeyError(
      "SSH_KEY_TYPE",
      `expected an ssh-ed25519 key, found ${type}; make one with "ssh-keygen -t ed25519" or "custos keygen"`,
      {
        type,
      },
    );
  }
  const publicKey = new Uint8Array(priv.string());
  const secret = priv.string();
  const comment = priv.text();
  if (publicKey.length !== 32 || secret.length !== 64)
    throw new WireFormatError("openssh private key", "bad ed25519 key lengths");
  const seed = new Uint8Array(secret.subarray(0, 32));
  if (!bytesEqual(secret.subarray(32), publicKey) || !bytesEqual(publicKeyOfSeed(seed), publicKey)) {
    throw new WireFormatError("openssh private key", "the public key does not match the private key");
  }
  if (!bytesEqual(outerPublic, publicKeyBlob(publicKey))) {
    throw new WireFormatError("openssh private key", "the outer public key does not match the private key");
  }
  return { seed, publicKey, comment };
}

/**
 * Serialise an unencrypted openssh-key-v1 file. `checkInt` is random as ssh-keygen makes it;
 * pass one for byte-reproducible files (tests).
 */
export function formatOpenSshPrivateKey(seed: Uint8Array, comment = "", checkInt?: number): string {
  const publicKey = publicKeyOfSeed(seed);
  const check = checkInt ?? randomBytes(4).readUInt32BE(0);
  const secret = new Uint8Array(64);
  secret.set(seed, 0);
  secret.set(publicKey, 32);
  const priv = new SshWriter()
    .uint32(check)
    .uint32(check)
    .string(SSH_ED25519)
    .string(publicKey)
    .string(secret)
    .string(comment);
  // pad to the cipher block size (8 for "none") with 1, 2, 3, ... (PROTOCOL.key)
  let len = priv.bytes().length;
  for (let i = 1; len % 8 !== 0; i++, len++) priv.raw(Uint8Array.of(i));
  const body = new SshWriter()
    .raw(AUTH_MAGIC)
    .string("none")
    .string("none")
    .string(new Uint8Array(0))
    .uint32(1)
    .string(publicKeyBlob(publicKey))
    .string(priv.bytes())
    .bytes();
  return `-----BEGIN ${LABEL}-----\n${wrapBase64(body)}\n-----END ${LABEL}-----\n`;
}
