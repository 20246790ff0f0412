/**
 * OpenSSH ed25519 keys, read without external tools.
 * - public key line: "ssh-ed25519 <base64 wire blob> [comment]" (RFC 8709 section 4: the blob is
 *   string "ssh-ed25519" + string 32-byte key)
 * - private key file: PROTOCOL.key "openssh-key-v1", unencrypted (cipher "none"), one ed25519 key.
 * Fingerprints are what `ssh-keygen -l` prints: "SHA256:" + unpadded base64 of sha256(blob).
 */
import { createHash } from "node:crypto";
import { KeyFormatError } from "./errors.ts";

const KEY_TYPE = "ssh-ed25519";

export interface Ed25519PublicKey {
  /** 32-byte raw public key */
  publicKey: Uint8Array;
  comment: string;
}

export interface Ed25519PrivateKey extends Ed25519PublicKey {
  /** 64-byte NaCl secret key (seed || public key), as tweetnacl's sign.detached takes it */
  secretKey: Uint8Array;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  u32(): number {
    if (this.pos + 4 > this.buf.length) throw new KeyFormatError("OpenSSH key is truncated (uint32)");
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.pos + n > this.buf.length) throw new KeyFormatError("OpenSSH key is truncated (string)");
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    return this.bytes().toString("utf8");
  }
  rest(): Buffer {
    return this.buf.subarray(this.pos);
  }
  done(): boolean {
    return this.pos >= this.buf.length;
  }
}

function sshString(data: Uint8Array | string): Buffer {
  const b = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** The SSH wire blob of an ed25519 public key. */
export function publicKeyBlob(publicKey: Uint8Array): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(publicKey)]);
}

function parseBlob(blob: Buffer, where: string): Uint8Array {
  const r = new Reader(blob);
  const type = r.string();
  if (type !== KEY_TYPE) {
    throw new KeyFormatError(
      `expected an ${KEY_TYPE} key in ${where}, found "${type}"; custos signs with ed25519 keys only (ssh-keygen -t ed25519)`,
      { type },
    );
  }
  const key = r.bytes();
  if (key.length !== 32)
    throw new KeyFormatError(`expected a 32-byte ed25519 key in ${where}, found ${key.length} bytes`);
  return new Uint8Array(key);
}

/** Parse "ssh-ed25519 AAAA... comment". */
export function parsePublicKey(line: string): Ed25519PublicKey {
  const parts = line.trim().split(/\s+/);
  const [type, b64, ...comment] = parts;
  if (type !== KEY_TYPE || b64 === undefined) {
    throw new KeyFormatError(
      `expected an OpenSSH public key "ssh-ed25519 AAAA... [comment]", found "${line.slice(0, 40)}"`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new KeyFormatError("the public key's base64 part is not base64");
  return { publicKey: parseBlob(Buffer.from(b64, "base64"), "the public key"), comment: comment.join(" ") };
}

/** "ssh-ed25519 AAAA... comment" (comment omitted when empty). */
export function formatPublicKey(publicKey: Uint8Array, comment = ""): string {
  const base = `${KEY_TYPE} ${publicKeyBlob(publicKey).toString("base64")}`;
  return comment ? `${base} ${comment}` : base;
}

/** "SHA256:..." as `ssh-keygen -l` prints it. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return (
    "SHA256:" + createHash("sha256").update(publicKeyBlob(publicKey)).digest("base64").replace(/=+$/, "")
  );
}

/** Compare two public keys by their raw bytes (comments ignored). */
export function samePublicKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

const PEM_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END = "-----END OPENSSH PRIVATE KEY-----";
const AUTH_MAGIC = Buffer.from("openssh-key-v1\0", "latin1");

/** Parse an unencrypted OpenSSH ed25519 private key file (what `ssh-keygen -t ed25519 -N ""` writes). */
export function parsePrivateKey(pem: string): Ed25519PrivateKey {
  const start = pem.indexOf(PEM_BEGIN);
  const end = pem.indexOf(PEM_END);
  if (start < 0 || end < start) {
    throw new KeyFormatError(
      `expected an OpenSSH private key ("${PEM_BEGIN}"), found something else; pass the private key file made by ssh-keygen -t ed25519 or custos keygen`,
    );
  }
  const buf = Buffer.from(pem.slice(start + PEM_BEGIN.length, end).replace(/\s+/g, ""), "base64");
  if (!buf.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC))
    throw new KeyFormatError("the private key does not start with openssh-key-v1");
  const r = new Reader(buf.subarray(AUTH_MAGIC.length));
  const cipher = r.string();
  const kdf = r.string();
  r.bytes(); // kdf options
  if (cipher !== "none" || kdf !== "none") {
    throw new KeyFormatError(
      `expected an unencrypted private key, found one encrypted with ${cipher}; remove the passphrase on a copy (ssh-keygen -p -N "" -f <copy>) or use a dedicated custos key`,
      { cipher },
    );
  }
  const n = r.u32();
  if (n !== 1) throw new KeyFormatError(`expected one key in the private key file, found ${n}`);
  const pub = parseBlob(r.bytes(), "the private key's public part");
  const priv = new Reader(r.bytes());
  const check1 = priv.u32();
  const check2 = priv.u32();
  if (check1 !== check2)
    throw new KeyFormatError("the private key's check integers differ (corrupt or encrypted file)");
  const type = priv.string();
  if (type !== KEY_TYPE)
    throw new KeyFormatError(
      `expected an ${KEY_TYPE} private key, found "${type}"; use ssh-keygen -t ed25519`,
    );
  const pub2 = priv.bytes();
  const secret = priv.bytes();
  const comment = priv.string();
  if (secret.length !== 64 || !samePublicKey(pub2, pub) || !samePublicKey(secret.subarray(32), pub)) {
    throw new KeyFormatError("the private key's parts do not belong together (corrupt file)");
  }
  return { publicKey: pub, secretKey: new Uint8Array(secret), comment };
}

/** Write an unencrypted OpenSSH private key file for a NaCl key pair (used by tests and the demo). */
export function formatPrivateKey(
  key: { secretKey: Uint8Array; publicKey: Uint8Array },
  comment = "",
  checkInt = 0x2a2a2a2a,
): string {
  const blob = publicKeyBlob(key.publicKey);
  const check = Buffer.alloc(8);
  check.writeUInt32BE(checkInt >>> 0, 0);
  check.writeUInt32BE(checkInt >>> 0, 4);
  let priv = Buffer.concat([
    check,
    sshString(KEY_TYPE),
    sshString(key.publicKey),
    sshString(key.secretKey),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    AUTH_MAGIC,
    sshString("none"),
    sshString("none"),
    sshString(""),
    Buffer.from([0, 0, 0, 1]),
    sshString(blob),
    sshString(priv),
  ]);
  const b64 = body.toString("base64").replace(/(.{70})/g, "$1\n");
  return `${PEM_BEGIN}\n${b64.trimEnd()}\n${PEM_END}\n`;
}
