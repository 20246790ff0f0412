/**
 * The JSON masker: one copy-on-write walk per response. Unchanged subtrees are returned by
 * reference (so they serialise byte-for-byte as before, key order included); a subtree no
 * field mask can reach and no detector applies to is never descended into.
 *
 * Shapes: single objects, Lists (each item judged by its own namespace and labels), server-side
 * Tables (cells and the embedded row objects; when the gateway asked the upstream for whole row
 * objects, MaskContext.tableRows, each row then gets the object its client asked for), WatchEvents, Status, Events (with the detectors
 * of masks on the object they are about), Secret `data` (base64: decoded, masked, re-encoded),
 * `metadata.managedFields` (dropped whenever a mask applies; else, under detectors, their keys
 * are scanned as a data map's keys: they repeat data keys and set values), and the
 * `kubectl.kubernetes.io/last-applied-configuration` annotation (parsed, masked with the same
 * rules, re-serialised; unparseable: redacted whole).
 */
import type { Json } from "../../sdk/schema/config.ts";
import type { MaskContext } from "../ports.ts";
import type { Applied, CompiledField, CompiledPolicy, TrieNode } from "./compile.ts";
import type { CompiledDetector, Span } from "./detect.ts";
import { ownString, renderSpans } from "./detect.ts";
import { applyStrategy, DROP, type Dropped, redactToken, strategyStrength } from "./strategy.ts";
import { SummaryBuilder } from "./summary.ts";

export type JsonObject = { [k: string]: Json };
type Path = (string | number)[];

export const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * Kubernetes-owned values detectors never look at (they are not PHI and look like it:
 * timestamps look like dates, digests and uids hold digit runs). Field masks still reach them
 * if a policy names them explicitly. `true`: skipped anywhere; a set: only under those parents.
 */
const SKIP = new Map<string, true | ReadonlySet<string>>([
  ["uid", true],
  ["resourceVersion", true],
  ["creationTimestamp", true],
  ["deletionTimestamp", true],
  ["selfLink", true],
  ["lastTransitionTime", true],
  ["lastProbeTime", true],
  ["lastHeartbeatTime", true],
  ["lastUpdateTime", true],
  ["image", true],
  ["imageID", true],
  ["containerID", true],
  ["startedAt", new Set(["running", "terminated"])],
  ["finishedAt", new Set(["terminated"])],
  ["startTime", new Set(["status"])],
  ["completionTime", new Set(["status"])],
  ["generation", new Set(["metadata"])],
  ["lastObservedTime", new Set(["series"])],
]);
/**
 * An RFC 3339 timestamp as the API server writes a metav1.Time (managedFields entries' `time`):
 * it holds nothing but a time, so detectors skip it, as they skip creationTimestamp. Sticky: the
 * text masker tests it at a string token's first character, closing quote included.
 */
const RFC3339 = String.raw`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})`;
export const TIMESTAMP_TOKEN = new RegExp(`${RFC3339}"`, "y");
const TIMESTAMP = new RegExp(`^${RFC3339}$`);
export function isTimestamp(s: string): boolean {
  return TIMESTAMP.test(s);
}

/** core/v1 and events.k8s.io/v1 Event timestamps */
export const EVENT_TIMES: ReadonlySet<string> = new Set([
  "firstTimestamp",
  "lastTimestamp",
  "eventTime",
  "deprecatedFirstTimestamp",
  "deprecatedLastTimestamp",
]);

/**
 * Maps whose KEYS are data (a ConfigMap entry named "record-MRN-00481516.json", a Secret key
 * "MRN-00481516", an annotation key): detectors scan their keys too, and a key that holds an
 * identifier is renamed to its masked form (also in the summary's pointers).
 */
export const KEYED_MAPS: ReadonlySet<string> = new Set([
  "data",
  "binaryData",
  "stringData",
  "annotations",
  "labels",
]);

function renameKeys(obj: JsonObject, renames: ReadonlyMap<string, string>): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(obj)) out[renames.get(k) ?? k] = obj[k]!;
  return out;
}

