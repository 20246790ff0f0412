/**
 * Compile a GatewayConfig's masks and detectors once per policy (cached by policyHash): regexes,
 * namespace globs, a trie of field-mask paths, and per-object "applied sets" (which masks fit
 * an object), cached by the set of masks that matched.
 */
import picomatch from "picomatch";
import { canonicalJson, sha256Hex } from "../../sdk/lib/canonical.ts";
import { compileGlobs } from "../../sdk/lib/match.ts";
import type { FieldMask, GatewayConfig, Mask, MaskStrategy } from "../../sdk/schema/config.ts";
import type { RequestInfo } from "../ports.ts";
import { type CompiledDetector, compileDetector, DetectorSet } from "./detect.ts";
import { maskConfigInvalid } from "./errors.ts";
import { strategyStrength } from "./strategy.ts";

export interface CompiledField {
  readonly maskId: string;
  readonly path: string;
  readonly segments: readonly string[];
  readonly strategy: MaskStrategy;
  readonly label: string;
  readonly base64: boolean | undefined;
}

export interface TrieNode {
  children: Map<string, TrieNode> | null;
  star: TrieNode | null;
  terminal: CompiledField | null;
  /** childNodes([this], key), remembered (bounded; see json.ts) */
  memo: Map<string, TrieNode[] | null> | null;
}

interface CompiledMask {
  readonly index: number;
  readonly id: string;
  readonly target: (apiGroup: string, resource: string, subresource: string) => boolean;
  readonly ns: ((ns: string) => boolean) | undefined;
  readonly phi: boolean | undefined;
  readonly labels: readonly [string, string][] | undefined;
  readonly fields: readonly CompiledField[];
  readonly detectors: readonly CompiledDetector[];
}

/** Which masks fit one object, and what they do. */
export interface Applied {
  readonly key: string;
  readonly maskIds: readonly string[];
  /** at least one mask (not only "everywhere" detectors) applies */
  readonly anyMask: boolean;
  readonly fields: readonly CompiledField[];
  readonly trie: TrieNode | null;
  readonly detectors: DetectorSet;
}

/** Subresources whose response is the parent object itself: a mask on "pods" covers them. */
const OBJECT_SUBRESOURCES = new Set(["", "status", "ephemeralcontainers", "resize", "scale"]);

/**
 * Does a mask's `match.resources` select this request's responses? RBAC form, each part a glob
 * as in rules (`customResource("widget*")`); a bare resource also covers the subresources whose
 * response is the object itself.
 */
export function compileMaskResources(
  patterns: readonly string[],
): (resource: string, subresource: string) => boolean {
  if (patterns.includes("*")) return () => true;
  const tests = patterns.map((p) => {
    const slash = p.indexOf("/");
    const res = compileGlobs([slash === -1 ? p : p.slice(0, slash)]);
    if (slash === -1) return (r: string, s: string) => OBJECT_SUBRESOURCES.has(s) && res(r);
    const sp = p.slice(slash + 1);
    const sub = sp === "*" ? (s: string) => s !== "" : compileGlobs([sp]);
    return (r: string, s: string) => sub(s) && res(r);
  });
  return (r, s) => tests.some((t) => t(r, s));
}

export function resourceMatches(patterns: readonly string[], resource: string, subresource: string): boolean {
  return compileMaskResources(patterns)(resource, subresource);
}

/**
 * Does a mask's match select a request by its API group and resource (the request-level part
 * of a mask's match; namespace, PHI and labels are judged per object)? `apiGroups` are globs,
 * as in rules (`"*.example.com"`); `"*"` includes the core group `""`.
 */
export function compileMaskTarget(
  match: Pick<Mask["match"], "apiGroups" | "resources">,
): (apiGroup: string, resource: string, subresource: string) => boolean {
  const groups = match.apiGroups === undefined ? () => true : compileGlobs(match.apiGroups);
  const resources = match.resources === undefined ? () => true : compileMaskResources(match.resources);
  return (g, r, s) => groups(g) && resources(r, s);
}

