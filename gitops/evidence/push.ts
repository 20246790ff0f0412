/**
 * Fast-forward push over git's smart HTTP protocol (gitprotocol-http, gitprotocol-pack),
 * sending only the objects the remote lacks: the commits after the remote's head and, per
 * commit, the trees and blobs that differ from its parent's tree. isomorphic-git's `push`
 * walks the whole history on every call; on an append-only linear branch this diff is exact.
 */
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { constants, deflate } from "node:zlib";
import type { ObjectStore, ObjectType } from "./objects.ts";
import { parseTree } from "./objects.ts";
import { EvidenceError } from "./wal.ts";

const deflateAsync = promisify(deflate);
const ZERO = "0".repeat(40);
// some hosts (GitHub) answer the smart protocol only to user agents that start with "git/"
const USER_AGENT = "git/custos";
const TYPE_CODE: Record<ObjectType, number> = { commit: 1, tree: 2, blob: 3, tag: 4 };

export interface RemoteSpec {
  url: string;
  headers?: Record<string, string>;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: Uint8Array },
) => Promise<{
  status: number;
  arrayBuffer(): Promise<ArrayBuffer>;
}>;

export function pktLine(text: string | Uint8Array): Buffer {
  const body = typeof text === "string" ? Buffer.from(text) : Buffer.from(text);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, "0")), body]);
}

export function parsePktLines(buf: Buffer): (Buffer | null)[] {
  const out: (Buffer | null)[] = [];
  let i = 0;
  while (i + 4 <= buf.length) {
    const len = Number.parseInt(buf.toString("latin1", i, i + 4), 16);
    if (Number.isNaN(len)) break;
    if (len === 0) {
      out.push(null);
      i += 4;
      continue;
    }
    out.push(buf.subarray(i + 4, i + len));
    i += len;
  }
  return out;
}

/** Discover the remote's refs for receive-pack. */
export async function remoteRefs(fetchFn: FetchLike, remote: RemoteSpec): Promise<Map<string, string>> {
  const url = `${remote.url.replace(/\/$/, "")}/info/refs?service=git-receive-pack`;
  const res = await fetchFn(url, { method: "GET", headers: { "user-agent": USER_AGENT, ...remote.headers } });
  if (res.status !== 200) {
    throw new EvidenceError(
      "EVIDENCE_PUSH_HTTP",
      `GET ${redact(url)} answered ${res.status}; expected 200 from a git smart-HTTP server`,
      {
        status: res.status,
      },
    );
  }
  const refs = new Map<string, string>();
  for (const line of parsePktLines(Buffer.from(await res.arrayBuffer()))) {
    if (line === null) continue;
    const text = line.toString("utf8").replace(/\n$/, "");
    if (text.startsWith("#")) continue;
    const nul = text.indexOf("\0");
    const [oid, name] = (nul >= 0 ? text.slice(0, nul) : text).split(" ");
    if (oid && name && oid !== ZERO) refs.set(name, oid);
  }
  return refs;
}

function redact(url: string): string {
  return redactCredentials(url);
}

/** Every `scheme://user:password@` in a text (a URL, an error quoting one) without its credentials. */
export function redactCredentials(text: string): string {
  return text.replace(/\/\/[^@/\s]*@/g, "//***@");
}

/** Objects reachable from `head` and not from `base` (base null = everything), commits newest first. */
export async function newObjects(
  store: ObjectStore,
  head: string,
  base: string | null,
  maxCommits = 1_000_000,
): Promise<string[]> {
  const notFastForward = (): EvidenceError =>
    new EvidenceError(
      "EVIDENCE_PUSH_NOT_FAST_FORWARD",
      `the remote branch is at ${base}, which is not in the local history; the remote was written by another writer: give each gateway its own gatewayId`,
      { base, head },
    );
  if (base !== null) {
    // a remote head we never wrote: fail at once instead of walking years of history
    try {
      await store.read(base);
    } catch {
      throw notFastForward();
    }
  }
  const commits: { oid: string; tree: string; parent: string | null }[] = [];
  let cur: string | null = head;
  while (cur !== null && cur !== base) {
    if (commits.length >= maxCommits) break;
    const { content } = await store.read(cur);
    const text = content.toString("utf8");
    const tree = /^tree ([0-9a-f]{40})$/m.exec(text)?.[1];
    const parent = /^parent ([0-9a-f]{40})$/m.exec(text)?.[1] ?? null;
    if (!tree) throw new EvidenceError("EVIDENCE_BAD_COMMIT", `commit ${cur} has no tree`, { oid: cur });
    commits.push({ oid: cur, tree, parent });
    cur = parent;
  }
  if (base !== null && cur !== base) throw notFastForward();
  const out: string[] = [];
  const seen = new Set<string>();
  const treeOf = new Map(commits.map((c) => [c.oid, c.tree]));
  for (const c of commits) {
    out.push(c.oid);
    let parentTree: string | null = null;
    if (c.parent !== null) {
      parentTree = treeOf.get(c.parent) ?? null;
      if (parentTree === null) {
        const { content } = await store.read(c.parent);
        parentTree = /^tree ([0-9a-f]{40})$/m.exec(content.toString("utf8"))?.[1] ?? null;
      }
    }
    await diffTree(store, c.tree, parentTree, out, seen);
  }
  return out;
}

