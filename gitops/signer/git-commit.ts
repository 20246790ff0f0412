/**
 * Signed git commit objects, byte for byte as git writes them (commit.c add_header_signature)
 * and splits them for verification (commit.c parse_signed_commit): the signature is the
 * `gpgsig` header (continuation lines start with one space); the signed payload is the
 * commit object with that header removed.
 *
 * isomorphic-git's readCommit().payload is wrong for SSH signatures: use `splitSignedCommit`.
 */
import type { AllowedSigner } from "./allowed-signers.ts";
import type { Signer } from "./ed25519.ts";
import { type SshsigVerifyResult, sshsigSign, sshsigVerify } from "./sshsig.ts";

export interface GitPerson {
  name: string;
  email: string;
  /** seconds since the epoch */
  timestamp: number;
  /** minutes east of UTC (0 for UTC) */
  timezoneOffset?: number;
}

export interface CommitFields {
  tree: string;
  parents: string[];
  author: GitPerson;
  committer: GitPerson;
  message: string;
}

function tz(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}${String(abs % 60).padStart(2, "0")}`;
}

function person(p: GitPerson): string {
  if (/[<>\n]/.test(p.name + p.email))
    throw new Error(`git identity "${p.name} <${p.email}>" must not contain <, > or newlines`);
  return `${p.name} <${p.email}> ${Math.floor(p.timestamp)} ${tz(p.timezoneOffset ?? 0)}`;
}

/** the unsigned commit object text (what gets signed) */
export function commitPayload(c: CommitFields): string {
  let s = `tree ${c.tree}\n`;
  for (const p of c.parents) s += `parent ${p}\n`;
  s += `author ${person(c.author)}\ncommitter ${person(c.committer)}\n\n${c.message}`;
  return s;
}

/** insert `gpgsig` after the last header line, as git's add_header_signature does */
export function insertSignatureHeader(payload: string, signature: string): string {
  const eoh = payload.indexOf("\n\n");
  const at = eoh < 0 ? payload.length : eoh + 1;
  const sig = signature.endsWith("\n") ? signature : `${signature}\n`;
  const header = `gpgsig ${sig.slice(0, -1).split("\n").join("\n ")}\n`;
  return payload.slice(0, at) + header + payload.slice(at);
}

/** a commit object signed with an SSHSIG (namespace "git"), accepted by `git verify-commit` */
export function signCommit(signer: Signer, fields: CommitFields): string {
  const payload = commitPayload(fields);
  return insertSignatureHeader(payload, sshsigSign(signer, payload, "git"));
}

/**
 * Split a raw commit object into the signed payload and the armoured signature (null when
 * unsigned). Handles `gpgsig` and `gpgsig-sha256` headers and their continuation lines.
 */
export function splitSignedCommit(raw: Uint8Array | string): { payload: string; signature: string | null } {
  const text = typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8");
  const eoh = text.indexOf("\n\n");
  const headerEnd = eoh < 0 ? text.length : eoh + 1;
  const lines = text.slice(0, headerEnd).split("\n");
  lines.pop(); // the empty string after the last header's "\n"
  const kept: string[] = [];
  const sig: string[] = [];
  let inSig = false;
  for (const line of lines) {
    if (inSig && line.startsWith(" ")) {
      sig.push(line.slice(1));
      continue;
    }
    inSig = false;
    if (line.startsWith("gpgsig ") || line.startsWith("gpgsig-sha256 ")) {
      inSig = true;
      sig.push(line.slice(line.indexOf(" ") + 1));
      continue;
    }
    kept.push(line);
  }
  const payload = kept.map((l) => `${l}\n`).join("") + text.slice(headerEnd);
  return { payload, signature: sig.length > 0 ? `${sig.join("\n")}\n` : null };
}

/** Verify a raw commit object's SSH signature against allowed signers (namespace "git"). */
export function verifyCommitSignature(
  raw: Uint8Array | string,
  allowed: readonly (AllowedSigner | string)[],
): SshsigVerifyResult & { signed: boolean; payload: string } {
  const { payload, signature } = splitSignedCommit(raw);
  if (signature === null) {
    return {
      ok: false,
      signed: false,
      payload,
      publicKey: "",
      fingerprint: "",
      principals: [],
      namespace: "",
      reason: "malformed",
      detail: "the commit is not signed",
    };
  }
  // as git does, allowed_signers' valid-after / valid-before are checked at the committer time
  const committer = /\ncommitter [^\n]*> (\d+) [+-]\d{4}\n/.exec(payload);
  const opts = committer ? { verifyTime: Number(committer[1]) } : {};
  return { ...sshsigVerify(signature, payload, "git", allowed, opts), signed: true, payload };
}
