/**
 * The text-level JSON masker: masks a JSON document without parsing it whole. It tokenizes the
 * text itself (validating it as strictly as `JSON.parse`), tracks the path (object keys, array
 * indices) so field masks still apply, runs the detectors only on string tokens, and copies
 * every untouched span of the input verbatim: the output is the input's slices joined once,
 * with masked tokens re-serialised in between. Only the subtrees that need structural work are
 * parsed and handed to the object walker (json.ts): a field mask over an object, Secret data
 * (base64), `last-applied-configuration`, and any list item the text walk cannot decide alone.
 *
 * Semantics are the walker's, by construction: the same JsonMaskRun state (path, summary,
 * applied sets) drives both, and this file mirrors `rootObject`, `metadata`, `annotations`
 * and `walk` member by member. Equivalence (checked by the property tests): `JSON.parse` of the
 * output deep-equals `maskJson(JSON.parse(text)).value`, the summaries are equal, and untouched
 * values keep their bytes (numbers, escapes and whitespace as the input wrote them).
 *
 * What goes back to the object walker, and why:
 * - anything that is not a List (with `kind` before `items`) or a single object whose `kind`
 *   decides its shape: Tables, Status, WatchEvents, top-level arrays (the whole document);
 * - a list item with a duplicate key (JSON.parse keeps the last value, the text would show
 *   both), with an array-index key like "7" (JavaScript orders those first, which changes
 *   the order of the summary's pointers), with a data-map key that holds an identifier (renamed
 *   keys are recorded before the values), or whose `kind`, `apiVersion`, `involvedObject` or
 *   `regarding` comes after `metadata` (they decide which masks apply; an Event's object, which
 *   the API server writes there, is guessed and checked instead — see refState): the item's
 *   output and summary are rolled back and the item is parsed and masked as an object;
 * - malformed JSON, or anything unexpected: the whole document takes the old path, which
 *   throws `JSON.parse`'s own SyntaxError (the caller turns it into MASK_MALFORMED_JSON).
 */
import { isAscii, isUtf8 } from "node:buffer";
import type { Json } from "../../sdk/schema/config.ts";
import type { MaskContext, MaskSummary } from "../ports.ts";
import type { Applied, CompiledPolicy, TrieNode } from "./compile.ts";
import { type DetectorSet, ownString } from "./detect.ts";
import {
  childNodes,
  EVENT_TIMES,
  isEvent,
  JsonMaskRun,
  type JsonObject,
  KEYED_MAPS,
  LAST_APPLIED,
  skipForDetectors,
  terminalOf,
  TIMESTAMP_TOKEN,
} from "./json.ts";
import { isStackOverflow, nestedTooDeep } from "./errors.ts";
import { DROP, type Dropped, redactToken } from "./strategy.ts";
import { SummaryBuilder } from "./summary.ts";

/**
 * A managedFields entry that scanned clean, cut at its timestamp (its `time`, when that is one):
 * the text around it (`segs`, one more than the timestamps) and each timestamp token's length
 * with its quotes.
 */
interface CleanManaged {
  readonly segs: readonly string[];
  /**
   * The same as bytes, compared natively with an ASCII body's; null for a segment that is not
   * ASCII (a Latin-1 copy of a character above U+00FF keeps its low byte only: "\u0131" would
   * read as "1"), which no ASCII body's bytes can equal.
   */
  readonly bytes: readonly (Buffer | null)[];
  readonly timeLens: readonly number[];
  readonly length: number;
  /** entries at its index that were not this text, since it last was (see keepClean) */
  misses: number;
}
/** the managedFields entries a run last scanned clean, per detector set (see managedFields) */
const CLEAN_MANAGED = new WeakMap<DetectorSet, readonly (CleanManaged | undefined)[]>();
/** a kept entry gives way to a newer one after this many misses in a row (see keepClean) */
const CLEAN_MANAGED_MISSES = 8;
/** longer managedFields entries are not kept */
const CLEAN_MANAGED_MAX = 16 * 1024;
/** entries kept per managedFields (an object has one per manager and subresource) */
const CLEAN_MANAGED_ENTRIES = 8;

/** The text is not valid JSON (the caller re-parses it to get JSON.parse's own error). */
class Malformed extends Error {}
/** This item cannot be masked at the text level: roll back and mask it as an object. */
class ItemFallback extends Error {}
/** The item was masked under a guessed applied set that turned out wrong: redo it with this one. */
class ItemRedo extends Error {
  constructor(
    readonly applied: Applied,
    /** the event's object was read: its key is accepted once in the redo */
    readonly refSeen: boolean,
  ) {
    super("redo");
  }
}
/** This document cannot be masked at the text level: mask it as an object. */
class DocFallback extends Error {}

/**
 * A top-level key of an object that decides which masks apply to it (see appliedFor): four
 * compares, by identity for a key read from the text (internalized).
 */
function isFactKey(k: string): boolean {
  return k === "kind" || k === "apiVersion" || k === "involvedObject" || k === "regarding";
}

const SURROGATE = /[\ud800-\udfff]/;
const NON_ASCII = /[^\x00-\x7f]/;
/** a character JSON does not allow raw inside a string */
const CONTROL = /[\x00-\x1f]/g;

