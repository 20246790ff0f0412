/**
 * SSH wire encoding (RFC 4251 section 5): uint32 big-endian lengths and `string` fields.
 * Shared by the OpenSSH key file, the SSHSIG blob and the public key blob.
 */

export class SshWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  uint32(value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, false);
    return this.raw(b);
  }

  /** an SSH `string`: uint32 length then the bytes */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    this.uint32(bytes.length);
    return this.raw(bytes);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

export class SshReader {
  private off = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.off;
  }

  raw(n: number): Uint8Array {
    if (n < 0 || this.off + n > this.buf.length) {
      throw new WireFormatError(
        this.what,
        `needed ${n} more bytes at offset ${this.off}, found ${this.remaining}`,
      );
    }
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }

  uint32(): number {
    const b = this.raw(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, false);
  }

  string(): Uint8Array {
    return this.raw(this.uint32());
  }

  text(): string {
    return new TextDecoder("utf-8", { fatal: true }).decode(this.string());
  }
}

export class WireFormatError extends Error {
  readonly code = "SSH_WIRE_FORMAT";
  readonly data: { what: string; detail: string };
  constructor(what: string, detail: string) {
    super(
      `malformed ${what}: ${detail}; expected the OpenSSH wire format (RFC 4251) — regenerate or re-export it`,
    );
    this.name = "WireFormatError";
    this.data = { what, detail };
  }
}

/** base64 wrapped at `width` columns, as OpenSSH armours keys and signatures (sshbuf_dtob64 wraps at 70) */
export function wrapBase64(bytes: Uint8Array, width = 70): string {
  const b64 = Buffer.from(bytes).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += width) lines.push(b64.slice(i, i + width));
  return lines.join("\n");
}

/** extract and decode the base64 body between `-----BEGIN <label>-----` and `-----END <label>-----` */
export function unarmor(text: string, label: string): Uint8Array {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const b = text.indexOf(begin);
  const e = text.indexOf(end, b + begin.length);
  if (b < 0 || e < 0) {
    throw new WireFormatError(label.toLowerCase(), `no "${begin}" ... "${end}" block found`);
  }
  const body = text.slice(b + begin.length, e).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) {
    throw new WireFormatError(label.toLowerCase(), "the armoured body is not base64");
  }
  return new Uint8Array(Buffer.from(body, "base64"));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