function addToTrie(root: TrieNode, f: CompiledField): void {
  let node = root;
  for (const seg of f.segments) {
    if (seg === "*") {
      node.star ??= { children: null, star: null, terminal: null, memo: null };
      node = node.star;
    } else {
      node.children ??= new Map();
      let next = node.children.get(seg);
      if (next === undefined) {
        next = { children: null, star: null, terminal: null, memo: null };
        node.children.set(seg, next);
      }
      node = next;
    }
  }
  if (node.terminal === null || strategyStrength(f.strategy) > strategyStrength(node.terminal.strategy))
    node.terminal = f;
}

export class CompiledPolicy {
  readonly policyHash: string;
  readonly everywhere: readonly CompiledDetector[];
  private readonly detectorOrder: Map<string, number>;
  private readonly masks: readonly CompiledMask[];
  private readonly phiMatch: (ns: string) => boolean;
  private readonly appliedCache = new Map<string, Applied>();
  readonly noMasks: Applied;

  constructor(config: GatewayConfig) {
    this.policyHash = config.policyHash;
    const byId = new Map<string, CompiledDetector>();
    this.detectorOrder = new Map();
    config.detectors.forEach((d, i) => {
      try {
        byId.set(d.id, compileDetector(d));
      } catch (e) {
        throw maskConfigInvalid(
          `detector "${d.id}" has a pattern that does not compile (${(e as Error).message})`,
          {
            detector: d.id,
          },
        );
      }
      this.detectorOrder.set(d.id, i);
    });
    this.everywhere = [...byId.values()].filter((d) => d.scope === "everywhere");
    this.phiMatch = config.phiNamespaces.length > 0 ? picomatch(config.phiNamespaces) : () => false;
    this.masks = config.masks.map((m, index) => this.compileMask(m, index, byId));
    this.noMasks = this.build([]);
  }

  private compileMask(m: Mask, index: number, byId: Map<string, CompiledDetector>): CompiledMask {
    const detectors = m.detectors.map((id) => {
      const d = byId.get(id);
      if (d === undefined)
        throw maskConfigInvalid(`mask "${m.id}" lists detector "${id}", which is not defined`, {
          mask: m.id,
          detector: id,
        });
      return d;
    });
    const fields = m.fields.map(
      (f: FieldMask): CompiledField => ({
        maskId: m.id,
        path: f.path,
        segments: f.segments,
        strategy: f.strategy,
        label: f.label,
        base64: f.base64,
      }),
    );
    return {
      index,
      id: m.id,
      target: compileMaskTarget(m.match),
      ns: m.match.namespaces ? picomatch(m.match.namespaces) : undefined,
      phi: m.match.phi,
      labels: m.match.labels ? Object.entries(m.match.labels) : undefined,
      fields,
      detectors,
    };
  }

  isPhi(ns: string): boolean {
    return ns !== "" && this.phiMatch(ns);
  }

  /** Masks whose apiGroup and resource fit the request (object-level checks come later). */
  candidates(apiGroup: string, resource: string, subresource: string): readonly CompiledMask[] {
    return this.masks.filter((m) => m.target(apiGroup, resource, subresource));
  }

  requestCandidates(req: RequestInfo): readonly CompiledMask[] {
    return this.candidates(req.apiGroup, req.resource, req.subresource);
  }