/** the rest of a string token with escapes, up to its closing quote (validated; sticky) */
const ESCAPED_STRING = /[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"/y;

/**
 * A successful regular-expression match keeps its subject for `RegExp.input` / `RegExp.$1`
 * (the engine's last-match state, one per realm) until the next successful match: after a walk
 * whose last match ran on the response text, that would keep the whole text alive. A match on
 * an empty string replaces it.
 */
function forgetLastMatch(): void {
  EMPTY.test("");
}
const EMPTY = /^/;

/** JSON.stringify(redactToken(label)), made once per label (labels come from the policy) */
const QUOTED_TOKENS = new Map<string, string>();
function quotedToken(label: string): string {
  let q = QUOTED_TOKENS.get(label);
  if (q === undefined) {
    q = JSON.stringify(redactToken(label));
    if (QUOTED_TOKENS.size >= 1024) QUOTED_TOKENS.clear();
    QUOTED_TOKENS.set(label, q);
  }
  return q;
}

/** Whether a timestamp string token (TIMESTAMP_TOKEN) starts at `p`; its end is then lastIndex. */
function timestampAt(t: string, p: number): boolean {
  if (t.charCodeAt(p) !== 34) return false;
  TIMESTAMP_TOKEN.lastIndex = p + 1;
  return TIMESTAMP_TOKEN.test(t);
}

/**
 * Whether a byte below 0x20 occurs in `b`, four bytes at a time: for a word x of bytes below
 * 0x80, (x - 0x20202020) & ~x & 0x80808080 is nonzero exactly when one of its bytes is below
 * 0x20 (a byte's borrow reaches the next only from a byte that is below 0x20 itself). Bytes of
 * 0x80 and above are tested one by one.
 */
export function hasControlByte(b: Uint8Array): boolean {
  const n = b.length;
  let i = 0;
  while (i < n && ((b.byteOffset + i) & 3) !== 0) {
    if (b[i]! < 32) return true;
    i++;
  }
  const words = (n - i) >> 2;
  const w = words === 0 ? new Int32Array(0) : new Int32Array(b.buffer, b.byteOffset + i, words);
  for (let j = 0; j < words; j++) {
    const x = w[j]!;
    if (((x - 0x20202020) & ~x & 0x80808080) !== 0) {
      if ((x & 0x80808080) === 0) return true;
      for (let k = i + j * 4; k < i + j * 4 + 4; k++) if (b[k]! < 32) return true;
    }
  }
  for (i += words * 4; i < n; i++) if (b[i]! < 32) return true;
  return false;
}

/** A key JavaScript treats as an array index (enumerated before other keys, in numeric order). */
function isIndexKey(k: string): boolean {
  const c = k.charCodeAt(0);
  if (!(c >= 48 && c <= 57)) return false;
  return /^(?:0|[1-9][0-9]*)$/.test(k) && Number(k) < 4294967295;
}

/** array indices as trie keys, made once */
const INDEX_KEYS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * The engine's one copy of a string (as property names are kept): equal keys are then the same
 * string, compared by identity with each other and with the literals they are tested against,
 * their hashes computed once. A copy, never a slice of the text it came from.
 */
function internalized(k: string): string {
  for (const name in { [k]: 0 }) return name;
  return k;
}

/** keys seen lately (shared by all runs: only strings of at most 40 characters, no values) */
const KEY_CACHE: (string | undefined)[] = new Array<string | undefined>(4096);
/**
 * KEY_CACHE's keys as little-endian 32-bit words of their bytes, whole words only (readKey); a
 * key with a character above U+007F gets words no ASCII body can equal (its first word then
 * holds that character's code, which no four bytes below 0x80 make).
 */
const KEY_WORDS: (Int32Array | undefined)[] = new Array<Int32Array | undefined>(4096);
const NO_WORDS = Int32Array.of(-1);

function keyWords(k: string): Int32Array {
  if (NON_ASCII.test(k)) return NO_WORDS;
  const w = new Int32Array(k.length >> 2);
  for (let j = 0; j < w.length; j++)
    w[j] =
      k.charCodeAt(4 * j) |
      (k.charCodeAt(4 * j + 1) << 8) |
      (k.charCodeAt(4 * j + 2) << 16) |
      (k.charCodeAt(4 * j + 3) << 24);
  return w;
}

/** which of json.ts' object methods an object is masked like */
const Mode = { Walk: 0, Root: 1, Meta: 2, Annotations: 3, Managed: 4 } as const;
type Mode = (typeof Mode)[keyof typeof Mode];

/** Duplicate-key detection for one object (a linear scan while small, a Set once large). */
class KeysSeen {
  private readonly arr: string[] = [];
  private n = 0;
  private set: Set<string> | null = null;
  reset(): void {
    this.n = 0;
    this.set = null;
  }
  add(k: string): boolean {
    if (this.set !== null) {
      if (this.set.has(k)) return false;
      this.set.add(k);
      return true;
    }
    const arr = this.arr;
    const n = this.n;
    for (let i = 0; i < n; i++) if (arr[i] === k) return false;
    arr[n] = k;
    this.n = n + 1;
    if (n === 16) this.set = new Set(arr.slice(0, 17));
    return true;
  }
}

/**
 * Duplicate-key detection for an object that is only passed over: keys are compared as written
 * (start and length in the text) — without escapes, equal text is an equal key, and no key
 * string is made. Once a key with an escape appears, or the object grows large, the keys are
 * decoded and kept in a Set instead.
 */
class RawKeys {
  private readonly starts: number[] = [];
  private readonly lens: number[] = [];
  private n = 0;
  private decoded: Set<string> | null = null;
  reset(): void {
    this.n = 0;
    this.decoded = null;
  }
  /** the key between the quotes at [s, e) of `t` (`esc`: it has an escape); false: a duplicate */
  add(t: string, s: number, e: number, esc: boolean): boolean {
    const len = e - s;
    if (this.decoded === null) {
      if (!esc && this.n < 32) {
        const starts = this.starts;
        const lens = this.lens;
        for (let i = 0; i < this.n; i++) {
          if (lens[i] !== len) continue;
          const o = starts[i]!;
          let j = 0;
          while (j < len && t.charCodeAt(o + j) === t.charCodeAt(s + j)) j++;
          if (j === len) return false;
        }
        starts[this.n] = s;
        lens[this.n] = len;
        this.n++;
        return true;
      }
      // (the keys so far had no escapes: their text is their value)
      this.decoded = new Set();
      for (let i = 0; i < this.n; i++)
        this.decoded.add(t.slice(this.starts[i]!, this.starts[i]! + this.lens[i]!));
    }
    const k = esc ? (JSON.parse(t.slice(s - 1, e + 1)) as string) : t.slice(s, e);
    if (this.decoded.has(k)) return false;
    this.decoded.add(k);
    return true;
  }
}

/** the members of one object or array as they are walked: which were kept, where to cut */
class Members {
  kept = 0;
  dropped = false;
  lastKeptEnd = 0;
  afterOpen = 0;
  reset(afterOpen: number): this {
    this.kept = 0;
    this.dropped = false;
    this.afterOpen = afterOpen;
    this.lastKeptEnd = afterOpen;
    return this;
  }
}

export class JsonTextMaskRun {
  private readonly t: string;
  private readonly n: number;
  private pos = 0;
  /**
   * The output, in order: replacement strings, and spans of the input copied as they are, each
   * as two numbers (start, end). Kept as spans, the output can be assembled as a string or, for
   * an ASCII input, straight from the input's bytes (runBytes), without an intermediate string.
   */
  private parts: (string | number)[] = [];
  private copyFrom = 0;
  private readonly jr: JsonMaskRun;
  private readonly sum: SummaryBuilder;
  private readonly path: (string | number)[];
  /** the last scanned string had a backslash escape */
  private esc = false;
  // the item being masked (items do not nest at the text level)
  private itemKind: string | undefined = undefined;
  private eventish = false;
  /** fact keys (isFactKey) at or after this position were not seen when the applied set was chosen */
  private factsLimit = Number.POSITIVE_INFINITY;
  /**
   * An Event's masks depend on the object it is about (involvedObject / regarding), which the API
   * server writes after the metadata. Rather than read every event twice, the item is masked
   * under a guess — the kind the last event was about, in the event's own namespace — checked
   * when the key arrives (or at the end, if it never does) and redone if wrong. 0: no guess;
   * 1: guessing; 2: the redo, whose set came from the object itself (its key is accepted once).
   */
  private refState: 0 | 1 | 2 = 0;
  private guess: JsonObject = {};
  private itemFacts: JsonObject = {};
  private itemHint: string | undefined = undefined;
  private lastRefKind: Json = "Pod";
  private lastRefApiVersion: Json = "v1";
  /** a duplicate key in a passed-over object sends the item to the object walker */
  private checkDups = true;
  /** items masked as objects after the text walk gave up on them (tests and benchmarks) */
  itemFallbacks = 0;
  /** items masked again because an event's guessed object was wrong (tests and benchmarks) */
  itemRedos = 0;
  /** managedFields passed over as a copy of ones already scanned clean (tests and benchmarks) */
  managedReused = 0;

  /**
   * `canonical`: the text must be exactly what JSON.stringify writes (no whitespace, its
   * escapes, its numbers, no duplicate or array-index keys anywhere), so that the masked text
   * equals JSON.stringify of the masked object; anything else falls back. Used for
   * `last-applied-configuration`, whose masked form is that JSON.stringify.
   */
  constructor(
    private readonly policy: CompiledPolicy,
    private readonly key: Uint8Array,
    private readonly ctx: MaskContext,
    sum: SummaryBuilder,
    text: string,
    private readonly canonical = false,
  ) {
    this.t = text;
    this.n = text.length;
    this.sum = sum;
    this.jr = new JsonMaskRun(policy, key, ctx, sum);
    this.path = this.jr.path;
  }

  /**
   * Mask the whole text. Returns null when the document must take the object path instead
   * (a shape not handled here, malformed JSON, anything unexpected): the caller then parses it.
   */
  run(): string | null {
    return this.complete() ? this.text() : null;
  }

  /**
   * Mask the text and assemble the result from `input`, the bytes the text was decoded from,
   * which must be ASCII (one byte per character, so the text's offsets are the bytes'
   * offsets). Returns `input` itself when nothing changed, null as run() does.
   */
  runBytes(input: Buffer): Buffer | null {
    // (the text is the input's bytes, one character each: no control byte, no control character)
    this.controlFree = !hasControlByte(input);
    this.input = input;
    this.inputView = new DataView(input.buffer, input.byteOffset, input.byteLength);
    if (!this.complete()) return null;
    const p = this.parts;
    if (p.length === 0) return input;
    let size = 0;
    for (let i = 0; i < p.length; i++) {
      const x = p[i]!;
      if (typeof x === "string") size += Buffer.byteLength(x);
      else size += (p[++i] as number) - x;
    }
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (let i = 0; i < p.length; i++) {
      const x = p[i]!;
      if (typeof x === "string") o += out.write(x, o);
      else o += input.copy(out, o, x, p[++i] as number);
    }
    if (o !== size) throw new Error("custos: masked output size mismatch");
    return out;
  }

  /** the masked text (the input itself when nothing changed) */
  private text(): string {
    const p = this.parts;
    if (p.length === 0) return this.t;
    const out: string[] = [];
    for (let i = 0; i < p.length; i++) {
      const x = p[i]!;
      out.push(typeof x === "string" ? x : this.t.slice(x, p[++i] as number));
    }
    return out.join("");
  }

  /** walk the whole text; false when the document must take the object path instead */
  private complete(): boolean {
    try {
      this.document();
      this.keepClean();
      return true;
    } catch (e) {
      if (e instanceof Malformed || e instanceof DocFallback || e instanceof ItemFallback) return false;
      if (e instanceof RangeError) return false; // nesting deeper than the stack: let JSON.parse judge
      throw e;
    } finally {
      forgetLastMatch();
    }
  }

  private document(): void {
    const t = this.t;
    this.ws();
    const root = this.pos;
    if (t.charCodeAt(root) !== 123) throw new DocFallback();
    // Find out the shape from the top-level keys before the bulk: `kind` (Kubernetes writes it
    // first), then `items`. Values passed over here are validated and left as they are.
    this.pos++;
    this.ws();
    if (t.startsWith('"type"', this.pos)) {
      this.watchEvent();
      return;
    }
    // on a watch stream every line is an event, whatever its layout: json.ts decides
    if (this.ctx.request.verb === "watch") throw new DocFallback();
    let kindSeen = false;
    let kind: Json | undefined;
    let listDone = false;
    const seen = new KeysSeen();
    if (t.charCodeAt(this.pos) !== 125) {
      for (;;) {
        if (t.charCodeAt(this.pos) !== 34) throw new Malformed();
        const k = this.readString();
        // a duplicate: the value JSON.parse drops must not be copied either
        if (!seen.add(k)) throw new DocFallback();
        this.ws();
        this.expect(58);
        this.ws();
        if (k === "kind") {
          if (kindSeen || listDone) throw new DocFallback();
          kindSeen = true;
          const s = this.pos;
          this.skipValue();
          kind = JSON.parse(t.slice(s, this.pos)) as Json;
          if (typeof kind !== "string" || kind === "Table" || kind === "Status") throw new DocFallback();
          if (!kind.endsWith("List")) {
            // a single object: its kind rules out every other shape (a duplicate `kind` later
            // makes the item fall back, which here means the whole document)
            this.pos = root;
            this.item(undefined, true);
            this.finish();
            return;
          }
        } else if (k === "items") {
          if (listDone || t.charCodeAt(this.pos) !== 91) throw new DocFallback();
          // a List (kind ends in "List", or no kind so far: one appearing later falls back)
          this.items(typeof kind === "string" ? kind.slice(0, -4) : undefined);
          listDone = true;
        } else this.skipValue();
        this.ws();
        const c = t.charCodeAt(this.pos);
        if (c === 44) {
          this.pos++;
          this.ws();
          continue;
        }
        if (c === 125) break;
        throw new Malformed();
      }
    }
    this.pos++;
    if (!listDone) throw new DocFallback();
    this.finish();
  }

  /**
   * A watch event as the API server writes it, `{"type":"…","object":{"kind":"…",…}}` (pos at
   * `"type"`): its object is masked like a single object, under the path `/object`. Any other
   * layout — more keys, another order, an object whose kind is not first or is a List, Table or
   * Status (an ERROR event) — takes the object path, which decides as json.ts does.
   */
  private watchEvent(): void {
    const t = this.t;
    this.scanString();
    this.ws();
    this.expect(58);
    this.ws();
    if (t.charCodeAt(this.pos) !== 34) throw new DocFallback();
    // the type is scanned with the request's detectors, as json.ts scans every member but the object
    const a = this.jr.requestApplied();
    this.path.push("type");
    if (a.detectors.empty) this.scanString();
    else this.walk(null, a, undefined, false, undefined);
    this.path.pop();
    this.ws();
    this.expect(44);
    this.ws();
    if (!t.startsWith('"object"', this.pos)) throw new DocFallback();
    this.scanString();
    this.ws();
    this.expect(58);
    this.ws();
    const obj = this.pos;
    if (t.charCodeAt(obj) !== 123) throw new DocFallback();
    this.pos++;
    this.ws();
    if (!t.startsWith('"kind"', this.pos)) throw new DocFallback();
    this.scanString();
    this.ws();
    this.expect(58);
    this.ws();
    const kind = this.parseValue();
    if (typeof kind !== "string" || kind === "Table" || kind === "Status" || kind.endsWith("List"))
      throw new DocFallback();
    this.pos = obj;
    this.path.push("object");
    this.item(undefined, true);
    this.path.pop();
    this.ws();
    this.expect(125);
    this.finish();
  }

  private finish(): void {
    if (this.canonical) {
      // JSON.stringify's text, plus the newline kubectl appends (lastApplied keeps it)
      if (this.pos !== this.n && (this.pos !== this.n - 1 || this.t.charCodeAt(this.pos) !== 10))
        throw new DocFallback();
      this.pos = this.n;
    }
    this.ws();
    if (this.pos !== this.n) throw new Malformed();
    if (this.parts.length === 0 && this.copyFrom === 0) return;
    if (this.copyFrom < this.n) this.parts.push(this.copyFrom, this.n);
  }

  // ---- output -----------------------------------------------------------------------------

  /** Replace [s, e) of the input with `rep` (s >= every earlier replacement's end). */
  private put(s: number, e: number, rep: string): void {
    if (s > this.copyFrom) this.parts.push(this.copyFrom, s);
    this.parts.push(rep);
    this.copyFrom = e;
  }

  /** before a member starting at `start`: if only dropped members came before, cut their comma too */
  private beforeMember(m: Members, start: number): void {
    if (m.kept === 0 && m.dropped) this.del(m.afterOpen, start);
  }

  /**
   * After a member (pos just past its value): cut it out when dropped (from the comma after the
   * last kept one, or the bracket), then read the separator; true when `close` ended the container.
   */
  private afterMember(m: Members, drop: boolean, close: number): boolean {
    if (drop) {
      this.del(m.lastKeptEnd, this.pos);
      m.dropped = true;
    } else {
      m.kept++;
      m.lastKeptEnd = this.pos;
    }
    this.ws();
    const c = this.t.charCodeAt(this.pos++);
    if (c === 44) {
      this.ws();
      return false;
    }
    if (c === close) return true;
    throw new Malformed();
  }

  /** Delete [s, e); a part of it before the copy point was already deleted. */
  private del(s: number, e: number): void {
    if (s > this.copyFrom) this.parts.push(this.copyFrom, s);
    if (e > this.copyFrom) this.copyFrom = e;
  }

  // ---- lexing -------------------------------------------------------------------------------

  private ws(): void {
    // (small enough to be inlined: compact JSON has no whitespace)
    if (this.t.charCodeAt(this.pos) > 32) return;
    this.wsRun();
  }

  private wsRun(): void {
    const t = this.t;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 32 || c === 10 || c === 13 || c === 9) p++;
      else break;
    }
    if (p !== this.pos && this.canonical) throw new DocFallback();
    this.pos = p;
  }

  private expect(c: number): void {
    if (this.t.charCodeAt(this.pos) !== c) throw new Malformed();
    this.pos++;
  }

  /** position of the first backslash at or after `bsFrom` (n: none) */
  private nextBs = -1;
  private bsFrom = 0;
  /** the body whose ASCII bytes the text is, one character per byte (runBytes), else null */
  private input: Buffer | null = null;
  /** the same bytes, read four at a time (readKey) */
  private inputView: DataView | null = null;
  /** the text holds no character below U+0020 at all (known from its bytes: runBytes) */
  private controlFree = false;
  /** position of the first character below U+0020 at or after `ctlFrom` (n: none) */
  private nextCtl = -1;
  private ctlFrom = 0;

  /**
   * Pass over the string token at pos (validated); sets `esc`. The closing quote is found with
   * indexOf; the next backslash and the next control character are kept as positions, searched
   * again only once passed, so a string without escapes costs one native search.
   */
  private scanString(): void {
    const t = this.t;
    const start = this.pos;
    let q = t.indexOf('"', start + 1);
    if (q === -1) throw new Malformed();
    let bs = this.nextBs;
    // (the prescan of an item reads ahead, then the item is read again: positions go back)
    if (bs <= start || start < this.bsFrom) {
      bs = t.indexOf("\\", start + 1);
      if (bs === -1) bs = this.n;
      this.nextBs = bs;
      this.bsFrom = start;
    }
    let esc = false;
    if (bs < q) {
      esc = true;
      q = this.escapedString(start);
    }
    let ctl = this.nextCtl;
    if (this.controlFree) ctl = this.n;
    else if (ctl <= start || start < this.ctlFrom) {
      CONTROL.lastIndex = start + 1;
      ctl = CONTROL.test(t) ? CONTROL.lastIndex - 1 : this.n;
      this.nextCtl = ctl;
      this.ctlFrom = start;
    }
    if (ctl < q) throw new Malformed();
    if (esc && this.canonical) {
      const raw = t.slice(start, q + 1);
      if (JSON.stringify(JSON.parse(raw)) !== raw) throw new DocFallback();
    }
    this.esc = esc;
    this.pos = q + 1;
  }

  /** A string with backslashes: validate it; returns its closing quote's position. */
  private escapedString(start: number): number {
    ESCAPED_STRING.lastIndex = start + 1;
    if (!ESCAPED_STRING.test(this.t)) throw new Malformed();
    return ESCAPED_STRING.lastIndex - 1;
  }

  /**
   * The key at pos, decoded. Keys repeat in every item of a list: a key seen before is
   * returned as the same string (no new string to allocate, its hash already computed).
   */
  private readKey(): string {
    const t = this.t;
    const s = this.pos + 1;
    this.scanString();
    const e = this.pos - 1;
    const len = e - s;
    if (this.esc || len > 40) return this.esc ? (JSON.parse(t.slice(s - 1, e + 1)) as string) : t.slice(s, e);
    if (len === 0) return "";
    const h =
      (len * 31 + t.charCodeAt(s) * 7 + t.charCodeAt(e - 1) * 131 + t.charCodeAt(s + (len >> 1)) * 17) & 4095;
    const c = KEY_CACHE[h];
    if (c !== undefined && c.length === len) {
      // Compared on the body's bytes when there are (the text is an external string, whose
      // native compares cost more per call than this loop for a key's few characters), four
      // at a time against the key's own bytes; the rest one by one.
      const dv = this.inputView;
      let i = 0;
      if (dv !== null) {
        const w = KEY_WORDS[h]!;
        const words = w.length;
        let j = 0;
        while (j < words && dv.getInt32(s + 4 * j, true) === w[j]) j++;
        if (j === words) {
          i = words * 4;
          const b = this.input!;
          while (i < len && b[s + i] === c.charCodeAt(i)) i++;
        }
      } else while (i < len && t.charCodeAt(s + i) === c.charCodeAt(i)) i++;
      if (i === len) return c;
    }
    // a copy, not a slice: the cache outlives this text, which a slice would keep alive
    const k = internalized(t.slice(s, e));
    KEY_CACHE[h] = k;
    KEY_WORDS[h] = keyWords(k);
    return k;
  }

  /** key sets of the objects being walked, one per nesting level (reused, not reallocated) */
  private readonly seenPool: KeysSeen[] = [];
  private seenDepth = 0;

  /** member bookkeeping of the containers being walked, one per nesting level (reused) */
  private readonly membersPool: Members[] = [];
  private membersDepth = 0;

  private members(afterOpen: number): Members {
    let m = this.membersPool[this.membersDepth];
    if (m === undefined) {
      m = new Members();
      this.membersPool[this.membersDepth] = m;
    }
    this.membersDepth++;
    return m.reset(afterOpen);
  }

  /** raw key sets of the objects passed over (same depth counter as keysSeen) */
  private readonly rawPool: RawKeys[] = [];

  private rawKeys(): RawKeys {
    return this.keySet(this.rawPool, RawKeys);
  }

  private keysSeen(): KeysSeen {
    return this.keySet(this.seenPool, KeysSeen);
  }

  /** the key set for the next nesting level, from its pool (made once, reset after) */
  private keySet<T extends { reset(): void }>(pool: T[], make: new () => T): T {
    let k = pool[this.seenDepth];
    if (k === undefined) {
      k = new make();
      pool[this.seenDepth] = k;
    } else k.reset();
    this.seenDepth++;
    return k;
  }

  private lastRaw = "";
  private lastQuoted = '""';

  /** JSON.stringify of a replacement string (the same token repeats: redact labels). */
  private quote(r: string): string {
    if (r !== this.lastRaw) {
      this.lastRaw = r;
      this.lastQuoted = JSON.stringify(r);
    }
    return this.lastQuoted;
  }

  /** The string token at pos, decoded. */
  private readString(): string {
    const s = this.pos;
    this.scanString();
    return this.esc ? (JSON.parse(this.t.slice(s, this.pos)) as string) : this.t.slice(s + 1, this.pos - 1);
  }

  private digits(): void {
    const t = this.t;
    let p = this.pos;
    let c = t.charCodeAt(p);
    if (!(c >= 48 && c <= 57)) throw new Malformed();
    do c = t.charCodeAt(++p);
    while (c >= 48 && c <= 57);
    this.pos = p;
  }

  private number(): void {
    const t = this.t;
    const start = this.pos;
    this.numberToken();
    if (this.canonical) {
      const raw = t.slice(start, this.pos);
      if (JSON.stringify(Number(raw)) !== raw) throw new DocFallback();
    }
  }

  private numberToken(): void {
    const t = this.t;
    if (t.charCodeAt(this.pos) === 45) this.pos++;
    const c = t.charCodeAt(this.pos);
    if (c === 48) this.pos++;
    else if (c >= 49 && c <= 57) this.digits();
    else throw new Malformed();
    if (t.charCodeAt(this.pos) === 46) {
      this.pos++;
      this.digits();
    }
    const e = t.charCodeAt(this.pos);
    if (e === 101 || e === 69) {
      this.pos++;
      const s = t.charCodeAt(this.pos);
      if (s === 43 || s === 45) this.pos++;
      this.digits();
    }
  }

  private literal(word: string): void {
    if (!this.t.startsWith(word, this.pos)) throw new Malformed();
    this.pos += word.length;
  }

  /** Pass over (and validate) the value at pos. */
  private skipValue(): void {
    const t = this.t;
    const c = t.charCodeAt(this.pos);
    if (c === 34) this.scanString();
    else if (c === 123) {
      this.pos++;
      this.ws();
      if (t.charCodeAt(this.pos) === 125) {
        this.pos++;
        return;
      }
      // JSON.parse keeps the last of two equal keys: the text must not carry the shadowed
      // value either (the item is re-serialised). Canonical: JSON.stringify writes index keys
      // first, so such an object would not come back as written either.
      const seen = this.canonical ? this.keysSeen() : null;
      const raw = seen === null ? this.rawKeys() : null;
      for (;;) {
        if (t.charCodeAt(this.pos) !== 34) throw new Malformed();
        if (seen !== null) {
          const k = this.readKey();
          if ((!seen.add(k) && this.checkDups) || isIndexKey(k)) throw new ItemFallback();
        } else {
          const ks = this.pos + 1;
          this.scanString();
          if (!raw!.add(t, ks, this.pos - 1, this.esc) && this.checkDups) throw new ItemFallback();
        }
        this.ws();
        this.expect(58);
        this.ws();
        this.skipValue();
        this.ws();
        const d = t.charCodeAt(this.pos++);
        if (d === 44) this.ws();
        else if (d === 125) {
          this.seenDepth--;
          return;
        } else throw new Malformed();
      }
    } else if (c === 91) {
      this.pos++;
      this.ws();
      if (t.charCodeAt(this.pos) === 93) {
        this.pos++;
        return;
      }
      for (;;) {
        this.skipValue();
        this.ws();
        const d = t.charCodeAt(this.pos++);
        if (d === 44) this.ws();
        else if (d === 93) return;
        else throw new Malformed();
      }
    } else if (c === 116) this.literal("true");
    else if (c === 102) this.literal("false");
    else if (c === 110) this.literal("null");
    else if (c === 45 || (c >= 48 && c <= 57)) this.number();
    else throw new Malformed();
  }

  /**
   * Pass over the value at pos for the prescan: keys are not decoded nor checked for
   * duplicates (the masking pass that follows reads every key again and validates all).
   */
  private passValue(): void {
    const t = this.t;
    const c = t.charCodeAt(this.pos);
    if (c !== 123 && c !== 91) {
      this.skipValue();
      return;
    }
    const close = c === 123 ? 125 : 93;
    this.pos++;
    this.ws();
    if (t.charCodeAt(this.pos) === close) {
      this.pos++;
      return;
    }
    for (;;) {
      if (close === 125) this.passMember();
      else this.passValue();
      this.ws();
      const d = t.charCodeAt(this.pos++);
      if (d === 44) this.ws();
      else if (d === close) return;
      else throw new Malformed();
    }
  }

  /** Parse the value at pos as an object (validated by JSON.parse). */
  private parseValue(): Json {
    if (this.t.charCodeAt(this.pos) === 34) return this.readString();
    const s = this.pos;
    this.skipValue();
    return JSON.parse(this.t.slice(s, this.pos)) as Json;
  }

  /** Mask the value at pos as an object: `f` gets it parsed; its result replaces it. */
  private materialise(f: (v: Json) => Json | Dropped): boolean {
    const s = this.pos;
    const v = this.parseValue();
    const r = f(v);
    if (r === DROP) return true;
    if (r !== v) this.put(s, this.pos, JSON.stringify(r));
    return false;
  }

  // ---- shapes -------------------------------------------------------------------------------

  /** A List's items (pos at `[`): each item judged by its own namespace and labels. */
  private items(kindHint: string | undefined): void {
    const t = this.t;
    this.pos++;
    this.ws();
    this.path.push("items", 0);
    const depth = this.path.length - 1;
    if (t.charCodeAt(this.pos) === 93) this.pos++;
    else
      for (let i = 0; ; i++) {
        this.path[depth] = i;
        this.item(kindHint, false);
        this.ws();
        const d = t.charCodeAt(this.pos++);
        if (d === 44) this.ws();
        else if (d === 93) break;
        else throw new Malformed();
      }
    this.path.length -= 2;
  }

  /** One Kubernetes object (a list item, or the whole document when `root`). */
  private item(kindHint: string | undefined, root: boolean, fixed?: Applied): void {
    const t = this.t;
    const start = this.pos;
    const jr = this.jr;
    if (t.charCodeAt(start) !== 123) {
      this.materialise((v) => jr.walkDetached(v, jr.requestApplied()));
      return;
    }
    const parts = this.parts.length;
    const copyFrom = this.copyFrom;
    const depth = this.path.length;
    const seenDepth = this.seenDepth;
    const membersDepth = this.membersDepth;
    let redo: ItemRedo | null = null;
    for (;;) {
      const snap = this.sum.snapshot();
      try {
        const facts = this.prescan();
        this.itemKind = typeof facts.kind === "string" ? facts.kind : kindHint;
        this.eventish = isEvent(facts, kindHint);
        this.itemFacts = facts;
        this.itemHint = kindHint;
        let a: Applied;
        if (redo !== null) {
          a = redo.applied;
          this.refState = redo.refSeen ? 2 : 0;
        } else if (
          fixed === undefined &&
          this.eventish &&
          facts.involvedObject === undefined &&
          facts.regarding === undefined
        ) {
          const meta = facts.metadata as JsonObject | undefined;
          const ns = typeof meta === "object" && meta !== null ? meta.namespace : undefined;
          const guess: JsonObject = { kind: this.lastRefKind, apiVersion: this.lastRefApiVersion };
          if (ns !== undefined) guess.namespace = ns;
          this.guess = guess;
          facts.involvedObject = guess;
          a = jr.appliedFor(facts, kindHint);
          delete facts.involvedObject;
          this.refState = 1;
        } else {
          a = fixed ?? jr.appliedFor(facts, kindHint);
          this.refState = 0;
        }
        const noop = a.trie === null && a.detectors.empty && !a.anyMask;
        this.object(noop ? null : a.trie === null ? null : [a.trie], a, Mode.Root, undefined, noop);
        // guessed, and the event named no object: its set is the one without
        if (this.refState === 1) {
          this.refState = 0;
          const truth = jr.appliedFor(facts, kindHint);
          if (truth !== a) throw new ItemRedo(truth, false);
        }
        this.refState = 0;
        this.sum.release();
        return;
      } catch (e) {
        this.refState = 0;
        this.refCapture = null;
        const again = e instanceof ItemRedo && redo === null;
        if (!again && (!(e instanceof ItemFallback) || root)) throw e;
        // roll back what this item wrote
        this.parts.length = parts;
        this.copyFrom = copyFrom;
        this.path.length = depth;
        this.seenDepth = seenDepth;
        this.membersDepth = membersDepth;
        this.sum.restore(snap);
        this.pos = start;
        if (again) {
          redo = e as ItemRedo;
          this.itemRedos++;
          continue;
        }
        // mask it as an object
        this.itemFallbacks++;
        // re-serialised even when unchanged: a value shadowed by a duplicate key is not emitted
        this.checkDups = false;
        const v = this.parseValue() as JsonObject;
        this.checkDups = true;
        this.put(start, this.pos, JSON.stringify(jr.rootObject(v, kindHint, jr.appliedFor(v, kindHint))));
        return;
      }
    }
  }

  /** the namespace appliedFor takes for the item (its own, else the request's) */
  private itemNs(): Json | undefined {
    const meta = this.itemFacts.metadata;
    const ns = typeof meta === "object" && meta !== null && !Array.isArray(meta) ? meta.namespace : undefined;
    return typeof ns === "string" && ns !== "" ? ns : this.ctx.request.namespace;
  }

  /**
   * An Event's involvedObject / regarding in the masking pass (pos at its value), while the set
   * was guessed (refState 1) or came from it (2): check the guess, or accept the key once. A
   * fact key after it sends the item to the object walker, as for any item. When the object is
   * walked member by member, its kind, apiVersion and namespace are read as the walk passes them
   * (refCapture) and the guess is checked after it (refChecked): the object is read once.
   */
  private eventRef(k: string, keyStart: number, a: Applied, walked: boolean): void {
    if (this.refState === 1) {
      const vs = this.pos;
      if (walked && this.t.charCodeAt(vs) === 123) {
        this.refCapture = { at: vs, depth: this.path.length + 1, members: 0, ok: true, ref: {} };
      } else {
        const ref = this.parseValue();
        this.pos = vs;
        this.checkRef(k, ref, a);
      }
    }
    this.refState = 0;
    this.factsLimit = keyStart;
  }

  /** a member of the event's object under refCapture (pos at its value, left there) */
  private capture(cap: NonNullable<JsonTextMaskRun["refCapture"]>, k: string): void {
    cap.members++;
    if (k !== "kind" && k !== "apiVersion" && k !== "namespace") return;
    const vs = this.pos;
    if (this.t.charCodeAt(vs) === 34) cap.ref[k] = this.readString();
    else cap.ok = false;
    this.pos = vs;
  }

  /** after the walk of an event's object under refCapture: check the guess with what it read */
  private refChecked(k: string, a: Applied): void {
    const cap = this.refCapture!;
    this.refCapture = null;
    let ref = cap.ref;
    if (!cap.ok || cap.members === 0) {
      // (a value that is not a plain string, or an object not walked member by member: read it)
      const end = this.pos;
      this.pos = cap.at;
      ref = this.prescanRef();
      this.pos = end;
    }
    this.checkRef(k, ref, a);
  }

  /** the guess was right, or the set it gave is the object's own; else redo the item */
  private checkRef(k: string, ref: Json, a: Applied): void {
    const g = this.guess;
    const isRef = typeof ref === "object" && ref !== null && !Array.isArray(ref);
    if (isRef) {
      if (ref.kind !== undefined) this.lastRefKind = ref.kind;
      if (ref.apiVersion !== undefined) this.lastRefApiVersion = ref.apiVersion;
    }
    // the guess was right when the object's facts are the guessed ones (no need to ask again)
    const same =
      isRef &&
      k === "involvedObject" &&
      ref.kind === g.kind &&
      ref.apiVersion === g.apiVersion &&
      (ref.namespace === g.namespace ||
        ((ref.namespace === undefined || ref.namespace === "") && g.namespace === this.itemNs()));
    if (!same) {
      const truth = this.jr.appliedFor({ ...this.itemFacts, [k]: ref }, this.itemHint);
      if (truth !== a) throw new ItemRedo(truth, true);
    }
  }

  /** an event's object being walked under a guess: where it starts, its depth, what was read */
  private refCapture: { at: number; depth: number; members: number; ok: boolean; ref: JsonObject } | null =
    null;

  /**
   * The facts `appliedFor` reads, from the item's keys up to `metadata` (kind, apiVersion,
   * involvedObject, regarding) and metadata's keys up to `namespace` and `labels`. Keys after
   * these are checked as the item is masked: a fact key seen later falls back, except an
   * Event's involvedObject / regarding, which checks the guess (see refState).
   */
  private prescan(): JsonObject {
    const t = this.t;
    const save = this.pos;
    const obj: JsonObject = {};
    this.factsLimit = Number.POSITIVE_INFINITY;
    this.pos++;
    this.ws();
    if (t.charCodeAt(this.pos) !== 125)
      for (;;) {
        if (t.charCodeAt(this.pos) !== 34) throw new Malformed();
        const keyStart = this.pos;
        const k = this.readKey();
        this.ws();
        this.expect(58);
        this.ws();
        if (k === "metadata") {
          this.factsLimit = keyStart;
          obj.metadata = t.charCodeAt(this.pos) === 123 ? this.prescanMeta() : this.parseValue();
          break;
        }
        if (isFactKey(k))
          obj[k] =
            (k === "involvedObject" || k === "regarding") && t.charCodeAt(this.pos) === 123
              ? this.prescanRef()
              : this.parseValue();
        else this.passValue();
        this.ws();
        const c = t.charCodeAt(this.pos++);
        if (c === 44) this.ws();
        else if (c === 125) break;
        else throw new Malformed();
      }
    this.pos = save;
    return obj;
  }

  /**
   * The members of the object at pos, read and validated in order: `member` gets each key with
   * pos at its value, passes over the value, and returns true to stop there (pos just past that
   * value). Returns whether it stopped before the end of the object.
   */
  private eachMember(member: (k: string) => boolean): boolean {
    const t = this.t;
    this.pos++;
    this.ws();
    if (t.charCodeAt(this.pos) === 125) {
      this.pos++;
      return false;
    }
    for (;;) {
      if (t.charCodeAt(this.pos) !== 34) throw new Malformed();
      const k = this.readKey();
      this.ws();
      this.expect(58);
      this.ws();
      if (member(k)) return true;
      this.ws();
      const c = t.charCodeAt(this.pos++);
      if (c === 44) this.ws();
      else if (c === 125) return false;
      else throw new Malformed();
    }
  }

  /** what the masks of an event's object depend on: its kind, apiVersion and namespace */
  private prescanRef(): JsonObject {
    const ref: JsonObject = {};
    this.eachMember((k) => {
      // (the last of duplicate keys wins, as in JSON.parse)
      if (k === "kind" || k === "apiVersion" || k === "namespace") ref[k] = this.parseValue();
      else this.passValue();
      return false;
    });
    return ref;
  }

  private prescanMeta(): JsonObject {
    const meta: JsonObject = {};
    let ns = false;
    // (labels are read only where a mask selects by them)
    let labels = !this.jr.labelsMatter;
    this.eachMember((k) => {
      if (k === "namespace") {
        meta.namespace = this.parseValue();
        ns = true;
      } else if (k === "labels" && !labels) {
        meta.labels = this.parseValue();
        labels = true;
      } else this.passValue();
      // a second namespace or labels key later is a duplicate: the masking pass falls back
      return ns && labels;
    });
    return meta;
  }

  /** passValue for one `"key": value` member of an object (pos at the key) */
  private passMember(): void {
    if (this.t.charCodeAt(this.pos) !== 34) throw new Malformed();
    this.scanString();
    this.ws();
    this.expect(58);
    this.ws();
    this.passValue();
  }

  /**
   * An object (pos at `{`), member by member as rootObject / metadata / annotations / walk do.
   * A member the mask drops is cut out with its comma.
   */
  private object(
    nodes: TrieNode[] | null,
    a: Applied,
    mode: Mode,
    key: string | number | undefined,
    noop = false,
  ): void {
    const t = this.t;
    this.pos++;
    const afterOpen = this.pos;
    this.ws();
    if (t.charCodeAt(this.pos) === 125) {
      this.pos++;
      return;
    }
    const keyed =
      !a.detectors.empty &&
      (mode === Mode.Annotations ||
        mode === Mode.Managed ||
        (mode === Mode.Walk && typeof key === "string" && KEYED_MAPS.has(key)));
    const seen = this.keysSeen();
    const m = this.members(afterOpen);
    for (;;) {
      if (t.charCodeAt(this.pos) !== 34) throw new Malformed();
      const keyStart = this.pos;
      const k = this.readKey();
      // (`__proto__`: the object walker assigns it, which sets a prototype; keep its behaviour)
      if (!seen.add(k) || isIndexKey(k) || k === "__proto__") throw new ItemFallback();
      // a data-map key holding an identifier is renamed: the object walker does that
      if (keyed && a.detectors.findCached(k) !== null) throw new ItemFallback();
      this.ws();
      this.expect(58);
      this.ws();
      this.beforeMember(m, keyStart);
      let drop: boolean;
      if (mode === Mode.Walk) drop = this.walkMember(k, nodes, a, key);
      else if (mode === Mode.Root) {
        const ref = this.refState !== 0 && (k === "involvedObject" || k === "regarding");
        if (ref) this.eventRef(k, keyStart, a, !noop);
        else if (keyStart > this.factsLimit && isFactKey(k)) throw new ItemFallback();
        if (noop) {
          this.skipValue();
          drop = false;
        } else drop = this.rootMember(k, nodes, a);
        if (ref && this.refCapture !== null) this.refChecked(k, a);
      } else if (mode === Mode.Meta) drop = this.metaMember(k, nodes, a);
      else if (mode === Mode.Managed) {
        const vs = this.pos;
        if (k === "time" && this.path.length === this.managedDepth && timestampAt(t, vs)) {
          // an entry's time: the API server's own timestamp (json.ts managed)
          this.pos = TIMESTAMP_TOKEN.lastIndex;
          this.managedTimes?.push(vs, this.pos);
        } else {
          this.path.push(k);
          this.managed(a);
          this.path.pop();
        }
        drop = false;
      } else drop = this.annotationMember(k, nodes, a);
      if (this.afterMember(m, drop, 125)) {
        this.seenDepth--;
        this.membersDepth--;
        return;
      }
    }
  }

  private rootMember(k: string, nodes: TrieNode[] | null, a: Applied): boolean {
    const cn = childNodes(nodes, k);
    const c = this.t.charCodeAt(this.pos);
    const kind = this.itemKind;
    let drop = false;
    this.path.push(k);
    if (k === "metadata" && c === 123 && terminalOf(cn) === null) this.object(cn, a, Mode.Meta, undefined);
    else if (
      ((k === "data" && kind === "Secret") || (k === "binaryData" && kind === "ConfigMap")) &&
      c === 123 &&
      terminalOf(cn) === null
    )
      drop = this.materialise((v) => this.jr.base64Map(v as JsonObject, cn, a));
    else if (this.eventish && EVENT_TIMES.has(k) && cn === null) this.skipValue();
    else if ((k === "apiVersion" || k === "kind") && cn === null) this.skipValue();
    else drop = this.walk(cn, a, k, true, undefined);
    this.path.pop();
    return drop;
  }

  private metaMember(k: string, nodes: TrieNode[] | null, a: Applied): boolean {
    const cn = childNodes(nodes, k);
    let drop = false;
    this.path.push(k);
    if (k === "managedFields") {
      if (!a.anyMask) {
        if (a.detectors.empty) this.skipValue();
        else this.managedFields(a);
      } else {
        // dropped whole: its keys need no decoding nor duplicate check (nothing of it is emitted)
        this.passValue();
        drop = true;
        const sum = this.sum;
        for (const id of a.maskIds) sum.addRule(id);
        sum.count("managedFields");
        sum.addPath(this.path);
      }
    } else if (k === "annotations" && this.t.charCodeAt(this.pos) === 123 && terminalOf(cn) === null)
      this.object(cn, a, Mode.Annotations, undefined);
    else drop = this.walk(cn, a, k, true, "metadata");
    this.path.pop();
    return drop;
  }

  /**
   * The managedFields entries that last scanned clean in this run, by their index, and the
   * detectors they were scanned with. The items of a list written by the same controllers repeat
   * them but for each entry's time (every kubelet event carries the same entry, stamped with its
   * own second; a Deployment's replicas share the controller manager's entry): an entry that is
   * that text again, with timestamps of the same length where it had them, is passed over — a
   * JSON value that starts the rest of the text is all of the value there, every other string
   * and key in it is the clean text's own, and an entry's timestamp is not scanned (json.ts
   * `managed`). A run that ends well leaves its clean entries to the next run with the same
   * detectors (CLEAN_MANAGED), so the events of a watch share them too.
   */
  private readonly cleanBy = new Map<DetectorSet, (CleanManaged | undefined)[]>();
  /** the detector sets for which this run made clean entries (slices of its text) */
  private readonly cleanMade = new Set<DetectorSet>();
  /** while a managedFields entry is walked: where its timestamp token starts and ends */
  private managedTimes: number[] | null = null;
  /** the path length at which a managedFields entry's members are read */
  private managedDepth = -1;

  /** managedFields kept under detectors (metadata member; pos at its value) */
  private managedFields(a: Applied): void {
    const t = this.t;
    const d = a.detectors;
    if (t.charCodeAt(this.pos) !== 91) {
      this.managed(a);
      return;
    }
    let entries = this.cleanBy.get(d);
    if (entries === undefined) {
      entries = CLEAN_MANAGED.get(d)?.slice() ?? [];
      this.cleanBy.set(d, entries);
    }
    this.pos++;
    this.ws();
    if (t.charCodeAt(this.pos) === 93) {
      this.pos++;
      return;
    }
    this.path.push(0);
    const depth = this.path.length - 1;
    for (let i = 0; ; i++) {
      this.path[depth] = i;
      const clean = i < CLEAN_MANAGED_ENTRIES && !this.canonical ? entries[i] : undefined;
      if (clean !== undefined && this.reuse(clean)) clean.misses = 0;
      else {
        if (clean !== undefined) clean.misses++;
        this.managedEntry(a, entries, i);
      }
      this.ws();
      const c = t.charCodeAt(this.pos++);
      if (c === 44) this.ws();
      else if (c === 93) break;
      else throw new Malformed();
    }
    this.path.pop();
  }

  /** one managedFields entry (pos at it), walked; kept as `entries[i]` if it is clean */
  private managedEntry(a: Applied, entries: (CleanManaged | undefined)[], i: number): void {
    const t = this.t;
    const start = this.pos;
    const parts = this.parts.length;
    const copyFrom = this.copyFrom;
    const counted = this.sum.counted;
    const times: number[] = [];
    this.managedTimes = times;
    this.managedDepth = this.path.length;
    try {
      this.managed(a);
    } finally {
      this.managedTimes = null;
      this.managedDepth = -1;
    }
    // clean: nothing replaced nor counted (a key holding an identifier threw ItemFallback)
    if (
      this.canonical ||
      i >= CLEAN_MANAGED_ENTRIES ||
      this.pos - start > CLEAN_MANAGED_MAX ||
      this.parts.length !== parts ||
      this.copyFrom !== copyFrom ||
      this.sum.counted !== counted
    )
      return;
    const segs: string[] = [];
    const timeLens: number[] = [];
    let from = start;
    for (let j = 0; j < times.length; j += 2) {
      segs.push(t.slice(from, times[j]));
      timeLens.push(times[j + 1]! - times[j]!);
      from = times[j + 1]!;
    }
    segs.push(t.slice(from, this.pos));
    entries[i] = {
      segs,
      bytes: segs.map((x) => (NON_ASCII.test(x) ? null : Buffer.from(x, "latin1"))),
      timeLens,
      length: this.pos - start,
      misses: 0,
    };
    this.cleanMade.add(a.detectors);
  }

  /** pass over the entry at pos when it is `clean`'s text, but perhaps for other timestamps */
  private reuse(clean: CleanManaged): boolean {
    const t = this.t;
    const start = this.pos;
    if (start + clean.length > this.n) return false;
    const segs = clean.segs;
    const input = this.input;
    const lens = clean.timeLens;
    let p = start;
    for (let i = 0; ; i++) {
      const seg = segs[i]!;
      const b = clean.bytes[i] ?? null;
      if (input !== null && seg.length >= 64) {
        if (b === null || input.compare(b, 0, b.length, p, p + b.length) !== 0) return false;
      } else if (!t.startsWith(seg, p)) return false;
      p += seg.length;
      if (i === lens.length) break;
      const end = p + lens[i]!;
      if (!timestampAt(t, p) || TIMESTAMP_TOKEN.lastIndex !== end) return false;
      p = end;
    }
    this.pos = p;
    this.managedReused++;
    return true;
  }

  /** after a run that ended well: its clean managedFields entries, for the next run */
  /**
   * An entry this run made replaces the kept one at its index only once that one has missed
   * CLEAN_MANAGED_MISSES times in a row: an entry unique to each object (a kubelet's, naming the
   * pod's IP) is then not copied at every watch event, and a stream whose entries changed for
   * good gets the new ones after a few events.
   */
  private keepClean(): void {
    for (const d of this.cleanMade) {
      const known = CLEAN_MANAGED.get(d);
      let changed = false;
      const next = this.cleanBy.get(d)!.map((c, i) => {
        const k = known?.[i];
        if (c === undefined || c === k) return c ?? k;
        if (k !== undefined && k.misses < CLEAN_MANAGED_MISSES) return k;
        changed = true;
        // copies, not slices: a slice would keep the whole response text alive
        return { ...c, segs: c.segs.map(ownString), misses: 0 };
      });
      if (changed) CLEAN_MANAGED.set(d, next);
    }
  }

  /** json.ts `managed` over the value at pos: every key is data, every string scanned */
  private managed(a: Applied): void {
    const c = this.t.charCodeAt(this.pos);
    if (c === 123) this.object(null, a, Mode.Managed, undefined);
    else if (c === 91) this.array(null, a, undefined, true);
    else this.walk(null, a, undefined, false, undefined);
  }

  private annotationMember(k: string, nodes: TrieNode[] | null, a: Applied): boolean {
    const cn = childNodes(nodes, k);
    let drop = false;
    this.path.push(k);
    if (k === LAST_APPLIED && this.t.charCodeAt(this.pos) === 34 && terminalOf(cn) === null) {
      const s = this.pos;
      const v = this.readString();
      const r = this.lastApplied(v, a);
      if (r !== v) this.put(s, this.pos, JSON.stringify(r));
    } else drop = this.walk(cn, a, k, true, undefined);
    this.path.pop();
    return drop;
  }

  /**
   * json.ts `lastApplied` on the annotation's text: when that text is JSON.stringify's own
   * (kubectl writes Go's compact JSON, the same for ordinary objects), its masked text is
   * JSON.stringify of the masked object, so the text walk gives the same string; otherwise,
   * or if the text walk gives up, the object walk does it.
   */
  private lastApplied(s: string, a: Applied): Json {
    if (!a.anyMask && a.detectors.empty) return s;
    // a lone surrogate is escaped by JSON.stringify; a pair is not: leave both to the object walk
    if (s.charCodeAt(0) !== 123 || SURROGATE.test(s)) return this.jr.lastApplied(s, a);
    const sub = new SummaryBuilder(0);
    const inner = new JsonTextMaskRun(this.policy, this.key, this.ctx, sub, s, true);
    const out = inner.runFixed(a);
    if (out === null) return this.jr.lastApplied(s, a);
    if (out === s) return s;
    this.sum.absorb(sub);
    this.sum.addPath(this.path);
    return out;
  }

  /** The whole text is one object masked with the applied set `a` (rootObject(v, undefined, a)). */
  runFixed(a: Applied): string | null {
    try {
      this.item(undefined, true, a);
      this.finish();
      return this.text();
    } catch (e) {
      if (e instanceof Malformed || e instanceof DocFallback || e instanceof ItemFallback) return null;
      if (e instanceof RangeError) return null;
      throw e;
    }
  }

  private walkMember(
    k: string,
    nodes: TrieNode[] | null,
    a: Applied,
    key: string | number | undefined,
  ): boolean {
    const cap = this.refCapture;
    if (cap !== null && this.path.length === cap.depth) this.capture(cap, k);
    const cn = childNodes(nodes, k);
    if (cn === null && (a.detectors.empty || skipForDetectors(k, key))) {
      this.skipValue();
      return false;
    }
    this.path.push(k);
    const drop = this.walk(cn, a, k, true, key);
    this.path.pop();
    return drop;
  }

  /** json.ts `walk` over the value at pos; true: the caller drops it. */
  private walk(
    nodes: TrieNode[] | null,
    a: Applied,
    key: string | number | undefined,
    canDrop: boolean,
    parentKey: string | number | undefined,
  ): boolean {
    const t = this.t;
    const term = terminalOf(nodes);
    const c = t.charCodeAt(this.pos);
    if (term !== null) {
      if (c === 34) {
        const s = this.pos;
        if (term.strategy.kind === "redact" && term.base64 !== true) {
          // json.ts `field` on a string: the token does not depend on the value, which is not
          // even read (a hit is recorded either way; the text changes unless it is the token)
          this.scanString();
          this.sum.hit(term.maskId, term.label, this.path);
          const q = quotedToken(term.label);
          if (this.pos - s !== q.length || !t.startsWith(q, s)) this.put(s, this.pos, q);
          return false;
        }
        const v = this.readString();
        const r = this.jr.field(v, term, canDrop);
        if (r === DROP) return true;
        if (r !== v) this.put(s, this.pos, this.quote(r as string));
        return false;
      }
      return this.materialise((v) => this.jr.field(v, term, canDrop));
    }
    if (c === 34) {
      if (
        a.detectors.empty ||
        (typeof key === "string" && nodes === null && skipForDetectors(key, parentKey))
      ) {
        this.scanString();
        return false;
      }
      const s = this.pos;
      this.scanString();
      let r: string | Dropped;
      let v: string;
      if (this.esc) {
        v = JSON.parse(t.slice(s, this.pos)) as string;
        r = this.jr.str(v, a, canDrop);
      } else {
        // the detectors' cheap checks and cache run on the text, before any string is made
        const spans = a.detectors.findIn(t, s + 1, this.pos - 1, this.input);
        if (spans === null) return false;
        v = t.slice(s + 1, this.pos - 1);
        r = this.jr.spans(v, spans, canDrop);
      }
      if (r === DROP) return true;
      if (r !== v) this.put(s, this.pos, this.quote(r));
      return false;
    }
    if ((c !== 123 && c !== 91) || (nodes === null && a.detectors.empty)) {
      this.skipValue();
      return false;
    }
    if (c === 123) {
      this.object(nodes, a, Mode.Walk, key);
      return false;
    }
    this.array(nodes, a, key, false);
    return false;
  }

  /**
   * An array at pos, element by element: walked (an element dropped by a field mask is removed;
   * a detector never drops one), or with `managed`, as managedFields are.
   */
  private array(
    nodes: TrieNode[] | null,
    a: Applied,
    key: string | number | undefined,
    managed: boolean,
  ): void {
    this.pos++;
    const afterOpen = this.pos;
    this.ws();
    if (this.t.charCodeAt(this.pos) === 93) {
      this.pos++;
      return;
    }
    this.path.push(0);
    const depth = this.path.length - 1;
    const m = this.members(afterOpen);
    for (let i = 0; ; i++) {
      this.path[depth] = i;
      this.beforeMember(m, this.pos);
      let drop = false;
      if (managed) this.managed(a);
      else {
        const cn =
          nodes === null ? null : childNodes(nodes, i < INDEX_KEYS.length ? INDEX_KEYS[i]! : String(i));
        if (cn === null && a.detectors.empty) this.skipValue();
        else drop = this.walk(cn, a, key, cn !== null, key);
      }
      if (this.afterMember(m, drop, 93)) break;
    }
    this.membersDepth--;
    this.path.pop();
  }
}

