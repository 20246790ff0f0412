/**
 * `allowed_signers` files (ssh-keygen(1), section ALLOWED SIGNERS):
 *   principals [options] keytype base64-key [comment]
 * principals are comma-separated patterns; options are comma-separated, e.g.
 * `namespaces="git,custos-checkpoint"`, `valid-after="20260101"`, `cert-authority`.
 */
import { KeyError, parseOpenSshPublicKey, SSH_ED25519 } from "./ed25519.ts";

export interface AllowedSigner {
  /** the principal patterns of this line (e.g. ["gw-1@custos.local"]) */
  principals: string[];
  options: Record<string, string | true>;
  /** `namespaces=` restriction, if any */
  namespaces?: string[];
  /** `ssh-ed25519 AAAA...` */
  publicKeyOpenSsh: string;
  /** the raw 32-byte key (ed25519 lines only; other key types are kept but never match) */
  publicKey?: Uint8Array;
  keyType: string;
  /** 1-based line number in the file */
  line: number;
}

export class AllowedSignersError extends Error {
  readonly code = "ALLOWED_SIGNERS_SYNTAX";
  readonly data: { line: number; text: string };
  constructor(line: number, text: string, detail: string) {
    super(
      `allowed_signers line ${line}: ${detail}; expected "principal[,principal] [options] ssh-ed25519 AAAA..." (print one with "custos keygen")`,
    );
    this.name = "AllowedSignersError";
    this.data = { line, text };
  }
}

/** split on unquoted whitespace, keeping quoted option values together */
function tokens(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === " " || ch === "\t")) {
      if (cur) out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

function parseOptions(text: string): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  let i = 0;
  while (i < text.length) {
    let name = "";
    while (i < text.length && text[i] !== "=" && text[i] !== ",") name += text[i++];
    if (text[i] === "=") {
      i++;
      let value = "";
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') value += text[i++];
        i++;
      } else {
        while (i < text.length && text[i] !== ",") value += text[i++];
      }
      out[name.toLowerCase()] = value;
    } else {
      out[name.toLowerCase()] = true;
    }
    if (text[i] === ",") i++;
  }
  return out;
}

const KEY_TYPE = /^(ssh-|ecdsa-|sk-|rsa-)/;

export function parseAllowedSigners(text: string): AllowedSigner[] {
  const out: AllowedSigner[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const t = tokens(line);
    const principals = t[0];
    let k = 1;
    let options: Record<string, string | true> = {};
    if (t[1] !== undefined && !KEY_TYPE.test(t[1])) {
      options = parseOptions(t[1]);
      k = 2;
    }
    const keyType = t[k];
    const keyB64 = t[k + 1];
    if (principals === undefined || keyType === undefined || keyB64 === undefined) {
      throw new AllowedSignersError(index + 1, raw, "missing principal or key");
    }
    const entry: AllowedSigner = {
      principals: principals.split(",").filter((p) => p !== ""),
      options,
      publicKeyOpenSsh: `${keyType} ${keyB64}`,
      keyType,
      line: index + 1,
    };
    const ns = options.namespaces;
    if (typeof ns === "string") entry.namespaces = ns.split(",").map((s) => s.trim());
    if (keyType === SSH_ED25519) {
      try {
        entry.publicKey = parseOpenSshPublicKey(entry.publicKeyOpenSsh).publicKey;
      } catch (err) {
        throw new AllowedSignersError(
          index + 1,
          raw,
          err instanceof KeyError ? err.message : "bad ssh-ed25519 key",
        );
      }
    }
    out.push(entry);
  });
  return out;
}

/** One allowed_signers line: `<principal> namespaces="git,custos-checkpoint" ssh-ed25519 AAAA...` */
export function formatAllowedSigner(
  principal: string,
  publicKeyOpenSsh: string,
  namespaces?: string[],
): string {
  if (/[\s,"]/.test(principal) || principal === "") {
    throw new AllowedSignersError(
      0,
      principal,
      `principal "${principal}" must be non-empty, without spaces, commas or quotes`,
    );
  }
  const key = publicKeyOpenSsh.trim().split(/\s+/).slice(0, 2).join(" ");
  const opts = namespaces && namespaces.length > 0 ? ` namespaces="${namespaces.join(",")}"` : "";
  return `${principal}${opts} ${key}`;
}

/** ssh-keygen's principal pattern match (`*` and `?` wildcards, `!` negation). */
export function principalMatches(patterns: string[], principal: string): boolean {
  let matched = false;
  for (const p of patterns) {
    const negate = p.startsWith("!");
    const pat = negate ? p.slice(1) : p;
    const re = new RegExp(
      `^${pat
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
    if (re.test(principal)) {
      if (negate) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * A `valid-after` / `valid-before` time as ssh-keygen reads it: YYYYMMDD[HHMM[SS]], in UTC when
 * it ends in "Z", else in local time. Seconds since the epoch, or null when malformed.
 */
export function parseSignerTime(v: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(v);
  if (!m) return null;
  const f = [+m[1]!, +m[2]! - 1, +m[3]!, +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0)] as const;
  const ms = m[7] === "Z" ? Date.UTC(...f) : new Date(...f).getTime();
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

/**
 * Why the line `s` does not allow a signature made at `time` (seconds since the epoch; git uses
 * the committer time), as ssh-keygen checks `valid-after` and `valid-before`; null when it does.
 */
export function signerInvalidAt(s: AllowedSigner, time: number): string | null {
  const after = s.options["valid-after"];
  const before = s.options["valid-before"];
  const at = new Date(time * 1000).toISOString();
  if (after !== undefined) {
    const t = typeof after === "string" ? parseSignerTime(after) : null;
    if (t === null) return `allowed_signers line ${s.line}: valid-after "${String(after)}" is not a time`;
    if (time < t) return `allowed_signers line ${s.line}: key not yet valid at ${at} (valid-after ${after})`;
  }
  if (before !== undefined) {
    const t = typeof before === "string" ? parseSignerTime(before) : null;
    if (t === null) return `allowed_signers line ${s.line}: valid-before "${String(before)}" is not a time`;
    if (time > t) return `allowed_signers line ${s.line}: key expired at ${at} (valid-before ${before})`;
  }
  return null;
}

/**
 * the principals (exact strings, no wildcards) that `publicKey` may sign as, for a namespace,
 * and at `verifyTime` (seconds since the epoch) when given
 */
export function principalsForKey(
  signers: AllowedSigner[],
  publicKey: Uint8Array,
  namespace?: string,
  verifyTime?: number,
): AllowedSigner[] {
  return signers.filter((s) => {
    if (!s.publicKey || s.options["cert-authority"]) return false;
    if (namespace !== undefined && s.namespaces && !s.namespaces.includes(namespace)) return false;
    if (verifyTime !== undefined && signerInvalidAt(s, verifyTime) !== null) return false;
    return Buffer.from(s.publicKey).equals(Buffer.from(publicKey));
  });
}