async function diffTree(
  store: ObjectStore,
  tree: string,
  old: string | null,
  out: string[],
  seen: Set<string>,
): Promise<void> {
  if (tree === old || seen.has(tree)) return;
  seen.add(tree);
  out.push(tree);
  const entries = parseTree((await store.read(tree)).content);
  const oldEntries =
    old === null
      ? new Map<string, string>()
      : new Map(parseTree((await store.read(old)).content).map((e) => [e.name, e.oid]));
  for (const e of entries) {
    const prev = oldEntries.get(e.name) ?? null;
    if (prev === e.oid) continue;
    if (e.mode === "40000") await diffTree(store, e.oid, prev, out, seen);
    else if (e.mode !== "160000" && !seen.has(e.oid)) {
      seen.add(e.oid);
      out.push(e.oid);
    }
  }
}

/** A version-2 packfile of whole (undeltified) objects. */
export async function buildPack(store: ObjectStore, oids: string[]): Promise<Buffer> {
  const header = Buffer.alloc(12);
  header.write("PACK", 0, "latin1");
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(oids.length, 8);
  const parts: Buffer[] = [header];
  for (const oid of oids) {
    const { type, content } = await store.read(oid);
    parts.push(packObjectHeader(TYPE_CODE[type], content.length));
    parts.push(await deflateAsync(content, { level: constants.Z_BEST_SPEED }));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash("sha1").update(body).digest()]);
}

function packObjectHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let b = (type << 4) | (size & 0x0f);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(b | 0x80);
    b = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(b);
  return Buffer.from(bytes);
}

/** POST one ref update + pack to git-receive-pack; throws unless the server reports ok. */
export async function receivePack(
  fetchFn: FetchLike,
  remote: RemoteSpec,
  ref: string,
  oldOid: string | null,
  newOid: string,
  pack: Buffer,
): Promise<void> {
  const url = `${remote.url.replace(/\/$/, "")}/git-receive-pack`;
  const body = Buffer.concat([
    pktLine(`${oldOid ?? ZERO} ${newOid} ${ref}\0report-status agent=custos\n`),
    Buffer.from("0000"),
    pack,
  ]);
  const res = await fetchFn(url, {
    method: "POST",
    headers: {
      "user-agent": USER_AGENT,
      ...remote.headers,
      "content-type": "application/x-git-receive-pack-request",
      accept: "application/x-git-receive-pack-result",
    },
    body,
  });
  const answer = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) {
    throw new EvidenceError(
      "EVIDENCE_PUSH_HTTP",
      `POST ${redact(url)} answered ${res.status}; expected 200`,
      { status: res.status },
    );
  }
  const lines = parsePktLines(answer)
    .filter((l): l is Buffer => l !== null)
    .map((l) => l.toString("utf8").replace(/\n$/, ""));
  const unpack = lines.find((l) => l.startsWith("unpack "));
  const status = lines.find((l) => l.startsWith("ok ") || l.startsWith("ng "));
  if (unpack !== "unpack ok" || status !== `ok ${ref}`) {
    throw new EvidenceError(
      "EVIDENCE_PUSH_REJECTED",
      `the remote refused ${ref} ${oldOid ?? ZERO}..${newOid}: ${[unpack, status].filter(Boolean).join("; ") || "no report"}; evidence branches only fast-forward`,
      { ref, unpack, status },
    );
  }
}