export interface JsonTextResult {
  text: string;
  summary: MaskSummary;
  /** "text": masked on the text (some items possibly as objects); "object": parsed whole */
  via: "text" | "object";
  /** list items the text walk handed to the object walker */
  itemFallbacks: number;
  /** items masked again because an event's guessed object was wrong */
  itemRedos: number;
  /** managedFields passed over as a copy of ones already scanned clean */
  managedReused: number;
}

type Diagnostics = Omit<JsonTextResult, "text">;

/**
 * Mask `text` on the text (`viaText` runs the walk and assembles its output, null when it gives
 * up) or else on the parsed object, whose masked form `viaObject` gets as JSON.stringify's
 * text: always re-serialised, so a value shadowed by a duplicate key is not emitted. Throws
 * JSON.parse's SyntaxError when the text is not JSON.
 */
function maskDocument<T>(
  policy: CompiledPolicy,
  key: Uint8Array,
  ctx: MaskContext,
  maxPaths: number | undefined,
  text: string,
  viaText: (run: JsonTextMaskRun) => T | null,
  viaObject: (json: string) => T,
): [T, Diagnostics] {
  const sum = new SummaryBuilder(maxPaths);
  const run = new JsonTextMaskRun(policy, key, ctx, sum, text);
  const out = viaText(run);
  if (out !== null)
    return [
      out,
      {
        summary: sum.toSummary(),
        via: "text",
        itemFallbacks: run.itemFallbacks,
        itemRedos: run.itemRedos,
        managedReused: run.managedReused,
      },
    ];
  const obj = new JsonMaskRun(policy, key, ctx, new SummaryBuilder(maxPaths));
  let json: string;
  try {
    json = JSON.stringify(obj.top(JSON.parse(text) as Json));
  } catch (e) {
    // (fail closed, with a reason: the walks recurse once per level of nesting)
    if (isStackOverflow(e)) throw nestedTooDeep();
    throw e;
  }
  return [
    viaObject(json),
    { summary: obj.sum.toSummary(), via: "object", itemFallbacks: 0, itemRedos: 0, managedReused: 0 },
  ];
}