  /**
   * The applied set for one object. `ns` undefined = unknown (e.g. a Table row without its
   * object in a cluster-wide list), `labels` undefined = unknown: an unknown fact never lets
   * an object escape a mask (fail closed).
   */
  applied(
    candidates: readonly CompiledMask[],
    ns: string | undefined,
    labels: Record<string, unknown> | undefined,
    extraDetectors: readonly CompiledDetector[] = [],
  ): Applied {
    let key = "";
    const chosen: CompiledMask[] = [];
    for (const m of candidates) {
      if (ns !== undefined) {
        if (m.ns !== undefined && !m.ns(ns)) continue;
        if (m.phi !== undefined && m.phi !== this.isPhi(ns)) continue;
      }
      if (m.labels !== undefined && labels !== undefined) {
        let ok = true;
        for (const [k, v] of m.labels) {
          if (labels[k] !== v) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
      }
      chosen.push(m);
      key += m.index + ",";
    }
    if (extraDetectors.length > 0) {
      let ek = this.extraKeys.get(extraDetectors);
      if (ek === undefined) {
        ek = "+" + extraDetectors.map((d) => d.id).join(",");
        this.extraKeys.set(extraDetectors, ek);
      }
      key += ek;
    }
    let a = this.appliedCache.get(key);
    if (a === undefined) {
      a = this.build(chosen, extraDetectors);
      this.appliedCache.set(key, a);
    }
    return a;
  }

  private build(chosen: readonly CompiledMask[], extra: readonly CompiledDetector[] = []): Applied {
    const dets = new Map<string, CompiledDetector>();
    for (const d of this.everywhere) dets.set(d.id, d);
    for (const m of chosen) for (const d of m.detectors) dets.set(d.id, d);
    for (const d of extra) dets.set(d.id, d);
    const ordered = [...dets.values()].sort(
      (a, b) => this.detectorOrder.get(a.id)! - this.detectorOrder.get(b.id)!,
    );
    const fields = chosen.flatMap((m) => m.fields);
    let trie: TrieNode | null = null;
    if (fields.length > 0) {
      trie = { children: null, star: null, terminal: null, memo: null };
      for (const f of fields) addToTrie(trie, f);
    }
    return {
      key: chosen.map((m) => m.index).join(","),
      maskIds: chosen.map((m) => m.id),
      anyMask: chosen.length > 0,
      fields,
      trie,
      detectors: new DetectorSet(ordered),
    };
  }

  /**
   * Detectors of the masks that fit another resource (used for Events about an object). The
   * answer is remembered (an event list asks the same few questions for every item; bounded).
   */
  detectorsFor(apiGroup: string, resource: string, ns: string | undefined): readonly CompiledDetector[] {
    const key = `${apiGroup}\n${resource}\n${ns ?? "\u0000"}`;
    let r = this.detectorsForCache.get(key);
    if (r === undefined) {
      const a = this.applied(this.candidates(apiGroup, resource, ""), ns, undefined);
      r = a.detectors.dets.filter((d) => d.scope === "masks");
      if (this.detectorsForCache.size >= 1024) this.detectorsForCache.clear();
      this.detectorsForCache.set(key, r);
    }
    return r;
  }

  private readonly detectorsForCache = new Map<string, readonly CompiledDetector[]>();
  /** the cache-key part of an extra detector list (the lists detectorsFor returns repeat) */
  private readonly extraKeys = new WeakMap<readonly CompiledDetector[], string>();
}

const byObject = new WeakMap<GatewayConfig, CompiledPolicy>();
const byHash = new Map<string, CompiledPolicy>();

/**
 * Compile once per policy (a reloaded policy gets a new hash, hence a new entry). The key is
 * the policy hash plus a digest of the parts masking reads, so a config whose hash was not
 * recomputed (tests, hand-edited files) can never reuse another policy's masks.
 */
export function compilePolicy(config: GatewayConfig): CompiledPolicy {
  let p = byObject.get(config);
  if (p !== undefined) return p;
  const key =
    config.policyHash +
    ":" +
    sha256Hex(canonicalJson({ masks: config.masks, detectors: config.detectors, phi: config.phiNamespaces }));
  p = byHash.get(key);
  if (p === undefined) {
    p = new CompiledPolicy(config);
    if (byHash.size >= 16) byHash.delete(byHash.keys().next().value!);
    byHash.set(key, p);
  }
  byObject.set(config, p);
  return p;
}
