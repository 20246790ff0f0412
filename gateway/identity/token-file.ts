/**
 * Static tokens in kube-apiserver's `--token-auth-file` format:
 * `token,user,uid,"group1,group2"` (one per line; `#` comments and blank lines ignored).
 * https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file
 */
import { createHash, hash, timingSafeEqual } from "node:crypto";
import type { Identity } from "../ports.ts";

export class TokenFileError extends Error {
  readonly code = "TOKEN_FILE_INVALID";
  readonly data: { line: number };
  constructor(line: number, detail: string) {
    super(`token file line ${line}: ${detail}; expected token,user,uid,"group1,group2"`);
    this.data = { line };
  }
}

interface Entry {
  digest: Buffer;
  identity: Identity;
}

/**
 * Split one CSV line (RFC 4180 quoting) as kube-apiserver's reader does (Go encoding/csv with
 * TrimLeadingSpace): white space at the start of a field is dropped, so `tok, bob, u9` is user
 * "bob" there and here — never " bob", whom no rule for bob would match.
 */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let fieldStart = true;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (fieldStart) {
      if (/\s/.test(ch)) continue;
      fieldStart = false;
    }
    if (quoted) {
      if (ch === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = false;
      } else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      out.push(cur);
      cur = "";
      fieldStart = true;
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export class TokenFileAuthenticator {
  readonly #byDigest = new Map<string, Entry>();

  constructor(text: string) {
    const lines = text.split(/\r?\n/);
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const cols = parseCsvLine(line);
      const [token, user, uid, groups] = cols;
      if (!token || !user) throw new TokenFileError(i + 1, "token and user are required");
      if (cols.length < 3) throw new TokenFileError(i + 1, `found ${cols.length} columns, need at least 3`);
      const digest = createHash("sha256").update(token).digest();
      const identity: Identity = {
        subject: user,
        groups: (groups ?? "")
          .split(",")
          .map((g) => g.trim())
          .filter((g) => g !== ""),
        claims: uid ? { uid } : {},
        source: "token-file",
      };
      this.#byDigest.set(digest.toString("hex"), { digest, identity });
    });
  }

  get size(): number {
    return this.#byDigest.size;
  }

  /** The identity for this token, or undefined. Lookup by digest; the final compare is constant-time. */
  authenticate(token: string): Identity | undefined {
    const digest = hash("sha256", token, "buffer");
    const entry = this.#byDigest.get(digest.toString("hex"));
    if (!entry || !timingSafeEqual(entry.digest, digest)) return undefined;
    return copyIdentity(entry.identity);
  }
}

/** A copy a caller may change without touching the cached one (cheaper than structuredClone). */
export function copyIdentity(i: Identity): Identity {
  return { subject: i.subject, groups: [...i.groups], claims: { ...i.claims }, source: i.source };
}