/** Mask a JSON document given as text. Throws JSON.parse's SyntaxError when it is not JSON. */
export function maskJsonTextWith(
  policy: CompiledPolicy,
  key: Uint8Array,
  ctx: MaskContext,
  maxPaths: number | undefined,
  text: string,
): JsonTextResult {
  const [out, d] = maskDocument(
    policy,
    key,
    ctx,
    maxPaths,
    text,
    (run) => run.run(),
    (json) => json,
  );
  return { text: out, ...d };
}

export interface JsonBytesResult extends Diagnostics {
  /** the masked document's UTF-8 bytes (the input itself when nothing changed) */
  body: Buffer;
}

/**
 * Mask a JSON document given as its bytes, as a response body arrives: bytes in, bytes out.
 * An ASCII body (what the API server writes for nearly every object: JSON escapes anything
 * else only when the data holds it) is masked on its text and the result assembled from the
 * body's own bytes and the replacements, with no masked string built and encoded again. Any
 * other body is decoded as UTF-8 and masked as text; the client then gets the UTF-8 the masker
 * read (an invalid byte is U+FFFD), never other bytes. Throws JSON.parse's SyntaxError when the
 * body is not JSON.
 */
export function maskJsonBytesWith(
  policy: CompiledPolicy,
  key: Uint8Array,
  ctx: MaskContext,
  maxPaths: number | undefined,
  bytes: Buffer,
): JsonBytesResult {
  const ascii = isAscii(bytes);
  const text = bytes.toString(ascii ? "latin1" : "utf8");
  const [body, d] = maskDocument(
    policy,
    key,
    ctx,
    maxPaths,
    text,
    ascii
      ? (run) => run.runBytes(bytes)
      : (run) => {
          const out = run.run();
          return out === null ? null : out === text && isUtf8(bytes) ? bytes : Buffer.from(out);
        },
    (json) => Buffer.from(json),
  );
  return { body, ...d };
}