export function skipForDetectors(key: string, parentKey: string | number | undefined): boolean {
  const s = SKIP.get(key);
  if (s === undefined) return false;
  return s === true || (typeof parentKey === "string" && s.has(parentKey));
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** distinct keys whose child nodes one trie node remembers (keys come from the input: bounded) */
const CHILD_MEMO_KEYS = 256;

/**
 * The trie nodes one step below `nodes` along `key`. The result for a single node (the usual
 * case) is remembered on the node, so walking the items of a list allocates nothing here; the
 * arrays returned are shared and never mutated.
 */
const NO_DETECTORS: readonly CompiledDetector[] = [];

export function childNodes(nodes: readonly TrieNode[] | null, key: string): TrieNode[] | null {
  if (nodes === null) return null;
  if (nodes.length !== 1) return childNodesOf(nodes, key);
  const n = nodes[0]!;
  let memo = n.memo;
  if (memo === null) {
    memo = new Map();
    n.memo = memo;
  }
  let r = memo.get(key);
  if (r === undefined) {
    r = childNodesOf(nodes, key);
    // (a key may be a slice of the response text: the node outlives it, so keep a copy)
    if (memo.size < CHILD_MEMO_KEYS) memo.set(ownString(key), r);
  }
  return r;
}

function childNodesOf(nodes: readonly TrieNode[], key: string): TrieNode[] | null {
  let out: TrieNode[] | null = null;
  for (const n of nodes) {
    const c = n.children?.get(key);
    if (c !== undefined) {
      out ??= [];
      out.push(c);
    }
    if (n.star !== null) {
      out ??= [];
      out.push(n.star);
    }
  }
  return out;
}

export function terminalOf(nodes: readonly TrieNode[] | null): CompiledField | null {
  if (nodes === null) return null;
  let t: CompiledField | null = null;
  for (const n of nodes) {
    if (
      n.terminal !== null &&
      (t === null || strategyStrength(n.terminal.strategy) > strategyStrength(t.strategy))
    )
      t = n.terminal;
  }
  return t;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeBase64Text(s: string): string | null {
  try {
    return utf8.decode(Buffer.from(s, "base64"));
  } catch {
    return null;
  }
}

function encodeBase64Text(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

function kindToResource(kind: string): string {
  const k = kind.toLowerCase();
  if (k.endsWith("s") || k.endsWith("x") || k.endsWith("ch") || k.endsWith("sh")) return k + "es";
  if (k.endsWith("y") && !/[aeiou]y$/.test(k)) return k.slice(0, -1) + "ies";
  return k + "s";
}

function groupOf(apiVersion: Json | undefined): string {
  if (typeof apiVersion !== "string") return "";
  const i = apiVersion.indexOf("/");
  return i === -1 ? "" : apiVersion.slice(0, i);
}

function norm(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** One maskJson call. */
export class JsonMaskRun {
  readonly sum: SummaryBuilder;
  /** the current JSON Pointer, as segments (shared with the text masker, jsontext.ts) */
  readonly path: Path = [];
  /** Table rows: original strings that field masks replaced in the row object -> the field */
  private collect: Map<string, CompiledField> | null = null;
  private readonly cands;

  constructor(
    private readonly policy: CompiledPolicy,
    private readonly key: Uint8Array,
    private readonly ctx: MaskContext,
    sum?: SummaryBuilder,
  ) {
    this.sum = sum ?? new SummaryBuilder();
    this.cands = policy.requestCandidates(ctx.request);
    this.labelsMatter = this.cands.some((m) => m.labels !== undefined);
  }

  /** whether an object's labels can change which masks apply to it (a mask selects by label) */
  readonly labelsMatter: boolean;

  /**
   * Entry point: dispatch on the response shape. On a watch stream every line is an event: one
   * with a `type` and an `object` is masked as an event whatever other keys it has (a `kind`
   * or `items` beside them does not make it a Status or a List).
   */
  top(v: Json): Json {
    if (isObject(v) && this.ctx.request.verb === "watch" && isWatchLine(v)) return this.watchEvent(v);
    return this.shape(v, true);
  }

  /** dispatch on the shape; `events`: a `{type, object}` body is a watch event */
  private shape(v: Json, events: boolean): Json {
    if (isObject(v)) {
      const kind = v.kind;
      if (kind === "Table" && Array.isArray(v.rows)) return this.table(v);
      if (kind === "Status") return this.detectorsOnly(v, this.requestApplied());
      if (Array.isArray(v.items) && (typeof kind !== "string" || kind.endsWith("List"))) return this.list(v);
      if (events && isWatchEvent(v)) return this.watchEvent(v);
      return this.rootObject(v, undefined, this.appliedFor(v));
    }
    const r = this.walk(v, null, this.requestApplied(), undefined, false);
    return r === DROP ? redactToken("value") : r;
  }

  requestApplied(): Applied {
    const ns = this.ctx.request.namespace;
    return this.policy.applied(this.cands, ns, undefined);
  }

  appliedFor(obj: JsonObject, kindHint?: string): Applied {
    let extra: readonly CompiledDetector[] = NO_DETECTORS;
    const meta = obj.metadata;
    const req = this.ctx.request;
    let ns: string | undefined;
    let labels: Record<string, unknown> | undefined;
    if (isObject(meta)) {
      ns = typeof meta.namespace === "string" && meta.namespace !== "" ? meta.namespace : req.namespace;
      if (isObject(meta.labels)) labels = meta.labels;
      else labels = req.verb === "patch" ? undefined : {};
    } else {
      ns = req.namespace;
      labels = req.verb === "patch" || req.verb === "watch" || req.verb === "list" ? undefined : {};
    }
    if (isEvent(obj, kindHint)) extra = this.eventDetectors(obj, ns);
    if (this.labelsMatter) return this.policy.applied(this.cands, ns, labels, extra);
    // the same few answers for every item of a list: by namespace (and the event's detectors)
    let byNs = this.appliedMemo.get(extra);
    if (byNs === undefined) {
      byNs = new Map();
      this.appliedMemo.set(extra, byNs);
    }
    const k = ns ?? "\u0000";
    let a = byNs.get(k);
    if (a === undefined) {
      a = this.policy.applied(this.cands, ns, labels, extra);
      if (byNs.size < 256) byNs.set(k, a);
    }
    return a;
  }

  /** appliedFor's answers when labels do not matter, by extra detectors, then namespace */
  private readonly appliedMemo = new Map<readonly CompiledDetector[], Map<string, Applied>>();

  /** An Event about a pod in a PHI namespace gets the detectors of the masks on that pod. */
  private eventDetectors(ev: JsonObject, ns: string | undefined): readonly CompiledDetector[] {
    const ref = isObject(ev.involvedObject)
      ? ev.involvedObject
      : isObject(ev.regarding)
        ? ev.regarding
        : null;
    if (ref === null || typeof ref.kind !== "string") return [];
    const refNs = typeof ref.namespace === "string" && ref.namespace !== "" ? ref.namespace : ns;
    return this.policy.detectorsFor(groupOf(ref.apiVersion), kindToResource(ref.kind), refNs);
  }

  /**
   * A watch event: its `object` masked as the object it is (never as another event), every
   * other member's value (the `type` too: a client quotes an unknown one in its error) scanned
   * with the request's detectors.
   */
  private watchEvent(ev: JsonObject): Json {
    let out: JsonObject | null = null;
    for (const k in ev) {
      const child = ev[k]!;
      this.path.push(k);
      let r: Json;
      if (k === "object") r = this.shape(child, false);
      else {
        const a = this.requestApplied();
        const w = a.detectors.empty ? child : this.walk(child, null, a, undefined, false);
        r = w === DROP ? redactToken("value") : w;
      }
      this.path.pop();
      if (r !== child) {
        out ??= { ...ev };
        out[k] = r;
      }
    }
    return out ?? ev;
  }

  private list(list: JsonObject): Json {
    const items = list.items as Json[];
    const kindHint = typeof list.kind === "string" ? list.kind.slice(0, -4) : undefined;
    let out: Json[] | null = null;
    this.path.push("items", 0);
    for (let i = 0; i < items.length; i++) {
      this.path[this.path.length - 1] = i;
      const item = items[i]!;
      let r: Json;
      if (isObject(item)) r = this.rootObject(item, kindHint, this.appliedFor(item, kindHint));
      else {
        const w = this.walk(item, null, this.requestApplied(), undefined, false);
        r = w === DROP ? redactToken("value") : w;
      }
      if (r !== item) {
        out ??= items.slice();
        out[i] = r;
      }
    }
    this.path.length -= 2;
    if (out === null) return list;
    return { ...list, items: out };
  }

  /** A Kubernetes object: metadata, Secret/ConfigMap base64 maps, then everything else. */
  rootObject(obj: JsonObject, kindHint: string | undefined, a: Applied): Json {
    if (a.trie === null && a.detectors.empty && !a.anyMask) return obj;
    const kind = typeof obj.kind === "string" ? obj.kind : kindHint;
    const nodes = a.trie === null ? null : [a.trie];
    const eventish = isEvent(obj, kindHint);
    let out: JsonObject | null = null;
    for (const k in obj) {
      const child = obj[k]!;
      const cn = childNodes(nodes, k);
      let r: Json | Dropped;
      this.path.push(k);
      if (k === "metadata" && isObject(child) && terminalOf(cn) === null) r = this.metadata(child, cn, a);
      else if (
        ((k === "data" && kind === "Secret") || (k === "binaryData" && kind === "ConfigMap")) &&
        isObject(child) &&
        terminalOf(cn) === null
      )
        r = this.base64Map(child, cn, a);
      else if (eventish && EVENT_TIMES.has(k) && cn === null) r = child;
      else if (k === "apiVersion" || k === "kind") r = cn === null ? child : this.walk(child, cn, a, k, true);
      else r = this.walk(child, cn, a, k, true);
      this.path.pop();
      if (r !== child) {
        out ??= { ...obj };
        if (r === DROP) delete out[k];
        else out[k] = r;
      }
    }
    return out ?? obj;
  }

  private metadata(meta: JsonObject, nodes: TrieNode[] | null, a: Applied): Json {
    let out: JsonObject | null = null;
    for (const k in meta) {
      const child = meta[k]!;
      const cn = childNodes(nodes, k);
      let r: Json | Dropped;
      this.path.push(k);
      if (k === "managedFields") {
        // managedFields repeat the object's field names and list keys; when any mask applies,
        // drop them rather than keep a second copy consistent (kubectl hides them anyway).
        if (a.anyMask) {
          r = DROP;
          for (const id of a.maskIds) this.sum.addRule(id);
          this.sum.count("managedFields");
          this.sum.addPath(this.path);
        } else r = a.detectors.empty ? child : this.managed(child, a, true);
      } else if (k === "annotations" && isObject(child) && terminalOf(cn) === null) {
        r = this.annotations(child, cn, a);
      } else {
        r = this.walk(child, cn, a, k, true, "metadata");
      }
      this.path.pop();
      if (r !== child) {
        out ??= { ...meta };
        if (r === DROP) delete out[k];
        else out[k] = r;
      }
    }
    return out ?? meta;
  }

  private annotations(ann: JsonObject, nodes: TrieNode[] | null, a: Applied): Json {
    let out: JsonObject | null = null;
    const renames = this.maskKeys(ann, a);
    for (const k in ann) {
      const child = ann[k]!;
      const cn = childNodes(nodes, k);
      let r: Json | Dropped;
      this.path.push(renames?.get(k) ?? k);
      if (k === LAST_APPLIED && typeof child === "string" && terminalOf(cn) === null)
        r = this.lastApplied(child, a);
      else r = this.walk(child, cn, a, k, true);
      this.path.pop();
      if (r !== child) {
        out ??= { ...ann };
        if (r === DROP) delete out[k];
        else out[k] = r;
      }
    }
    if (renames !== null) return renameKeys(out ?? ann, renames);
    return out ?? ann;
  }

  lastApplied(s: string, a: Applied): Json {
    if (!a.anyMask && a.detectors.empty) return s;
    let parsed: Json;
    try {
      parsed = JSON.parse(s) as Json;
    } catch {
      if (a.anyMask) {
        for (const id of a.maskIds) this.sum.addRule(id);
        this.sum.hit(a.maskIds[0] ?? "last-applied-configuration", "last-applied-configuration", this.path);
        return redactToken("last-applied-configuration");
      }
      const r = this.str(s, a, false);
      return r === DROP ? redactToken("last-applied-configuration") : r;
    }
    // Mask the embedded object with the same rules; its inner pointers would not resolve in
    // the outer document, so the summary lists the annotation's own pointer.
    const inner = new JsonMaskRun(this.policy, this.key, this.ctx, new SummaryBuilder(0));
    const masked = isObject(parsed) ? inner.rootObject(parsed, undefined, a) : inner.walkDetached(parsed, a);
    if (masked === parsed) return s;
    const sub = inner.sum;
    this.sum.absorb(sub);
    this.sum.addPath(this.path);
    return JSON.stringify(masked) + (s.endsWith("\n") ? "\n" : "");
  }

  walkDetached(v: Json, a: Applied): Json {
    const r = this.walk(v, null, a, undefined, false);
    return r === DROP ? redactToken("value") : r;
  }

  /** Secret `data` / ConfigMap `binaryData`: base64 values, decoded for masks and detectors. */
  base64Map(map: JsonObject, nodes: TrieNode[] | null, a: Applied): Json {
    let out: JsonObject | null = null;
    const renames = this.maskKeys(map, a);
    for (const k in map) {
      const child = map[k]!;
      if (typeof child !== "string") continue;
      const cn = childNodes(nodes, k);
      const term = terminalOf(cn);
      let r: Json | Dropped = child;
      this.path.push(renames?.get(k) ?? k);
      if (term !== null) {
        const decoded = decodeBase64Text(child) ?? child;
        const rep = applyStrategy(term.strategy, term.label, decoded, this.key, true);
        this.sum.hit(term.maskId, term.label, this.path);
        r = rep === DROP ? DROP : encodeBase64Text(rep);
      } else if (!a.detectors.empty) {
        const decoded = decodeBase64Text(child);
        if (decoded !== null) {
          const m = this.str(decoded, a, true);
          if (m !== decoded) r = m === DROP ? DROP : encodeBase64Text(m);
        }
      }
      this.path.pop();
      if (r !== child) {
        out ??= { ...map };
        if (r === DROP) delete out[k];
        else out[k] = r;
      }
    }
    if (renames !== null) return renameKeys(out ?? map, renames);
    return out ?? map;
  }

  /**
   * Keys of a data map that hold an identifier -> their masked form (unique within the map),
   * or null when no key does. Recorded in the summary at the renamed key's pointer.
   */
  private maskKeys(map: JsonObject, a: Applied): Map<string, string> | null {
    if (a.detectors.empty) return null;
    let renames: Map<string, string> | null = null;
    for (const k in map) {
      const spans = a.detectors.findCached(k);
      if (spans === null) continue;
      const r = renderSpans(k, spans, this.key, false);
      let nk = r === DROP ? redactToken("key") : r;
      renames ??= new Map();
      const taken = new Set(renames.values());
      for (let n = 2; nk in map || taken.has(nk); n++) nk = `${r === DROP ? redactToken("key") : r}#${n}`;
      renames.set(k, nk);
      for (const sp of spans) this.sum.hit(sp.det.id, sp.det.id, null);
      this.path.push(nk);
      this.sum.addPath(this.path);
      this.path.pop();
    }
    return renames;
  }

  /**
   * managedFields kept (no mask applies) while detectors do. They repeat data: the keys of data
   * maps and annotations (`f:record-MRN-….json`), list keys (`k:{"name":…}`), the values of
   * set lists (`v:"…"`). Every key in them is scanned and renamed as a data map's key is, and
   * every string scanned as any other string, so a value masked in the object is not left in
   * its managedFields.
   */
  managed(v: Json, a: Applied, list = false, entry = false): Json {
    if (typeof v === "string") return this.walk(v, null, a, undefined, false) as Json;
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) {
      let out: Json[] | null = null;
      this.path.push(0);
      const depth = this.path.length - 1;
      for (let i = 0; i < v.length; i++) {
        this.path[depth] = i;
        const r = this.managed(v[i]!, a, false, list);
        if (r !== v[i]) {
          out ??= v.slice();
          out[i] = r;
        }
      }
      this.path.pop();
      return out ?? v;
    }
    const renames = this.maskKeys(v, a);
    let out: JsonObject | null = null;
    for (const k in v) {
      const child = v[k]!;
      // an entry's time is the API server's own timestamp, as creationTimestamp is
      if (entry && k === "time" && typeof child === "string" && isTimestamp(child)) continue;
      this.path.push(renames?.get(k) ?? k);
      const r = this.managed(child, a);
      this.path.pop();
      if (r !== child) {
        out ??= { ...v };
        out[k] = r;
      }
    }
    if (renames !== null) return renameKeys(out ?? v, renames);
    return out ?? v;
  }

  /** Run detectors over a string; record hits at the current path. */
  str(s: string, a: Applied, canDrop: boolean): string | Dropped {
    const spans = a.detectors.findCached(s);
    if (spans === null) return s;
    return this.spans(s, spans, canDrop);
  }

  /** Replace the detectors' spans in `s`; record hits at the current path. */
  spans(s: string, spans: readonly Span[], canDrop: boolean): string | Dropped {
    const r = renderSpans(s, spans, this.key, canDrop);
    for (const sp of spans) this.sum.hit(sp.det.id, sp.det.id, null);
    this.sum.addPath(this.path);
    return r;
  }

  /** Replace a whole value targeted by a field mask. */
  field(v: Json, f: CompiledField, canDrop: boolean): Json | Dropped {
    if (v === null) return v;
    if (typeof v === "object") {
      if (f.strategy.kind === "drop" && canDrop) {
        this.sum.hit(f.maskId, f.label, this.path);
        return DROP;
      }
      // keep the structure, mask every leaf under it
      const r = this.leaves(v, f);
      this.sum.addRule(f.maskId);
      this.sum.addPath(this.path);
      return r;
    }
    let s = typeof v === "string" ? v : String(v);
    const b64 = f.base64 === true && typeof v === "string";
    if (b64) s = decodeBase64Text(v) ?? v;
    const rep = applyStrategy(f.strategy, f.label, s, this.key, canDrop);
    this.sum.hit(f.maskId, f.label, this.path);
    if (this.collect !== null && typeof v === "string" && v !== "") this.collect.set(v, f);
    if (rep === DROP) return DROP;
    return b64 ? encodeBase64Text(rep) : rep;
  }

  private leaves(v: Json, f: CompiledField): Json {
    if (v === null) return v;
    if (Array.isArray(v)) return v.map((x) => this.leaves(x, f));
    if (typeof v === "object") {
      const out: JsonObject = {};
      for (const k of Object.keys(v)) out[k] = this.leaves(v[k]!, f);
      return out;
    }
    const s = typeof v === "string" ? v : String(v);
    this.sum.count(f.label);
    const rep = applyStrategy(f.strategy, f.label, s, this.key, false);
    return rep === DROP ? redactToken(f.label) : rep;
  }

  /** Detectors over every string of a value (no field masks): Status, unknown shapes. */
  private detectorsOnly(v: JsonObject, a: Applied): Json {
    const r = this.walk(v, null, a, undefined, false);
    return r === DROP ? redactToken("value") : r;
  }

  /**
   * The generic walk. `nodes`: field-mask trie nodes active here (null: none can reach).
   * `canDrop`: the value is an object member that may be removed.
   */
  private walk(
    v: Json,
    nodes: TrieNode[] | null,
    a: Applied,
    key: string | number | undefined,
    canDrop: boolean,
    parentKey?: string | number,
  ): Json | Dropped {
    const term = terminalOf(nodes);
    if (term !== null) return this.field(v, term, canDrop);
    if (typeof v === "string") {
      if (
        a.detectors.empty ||
        (typeof key === "string" && nodes === null && skipForDetectors(key, parentKey))
      )
        return v;
      return this.str(v, a, canDrop);
    }
    if (v === null || typeof v !== "object") return v;
    if (nodes === null && a.detectors.empty) return v;
    if (Array.isArray(v)) {
      let out: (Json | Dropped)[] | null = null;
      let dropped = false;
      this.path.push(0);
      const depth = this.path.length - 1;
      for (let i = 0; i < v.length; i++) {
        this.path[depth] = i;
        const child = v[i]!;
        const cn = childNodes(nodes, String(i));
        if (cn === null && a.detectors.empty) continue;
        // an element dropped by a field mask is removed; a detector never drops an element
        const r = this.walk(child, cn, a, key, cn !== null, key);
        if (r !== child) {
          out ??= v.slice();
          out[i] = r;
          if (r === DROP) dropped = true;
        }
      }
      this.path.pop();
      if (out === null) return v;
      return dropped ? (out.filter((x) => x !== DROP) as Json[]) : (out as Json[]);
    }
    let out: JsonObject | null = null;
    const renames = typeof key === "string" && KEYED_MAPS.has(key) ? this.maskKeys(v, a) : null;
    for (const k in v) {
      const child = v[k]!;
      const cn = childNodes(nodes, k);
      if (cn === null && (a.detectors.empty || skipForDetectors(k, key))) continue;
      this.path.push(renames?.get(k) ?? k);
      const r = this.walk(child, cn, a, k, true, key);
      this.path.pop();
      if (r !== child) {
        out ??= { ...v };
        if (r === DROP) delete out[k];
        else out[k] = r;
      }
    }
    if (renames !== null) return renameKeys(out ?? v, renames);
    return out ?? v;
  }

  /** Server-side Table: each row judged by its embedded object; cells by column and detectors. */
  private table(t: JsonObject): Json {
    const rows = t.rows as Json[];
    const cols: string[] = Array.isArray(t.columnDefinitions)
      ? t.columnDefinitions.map((c) => (isObject(c) && typeof c.name === "string" ? norm(c.name) : ""))
      : [];
    const req = this.ctx.request;
    let outRows: Json[] | null = null;
    this.path.push("rows", 0);
    const depth = this.path.length - 1;
    for (let i = 0; i < rows.length; i++) {
      this.path[depth] = i;
      const row = rows[i]!;
      if (!isObject(row)) continue;
      const obj = row.object;
      let a: Applied;
      if (isObject(obj)) a = this.appliedFor(obj);
      else a = this.policy.applied(this.cands, req.namespace !== "" ? req.namespace : undefined, undefined);
      let newRow: JsonObject | null = null;
      this.collect = new Map();
      if (isObject(obj)) {
        this.path.push("object");
        const mo = this.rootObject(obj, undefined, a);
        this.path.pop();
        if (mo !== obj) newRow = { ...row, object: mo };
      }
      const collected = this.collect;
      this.collect = null;
      if (Array.isArray(row.cells)) {
        const cells = row.cells;
        let outCells: Json[] | null = null;
        this.path.push("cells", 0);
        const cd = this.path.length - 1;
        for (let j = 0; j < cells.length; j++) {
          this.path[cd] = j;
          const cell = cells[j]!;
          if (typeof cell !== "string" && typeof cell !== "number") continue;
          let r: Json = cell;
          const f =
            columnField(a, cols[j] ?? "") ?? (typeof cell === "string" ? collected.get(cell) : undefined);
          if (f !== undefined) {
            const rep = applyStrategy(f.strategy, f.label, String(cell), this.key, false);
            this.sum.hit(f.maskId, f.label, this.path);
            r = rep === DROP ? redactToken(f.label) : rep;
          } else if (typeof cell === "string" && !a.detectors.empty) {
            const m = this.str(cell, a, false);
            r = m === DROP ? redactToken("value") : m;
          }
          if (r !== cell) {
            outCells ??= cells.slice();
            outCells[j] = r;
          }
        }
        this.path.length -= 2;
        if (outCells !== null) newRow = { ...(newRow ?? row), cells: outCells };
      }
      const shown = this.ctx.tableRows;
      if (shown !== undefined && shown !== "Object" && "object" in row) {
        // the gateway asked for the whole object (to match cells by value): the row gets what
        // the client asked for, made from the masked object as kube-apiserver makes it
        const masked = (newRow ?? row).object;
        newRow = {
          ...(newRow ?? row),
          object:
            shown === "None" || !isObject(masked)
              ? null
              : {
                  kind: "PartialObjectMetadata",
                  apiVersion: t.apiVersion === "meta.k8s.io/v1beta1" ? t.apiVersion : "meta.k8s.io/v1",
                  metadata: isObject(masked.metadata) ? masked.metadata : {},
                },
        };
      }
      if (newRow !== null) {
        outRows ??= rows.slice();
        outRows[i] = newRow;
      }
    }
    this.path.length -= 2;
    return outRows === null ? t : { ...t, rows: outRows };
  }
}

/** A column shows a masked field when its name is the field's label or last path segment. */
function columnField(a: Applied, col: string): CompiledField | undefined {
  if (col === "" || col === "name" || col === "namespace") return undefined;
  for (const f of a.fields) {
    if (norm(f.label) === col) return f;
    const last = [...f.segments].reverse().find((s) => s !== "*");
    if (last !== undefined && norm(last) === col) return f;
  }
  return undefined;
}

/** a line of a watch stream that is an event: a `type` and an `object`, whatever else it holds */
function isWatchLine(v: JsonObject): boolean {
  return typeof v.type === "string" && isObject(v.object);
}

/** a body that is a watch event as the API server writes one: `type` and `object`, nothing else */
function isWatchEvent(v: JsonObject): boolean {
  if (typeof v.type !== "string" || !isObject(v.object)) return false;
  for (const k of Object.keys(v)) if (k !== "type" && k !== "object") return false;
  return true;
}

export function isEvent(v: JsonObject, kindHint?: string): boolean {
  if (v.kind === undefined) return kindHint === "Event";
  return (
    v.kind === "Event" &&
    (v.apiVersion === "v1" || v.apiVersion === "events.k8s.io/v1" || v.apiVersion === "events.k8s.io/v1beta1")
  );
}
