/**
 * The text-level JSON masker (gateway/masking/jsontext.ts) against the object walker (maskJson):
 *  1. property: Kubernetes-shaped documents (lists, single objects, Tables, Status, watch
 *     events; pods, Secrets, ConfigMaps, Events, a CRD) with planted identifiers, written
 *     compact, pretty or "wild" (random whitespace, \u escapes, exponent numbers, reordered and
 *     duplicate keys): JSON.parse of the text result deep-equals maskJson's value, the summaries
 *     are equal, and no planted identifier survives;
 *  2. property: a mutated document is refused exactly when JSON.parse refuses it, with
 *     JSON.parse's own message (maskBuffered turns it into MASK_MALFORMED_JSON);
 *  3. tricky texts by hand, and untouched bytes copied verbatim.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import { compilePolicy } from "../gateway/masking/compile.ts";
import { hasControlByte, maskJsonTextWith } from "../gateway/masking/jsontext.ts";
import type { MaskContext, Masker } from "../gateway/ports.ts";
import { maskBuffered } from "../gateway/server/respond.ts";
import type { Detector, Json, Mask } from "../sdk/schema/config.ts";
import { PLANTED } from "../simulator/seed/planted.ts";
import { clusterEvent, ctx, makeConfig, rng } from "./masking-fixtures.ts";

const KEY = new Uint8Array(32).fill(9);
const config = makeConfig();
const masker = createMasker(config, { pseudonymKey: KEY });
const policy = compilePolicy(config);
const RUNS = { numRuns: Number(process.env.MASK_PROP_RUNS ?? 150) };

/** the text path with its diagnostics (the Masker method returns text and summary only) */
function viaText(text: string, c: MaskContext, pol = policy) {
  return maskJsonTextWith(pol, KEY, c, undefined, text);
}

/** a policy whose one detector (redacting, labelled after its category) is `pattern`, and its Masker */
function withDetector(
  id: string,
  category: string,
  pattern: string,
  scope: Detector["scope"],
  masks: Mask[] = [],
) {
  const cfg = makeConfig({
    masks,
    detectors: [
      { id, category, pattern, flags: "", strategy: { kind: "redact" }, label: category, scope, source: SRC },
    ],
  });
  const pol = compilePolicy(cfg);
  const m = createMasker(cfg, { pseudonymKey: KEY });
  /** the text path on `text`, which must stay on the text and agree with the object walker */
  const same = (text: string, c: MaskContext) => {
    const r = maskJsonTextWith(pol, KEY, c, undefined, text);
    const o = m.maskJson(JSON.parse(text) as Json, c);
    expect(r.via).toBe("text");
    expect(JSON.parse(r.text)).toEqual(o.value);
    expect(r.summary).toEqual(o.summary);
    return r;
  };
  return { pol, m, same };
}
const SRC = { file: "policy.ts", line: 1, column: 1 };

/** letters only, unique to the caller: no earlier run can have left its texts clean */
const uniqueTag = () =>
  Math.random()
    .toString(36)
    .replace(/[^a-z]/g, "");

/** an EventList of one event (in "default") whose metadata carries `managedFields` */
const oneEvent = (managedFields: Json) =>
  JSON.stringify({
    kind: "EventList",
    apiVersion: "v1",
    metadata: {},
    items: [{ metadata: { name: "e", namespace: "default", managedFields }, reason: "Started" }],
  });

/** maskJsonText and maskJson agree on this text (value after parsing, and summary) */
function expectEquivalent(text: string, c: MaskContext) {
  const r = viaText(text, c);
  const old = masker.maskJson(JSON.parse(text) as Json, c);
  expect(JSON.parse(r.text)).toEqual(old.value);
  expect(r.summary).toEqual(old.summary);
  const m = masker.maskJsonText(text, c);
  expect(m.text).toBe(r.text);
  expect(m.summary).toEqual(r.summary);
  expectBytesLikeText(text, c, r.text, r.summary, r.via);
  return r;
}

/** inputs the bytes path saw, by branch (both must be exercised) */
const bytesBranches = { ascii: 0, other: 0 };

/**
 * maskJsonBytes on the text's UTF-8 bytes gives the masked text's UTF-8 bytes, and the same
 * summary; an unchanged body is the input Buffer itself
 */
function expectBytesLikeText(
  text: string,
  c: MaskContext,
  masked: string,
  summary: unknown,
  via: "text" | "object",
) {
  const bytes = Buffer.from(text);
  if (bytes.toString("utf8") !== text) return; // a lone surrogate: not what a body can hold
  const b = masker.maskJsonBytes(bytes, c);
  expect(b.body.toString("utf8")).toBe(masked);
  expect(b.summary).toEqual(summary);
  // unchanged on the text: the body itself (the object path always writes anew)
  if (masked === text && via === "text") expect(b.body).toBe(bytes);
  if (bytes.length === text.length) bytesBranches.ascii++;
  else bytesBranches.other++;
}

// ---- planted identifiers ---------------------------------------------------------------------
const d = (n: number) => fc.integer({ min: 0, max: 10 ** n - 1 }).map((x) => String(x).padStart(n, "0"));
interface Planted {
  text: string;
  secrets: string[];
}
const identifier: fc.Arbitrary<Planted> = fc.oneof(
  fc
    .tuple(
      fc.integer({ min: 1, max: 899 }).filter((a) => a !== 666),
      fc.integer({ min: 1, max: 99 }),
      d(4),
    )
    .filter(([, , s]) => s !== "0000")
    .map(([a, g, s]) => {
      const v = `${String(a).padStart(3, "0")}-${String(g).padStart(2, "0")}-${s}`;
      return { text: `SSN ${v}`, secrets: [v] };
    }),
  fc.tuple(fc.constantFrom("MRN: ", "MRN#", "mrn:"), d(8)).map(([l, n]) => ({ text: l + n, secrets: [n] })),
  fc
    .tuple(fc.integer({ min: 200, max: 999 }), fc.integer({ min: 200, max: 999 }), d(4))
    .map(([a, b, c]) => ({ text: `(${a}) ${b}-${c}`, secrets: [`${b}-${c}`] })),
  fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9._]{1,8}[a-z0-9]$/),
      fc.constantFrom("example.org", "mail.example.com"),
    )
    .map(([u, h]) => ({ text: `${u}@${h}`, secrets: [`${u}@${h}`] })),
  fc
    .tuple(
      fc.integer({ min: 1930, max: 2010 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 28 }),
    )
    .map(([y, m, dd]) => {
      const v = `${y}-${String(m).padStart(2, "0")}-${String(dd).padStart(2, "0")}`;
      return { text: `born ${v}`, secrets: [v] };
    }),
  fc.constantFrom(...PLANTED.ssns.map((s) => ({ text: `ssn ${s}`, secrets: [s] }))),
  fc.constantFrom(...PLANTED.mrns.map((s) => ({ text: `record ${s}`, secrets: [s] }))),
  fc.constantFrom(...PLANTED.emails.map((s) => ({ text: s, secrets: [s] }))),
  // a street address whose only digit is its first character
  fc.constantFrom(...PLANTED.addresses.map((s) => ({ text: s, secrets: [s] }))),
);
const word = fc.stringMatching(/^[a-zA-Z{}[\]"\\,:]{1,8}$/);
const planted: fc.Arbitrary<Planted> = fc
  .tuple(
    fc.array(word, { maxLength: 3 }),
    identifier,
    fc.constantFrom(" ", ", ", " (", "; "),
    fc.array(word, { maxLength: 3 }),
  )
  .map(([a, id, s, b]) => ({ text: [...a, id.text].join(" ") + s + b.join(" "), secrets: id.secrets }));

// ---- Kubernetes-shaped documents ----------------------------------------------------------------
const nsArb = fc.constantFrom("phi-a", "phi-icu", "default", "kube-system");
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

interface Doc {
  value: Json;
  planted: Planted[];
  ctx: MaskContext;
  /** the path the document takes when written by JSON.stringify (kind before items) */
  via: "text" | "object";
}

type Kind = "pods" | "secrets" | "configmaps" | "events" | "patients";

function meta(i: number, ns: string, patient: boolean, texts: Planted[], lastApplied: Json | null) {
  const annotations: Record<string, Json> = Object.fromEntries(texts.map((t, k) => [`note-${k}`, t.text]));
  if (patient) annotations["patient-name"] = `Patient Number${i}`;
  if (lastApplied !== null) annotations["kubectl.kubernetes.io/last-applied-configuration"] = lastApplied;
  return {
    name: `obj-${i}`,
    namespace: ns,
    uid: "4f1c2a6e-1234-4b1e-9a3d-0c2d5e6f7a8b",
    resourceVersion: String(1000 + i),
    creationTimestamp: "2024-03-12T10:00:00Z",
    labels: { app: "x", "custos.dev/patient": patient ? "true" : "false" },
    annotations,
    managedFields: [{ manager: "kubectl", operation: "Update", fieldsV1: { "f:metadata": {} } }],
  };
}

const itemArb = (kind: Kind, i: number): fc.Arbitrary<{ v: Json; p: Planted[] }> =>
  fc
    .tuple(
      nsArb,
      fc.boolean(),
      fc.array(planted, { minLength: 1, maxLength: 3 }),
      fc.constantFrom("none", "compact", "pretty", "unparseable"),
    )
    .map(([ns, patient, texts, la]) => {
      const t0 = texts[0]!.text;
      let body: Record<string, Json>;
      if (kind === "pods") {
        const spec = {
          containers: [
            {
              name: "app",
              image: "registry.example.com/app:1.2.3",
              ports: [{ containerPort: 8080, protocol: "TCP" }],
              env: [
                ...texts.map((t, k) => ({ name: `E${k}`, value: t.text })),
                { name: "N", value: "plain" },
                { name: "E", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
              ],
            },
          ],
          nodeName: "node-1",
        };
        body = { spec, status: { phase: "Running", podIP: "10.0.0.7", message: t0, score: 1.5e3 } };
      } else if (kind === "secrets")
        body = {
          kind: "Secret",
          apiVersion: "v1",
          type: "Opaque",
          data: { ssn: b64(texts[0]!.secrets[0]!), mrn: b64(t0), note: b64(t0) },
        };
      else if (kind === "configmaps")
        body = { kind: "ConfigMap", apiVersion: "v1", data: { patient: t0, note: t0, count: "3" } };
      else if (kind === "events")
        body = {
          kind: "Event",
          apiVersion: "v1",
          involvedObject: { kind: "Pod", namespace: ns, name: `p-${i}` },
          reason: "Started",
          message: t0,
          firstTimestamp: "2024-03-12T10:00:00Z",
        };
      else
        body = { kind: "Patient", apiVersion: "clinic.example.com/v1", spec: { name: "Jane Roe", mrn: t0 } };
      const inner = { apiVersion: "v1", kind: "Pod", metadata: { name: `obj-${i}`, namespace: ns }, ...body };
      const last =
        la === "none"
          ? null
          : la === "compact"
            ? `${JSON.stringify(inner)}\n`
            : la === "pretty"
              ? JSON.stringify(inner, null, 2)
              : `{"broken": ${JSON.stringify(t0)}`;
      const v: Json = { metadata: meta(i, ns, patient, texts, last), ...body };
      return { v, p: texts };
    });

const RESOURCE: Record<Kind, { resource: string; apiGroup: string; listKind: string }> = {
  pods: { resource: "pods", apiGroup: "", listKind: "PodList" },
  secrets: { resource: "secrets", apiGroup: "", listKind: "SecretList" },
  configmaps: { resource: "configmaps", apiGroup: "", listKind: "ConfigMapList" },
  events: { resource: "events", apiGroup: "", listKind: "EventList" },
  patients: { resource: "patients", apiGroup: "clinic.example.com", listKind: "PatientList" },
};

const docArb: fc.Arbitrary<Doc> = fc
  .tuple(
    fc.constantFrom<Kind>("pods", "secrets", "configmaps", "events", "patients"),
    fc.constantFrom(
      "list",
      "object",
      "table",
      "status",
      "watch",
      "watch-kind-first",
      "watch-extra-keys",
      "list-kind-last",
      "list-no-kind",
    ),
    fc.integer({ min: 1, max: 4 }),
    fc.constantFrom("", "phi-a", "default"),
    fc.integer({ min: 0, max: 1000 }),
  )
  .chain(([kind, shape, n, reqNs, seed]) =>
    fc.tuple(...Array.from({ length: n }, (_, i) => itemArb(kind, i + seed))).map((items): Doc => {
      const r = RESOURCE[kind];
      const c = ctx({
        resource: r.resource,
        apiGroup: r.apiGroup,
        namespace: reqNs,
        verb: shape === "object" ? "get" : "list",
      });
      const planted = items.flatMap((x) => x.p);
      const vs = items.map((x) => x.v);
      let value: Json;
      if (shape === "list")
        value = { kind: r.listKind, apiVersion: "v1", metadata: { resourceVersion: "9" }, items: vs };
      else if (shape === "list-kind-last") value = { apiVersion: "v1", items: vs, kind: r.listKind };
      else if (shape === "list-no-kind") value = { metadata: {}, items: vs };
      else if (shape === "object") {
        const o = vs[0] as Record<string, Json>;
        value = { kind: "Pod", apiVersion: "v1", ...o };
        // (an Event's involvedObject comes after its metadata: the prescan reads on for it)
        return { value, planted: items[0]!.p, ctx: c, via: "text" };
      } else if (shape === "table")
        value = {
          kind: "Table",
          apiVersion: "meta.k8s.io/v1",
          metadata: {},
          columnDefinitions: [{ name: "Name" }, { name: "Note" }],
          rows: vs.map((o, i) => ({ cells: [`obj-${i}`, items[i]!.p[0]!.text], object: o })),
        };
      else if (shape === "status") {
        value = { kind: "Status", apiVersion: "v1", status: "Failure", message: planted[0]!.text, code: 404 };
        return { value, planted: [planted[0]!], ctx: c, via: "object" };
      } else if (shape === "watch-kind-first") {
        // as the API server writes a watch event: type, then the object with its kind first
        const o = vs[0] as Record<string, Json>;
        const kind = typeof o.kind === "string" ? o.kind : r.listKind.slice(0, -4);
        value = { type: "MODIFIED", object: { kind, apiVersion: "v1", ...o } };
        return {
          value,
          planted: items[0]!.p,
          ctx: { ...c, request: { ...c.request, verb: "watch" } },
          via: "text",
        };
      } else if (shape === "watch-extra-keys") {
        // on a watch stream every line is an event, whatever other keys it holds (their values
        // are scanned with the detectors; a `kind` or `items` beside them changes nothing)
        const o = vs[0] as Record<string, Json>;
        const kind = typeof o.kind === "string" ? o.kind : r.listKind.slice(0, -4);
        // (any planted identifier: the detectors find each one alone, as in a Status message)
        const extra = planted[planted.length - 1];
        value = {
          type: "ADDED",
          object: { kind, apiVersion: "v1", ...o },
          x: 1,
          ...(seed % 2 === 0 ? { kind: "Status", note: extra?.text ?? "none" } : { items: [] }),
        };
        return {
          value,
          planted: extra !== undefined && seed % 2 === 0 ? [...items[0]!.p, extra] : items[0]!.p,
          ctx: { ...c, request: { ...c.request, verb: "watch" } },
          via: "object",
        };
      } else value = { type: "MODIFIED", object: vs[0]! };
      const via = shape === "list" || shape === "list-no-kind" ? "text" : "object";
      return { value, planted: shape === "watch" ? items[0]!.p : planted, ctx: c, via };
    }),
  );

// ---- writing JSON text in many ways ------------------------------------------------------------
interface Style {
  ws: () => string;
  str: (s: string) => string;
  num: (n: number) => string;
  /** member order of an object (a permutation) and optional duplicate members written first */
  members: (o: Record<string, Json>) => [string, Json][];
}

function hex4(c: number, upper: boolean): string {
  const h = c.toString(16).padStart(4, "0");
  return upper ? h.toUpperCase() : h;
}

function wildStyle(seed: number, opts: { shuffle: boolean; dups: boolean }): Style {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  return {
    ws: () => (r() < 0.6 ? "" : pick([" ", "\n", "\t", "\r\n", "  ", "\n    "])),
    str: (s) => {
      let out = '"';
      for (const ch of s) {
        const c = ch.codePointAt(0)!;
        const x = r();
        if (ch === '"') out += '\\"';
        else if (ch === "\\") out += "\\\\";
        else if (c < 0x20) out += x < 0.5 ? `\\u${hex4(c, x < 0.25)}` : JSON.stringify(ch).slice(1, -1);
        else if (ch === "/" && x < 0.3) out += "\\/";
        else if (c > 0xffff)
          out += x < 0.3 ? `\\u${hex4(ch.charCodeAt(0), false)}\\u${hex4(ch.charCodeAt(1), true)}` : ch;
        else if (x < 0.08) out += `\\u${hex4(c, x < 0.04)}`;
        else out += ch;
      }
      return out + '"';
    },
    num: (n) => {
      if (!Number.isInteger(n) || Math.abs(n) > 1e15) return String(n);
      const x = r();
      if (x < 0.2) return `${n}.0`;
      if (x < 0.4) return `${n}e0`;
      if (x < 0.5) return `${n * 10}E-1`;
      if (x < 0.6 && n !== 0) return `${n / 1000}e+3`.replace("e+3", n % 1000 === 0 ? "e+3" : "e3");
      return String(n);
    },
    members: (o) => {
      const es = Object.entries(o);
      if (opts.shuffle && r() < 0.5)
        for (let i = es.length - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [es[i], es[j]] = [es[j]!, es[i]!];
        }
      if (opts.dups && es.length > 0 && r() < 0.15) {
        // a duplicate written before the real member: JSON.parse keeps the later one
        const [k, v] = pick(es);
        es.unshift([k, typeof v === "string" ? `${v} SSN 900-12-3456` : v]);
      }
      return es;
    },
  };
}

function write(v: Json, s: Style): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") return s.num(v);
  if (typeof v === "string") return s.str(v);
  if (Array.isArray(v)) return `[${s.ws()}${v.map((x) => write(x, s)).join(`${s.ws()},${s.ws()}`)}${s.ws()}]`;
  const ms = s.members(v as Record<string, Json>);
  return `{${s.ws()}${ms.map(([k, x]) => `${s.str(k)}${s.ws()}:${s.ws()}${write(x, s)}`).join(`${s.ws()},${s.ws()}`)}${s.ws()}}`;
}

function leaks(out: string, planted: readonly Planted[]): string[] {
  const decoded = JSON.stringify(JSON.parse(out));
  return planted.flatMap((p) => p.secrets).filter((x) => out.includes(x) || decoded.includes(x));
}

describe("property: the text masker is the object masker", () => {
  it("compact and pretty JSON: same value and summary, no planted identifier survives", () => {
    let viaTextCount = 0;
    fc.assert(
      fc.property(docArb, fc.boolean(), (doc, pretty) => {
        const text = pretty ? JSON.stringify(doc.value, null, 2) : JSON.stringify(doc.value);
        const r = expectEquivalent(text, doc.ctx);
        expect(leaks(r.text, doc.planted)).toEqual([]);
        expect(r.via).toBe(doc.via);
        if (r.via === "text") viaTextCount++;
      }),
      RUNS,
    );
    expect(viaTextCount).toBeGreaterThan(RUNS.numRuns / 4);
  });

  it("wild JSON (whitespace, \\u escapes, exponents, reordered and duplicate keys): same value and summary", () => {
    let items = 0;
    let fallbacks = 0;
    fc.assert(
      fc.property(docArb, fc.integer(), fc.boolean(), fc.boolean(), (doc, seed, shuffle, dups) => {
        const text = write(doc.value, wildStyle(seed, { shuffle, dups }));
        const r = expectEquivalent(text, doc.ctx);
        expect(leaks(r.text, doc.planted)).toEqual([]);
        // the duplicate planted before a real string member never survives either
        if (!r.summary.truncated && r.via === "text") expect(r.text.includes("900-12-3456")).toBe(false);
        const v = doc.value as { items?: Json[] };
        if (r.via === "text" && Array.isArray(v.items)) {
          items += v.items.length;
          fallbacks += r.itemFallbacks;
        }
      }),
      RUNS,
    );
    // most items are masked on the text; some (duplicates, facts after metadata) are not
    expect(items).toBeGreaterThan(0);
    expect(fallbacks).toBeLessThan(items);
  });
});

describe("property: malformed JSON is refused as JSON.parse refuses it", () => {
  const mutation = fc.tuple(
    fc.nat(),
    fc.constantFrom("delete", "insert", "replace", "truncate", "swap"),
    fc.constantFrom(...'{}[],:"\\ 0123456789-+.eEtfnulrsa\u0000\u001f\n\t/xu'),
  );

  it("mutated documents: same verdict, same message; accepted ones are still equivalent", () => {
    let refused = 0;
    fc.assert(
      fc.property(docArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), (doc, muts) => {
        let text = JSON.stringify(doc.value);
        for (const [at, op, ch] of muts) {
          const i = at % (text.length + 1);
          if (op === "delete") text = text.slice(0, i) + text.slice(i + 1);
          else if (op === "insert") text = text.slice(0, i) + ch + text.slice(i);
          else if (op === "replace") text = text.slice(0, i) + ch + text.slice(i + 1);
          else if (op === "truncate") text = text.slice(0, i);
          else text = text.slice(0, i) + text.slice(i + 1, i + 2) + text.slice(i, i + 1) + text.slice(i + 2);
        }
        let parseError: string | null = null;
        try {
          JSON.parse(text);
        } catch (e) {
          parseError = (e as Error).message;
        }
        if (parseError === null) {
          expectEquivalent(text, doc.ctx);
          return;
        }
        refused++;
        let err: unknown = null;
        try {
          masker.maskJsonText(text, doc.ctx);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(SyntaxError);
        expect((err as Error).message).toBe(parseError);
        const bytes = Buffer.from(text);
        if (bytes.toString("utf8") !== text) return;
        let bytesErr: unknown = null;
        try {
          masker.maskJsonBytes(bytes, doc.ctx);
        } catch (e) {
          bytesErr = e;
        }
        expect(bytesErr).toBeInstanceOf(SyntaxError);
        expect((bytesErr as Error).message).toBe(parseError);
      }),
      RUNS,
    );
    expect(refused).toBeGreaterThan(0);
  });
});

describe("the bytes path (maskJsonBytes)", () => {
  it("documents holding non-ASCII text: the same masked bytes as the text path", () => {
    fc.assert(
      fc.property(docArb, fc.constantFrom("é", "Ünïcødé", "日本語", "😀 ok"), (doc, u) => {
        // a member with non-ASCII text first, where every shape keeps it
        const text = JSON.stringify(doc.value).replace(/^\{/, `{"note":${JSON.stringify(u)},`);
        expectEquivalent(text, doc.ctx);
      }),
      { numRuns: Math.ceil(RUNS.numRuns / 3) },
    );
  });

  it("took both branches in the properties: ASCII bodies and UTF-8 ones", () => {
    // vitest runs a file's tests in order: the properties above fed expectBytesLikeText
    expect(bytesBranches.ascii).toBeGreaterThan(RUNS.numRuns / 2);
    expect(bytesBranches.other).toBeGreaterThan(RUNS.numRuns / 4);
  });

  it("assembles an ASCII body from its own bytes and the replacements", () => {
    const c = ctx({ verb: "list", namespace: "" });
    const text = JSON.stringify({
      kind: "PodList",
      apiVersion: "v1",
      metadata: {},
      items: [
        { metadata: { name: "a", namespace: "phi-a" }, status: { message: "SSN 123-45-6789, \\u00e9" } },
        { metadata: { name: "b", namespace: "phi-a", managedFields: [{ manager: "x" }] } },
      ],
    });
    const bytes = Buffer.from(text);
    const b = masker.maskJsonBytes(bytes, c);
    expect(b.body.toString("latin1")).toBe(masker.maskJsonText(text, c).text);
    expect(b.body.toString()).toContain("SSN [MASKED:ssn]");
    expect(b.body.toString()).not.toContain("managedFields");
    // a replacement that is not ASCII (a partial strategy keeps the input's own characters)
    // still lands as UTF-8 between ASCII spans
    const wide = Buffer.from(text.replace('"name":"a"', '"name":"\\u00e9a"'));
    expect(masker.maskJsonBytes(wide, c).body.toString()).toBe(masker.maskJsonText(wide.toString(), c).text);
  });
});

describe("the text masker on tricky texts", () => {
  const podCtx = ctx({ verb: "list", namespace: "" });
  const list = (items: string) => `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[${items}]}`;
  const pod = (ns: string, rest: string) =>
    `{"metadata":{"name":"p","namespace":"${ns}","labels":{"app":"x"}},"spec":{"containers":[{"name":"c","env":[${rest}]}]}}`;

  it("masks identifiers written with \\u escapes, in keys and values", () => {
    // "123-45-6789" with escaped digits and dash; the key "metadata" and "namespace" escaped too
    const text = list(
      `{"\\u006detadata":{"name":"p","\\u006eamespace":"default"},"status":{"message":"SSN \\u0031\\u0032\\u0033\\u002d45-6789"}}`,
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    expect(JSON.parse(r.text).items[0].status.message).toBe("SSN [MASKED:ssn]");
    expect(r.text).not.toContain("6789");
  });

  it("masks a string whose only digit is its first character", () => {
    const text = list(
      `{"metadata":{"name":"p","namespace":"default","annotations":{"a":"7 Sample Court","b":"x"}}}`,
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    expect(r.text).toContain(`"a":"[MASKED:address]"`);
  });

  it("keeps unicode (BMP, astral, escaped astral) and masks beside it", () => {
    const text = list(
      pod("phi-a", `{"name":"A","value":"x"}`).replace(
        `"labels"`,
        `"annotations":{"n":"患者 😀 \\ud83d\\ude00 MRN: 12345678 é"},"labels"`,
      ),
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    expect(r.itemFallbacks).toBe(0);
    // the masked string is written by JSON.stringify: the escaped pair comes out as the character
    expect(r.text).toContain("患者 😀 😀 MRN: [MASKED:mrn] é");
  });

  it("strings holding braces, brackets, quotes and backslashes do not confuse the tokenizer", () => {
    const tricky = JSON.stringify('{"a":"}]", "b":[1,{]} \\" \\\\ ok');
    const text = list(
      `{"metadata":{"name":"p","namespace":"default","annotations":{"t":${tricky},"u":"\\"}\\\\","v":"SSN 123-45-6789 {\\"}"}}}`,
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    const out = JSON.parse(r.text).items[0].metadata.annotations;
    expect(out.t).toBe(JSON.parse(tricky));
    expect(out.u).toBe('"}\\');
    expect(out.v).toBe('SSN [MASKED:ssn] {"}');
  });

  it("managedFields kept under detectors: strings masked on the text, identifier keys by the object walker", () => {
    // configmaps in "default": no mask applies, the detectors do; managedFields are kept
    const c = ctx({ namespace: "default", resource: "configmaps", name: "cm" });
    const cm = (fieldsV1: Json, manager: string) =>
      JSON.stringify({
        kind: "ConfigMap",
        apiVersion: "v1",
        metadata: {
          name: "cm",
          namespace: "default",
          managedFields: [
            { manager, operation: "Update", apiVersion: "v1", fieldsType: "FieldsV1", fieldsV1 },
          ],
        },
        data: { plain: "ok" },
      });
    // a string in them: masked in place, on the text
    const a = expectEquivalent(cm({ "f:data": { ".": {}, "f:plain": {} } }, "writer SSN 123-45-6789"), c);
    expect(a.via).toBe("text");
    expect(a.itemFallbacks).toBe(0);
    expect(a.text).not.toContain("123-45-6789");
    expect(a.text).toContain('"f:plain":{}');
    // a key holding an identifier (a set value, a list key): renamed, as the object walker does
    for (const key of ['v:"SSN 987-65-4320"', 'k:{"id":"MRN-11223344"}']) {
      const b = expectEquivalent(cm({ "f:spec": { "f:items": { [key]: {} } } }, "kubectl"), c);
      expect(b.text).not.toMatch(/987-65-4320|11223344/);
      expect(
        b.summary.paths.some((p) => p.startsWith("/metadata/managedFields/0/fieldsV1/f:spec/f:items/")),
      ).toBe(true);
    }
  });

  it("managedFields repeated item after item are scanned once, and a changed copy is scanned again", () => {
    const c = ctx({ verb: "list", namespace: "", resource: "events" });
    // a policy of its own: the entries other tests left kept do not decide what this one keeps
    const fresh = compilePolicy(config);
    const kubelet = [
      {
        // letters only (digits could look like an identifier), unique to this run
        manager: `kubelet-${Math.random()
          .toString(36)
          .replace(/[^a-z]/g, "")}`,
        operation: "Update",
        apiVersion: "v1",
        time: "2025-10-02T08:14:31Z",
        fieldsType: "FieldsV1",
        fieldsV1: { "f:count": {}, "f:message": {}, "f:source": { "f:component": {}, "f:host": {} } },
      },
    ];
    const ev = (i: number, managedFields: Json) => ({
      metadata: { name: `e${i}`, namespace: "default", managedFields },
      involvedObject: { kind: "Pod", namespace: "default", name: `p${i}` },
      reason: "Started",
      message: "Started container",
    });
    const withSsn = [{ ...kubelet[0]!, manager: "kubelet SSN 123-45-6789" }];
    const withMrnKey = [{ ...kubelet[0]!, fieldsV1: { 'k:{"id":"MRN-11223344"}': {} } }];
    // the same text again, a longer one that starts like it, PHI in a string, PHI in a key
    const items = [
      ev(0, kubelet),
      ev(1, kubelet),
      ev(2, [...kubelet, ...kubelet]),
      ev(3, kubelet),
      ev(4, withSsn),
      ev(5, kubelet),
      ev(6, withMrnKey),
      ev(7, kubelet),
    ];
    const text = JSON.stringify({ kind: "EventList", apiVersion: "v1", metadata: {}, items });
    // (the manager's name is this test's own: no earlier run can have left this text clean)
    const r = viaText(text, c, fresh);
    expect(r.via).toBe("text");
    // entry by entry: items 1, 2 (its first entry; its second is new), 3, 5 and 7
    expect(r.managedReused).toBe(5);
    expect(r.text).not.toMatch(/123-45-6789|11223344/);
    // the next run (the next watch event, the next list) starts from the last run's clean
    // entries: items 0, 1, 2 (both entries), 3, 5 and 7
    const again = viaText(text, c, fresh);
    expect(again.managedReused).toBe(7);
    expect(again.text).toBe(r.text);
    expect(again.summary).toEqual(r.summary);
    expectEquivalent(text, c);
  });

  it("a managedFields entry that differs from a clean one only in its timestamp is reused; any other time is scanned", () => {
    const c = ctx({ verb: "list", namespace: "", resource: "events" });
    const entry = (time: string) => ({
      // letters only, unique to this run (no earlier run left this text clean)
      manager: `kubelet-${Math.random()
        .toString(36)
        .replace(/[^a-z]/g, "")}`,
      operation: "Update",
      apiVersion: "v1",
      time,
      fieldsType: "FieldsV1",
      fieldsV1: { "f:count": {}, "f:message": {} },
    });
    const base = entry("2025-10-02T08:14:31Z");
    const at = (time: string) => [{ ...base, time }];
    const ev = (i: number, managedFields: Json) => ({
      metadata: { name: `e${i}`, namespace: "default", managedFields },
      involvedObject: { kind: "Pod", namespace: "default", name: `p${i}` },
      reason: "Started",
    });
    const items = [
      ev(0, at("2025-10-02T08:14:31Z")),
      ev(1, at("2025-10-02T08:14:32Z")), // another second: reused
      ev(2, at("123-45-6789:8:14:33Z")), // same length, not a timestamp but an SSN: scanned
      ev(3, at("2025-10-02T08:14:34.5Z")), // another length: walked (and kept as the clean entry)
      ev(4, at("2025-10-02T08:14:35.5Z")), // reused
      ev(5, at("234-56-7890:8:14:36Z")), // an SSN again, after the clean entry changed
    ];
    const text = JSON.stringify({ kind: "EventList", apiVersion: "v1", metadata: {}, items });
    const r = viaText(text, c);
    expect(r.via).toBe("text");
    expect(r.managedReused).toBe(2);
    expect(r.text).not.toMatch(/123-45-6789|234-56-7890/);
    expect(r.summary.counts.ssn).toBe(2);
    expectEquivalent(text, c);
  });

  it("a managedFields entry's timestamp is not scanned (as creationTimestamp is not); any other string in it is", () => {
    // a detector that would take any ISO date, timestamps included
    const { same } = withDetector("any-date", "date", "\\d{4}-\\d{2}-\\d{2}", "everywhere");
    const c = ctx({ verb: "list", namespace: "", resource: "configmaps" });
    const cm = (i: number, time: Json, deeper: string) => ({
      metadata: {
        name: `cm${i}`,
        namespace: "default",
        creationTimestamp: "2025-10-02T08:14:31Z",
        managedFields: [
          {
            manager: "kubectl",
            operation: "Update",
            apiVersion: "v1",
            time,
            fieldsType: "FieldsV1",
            fieldsV1: { "f:data": { "f:note": {} }, time: deeper },
          },
        ],
      },
      data: { note: "seen 1999-01-02" },
    });
    const items = [
      cm(0, "2025-10-02T08:14:31Z", "x"),
      cm(1, "2025-10-02T08:14:32.123456Z", "x"),
      cm(2, "2025-10-02T08:14:33+02:00", "2025-10-02T08:14:33Z"), // a deeper "time" is scanned
      cm(3, "born 1999-01-02", "x"), // not a timestamp: scanned
      cm(4, "2025-10-02T08:14:34Z ", "x"), // nor this
    ];
    const text = JSON.stringify({ kind: "ConfigMapList", apiVersion: "v1", metadata: {}, items });
    const r = same(text, c);
    const out = JSON.parse(r.text) as { items: { metadata: { managedFields: Json[] } }[] };
    const entry = (i: number) =>
      out.items[i]!.metadata.managedFields[0] as { time: string; fieldsV1: { time: string } };
    expect(entry(0).time).toBe("2025-10-02T08:14:31Z");
    expect(entry(1).time).toBe("2025-10-02T08:14:32.123456Z");
    expect(entry(2).time).toBe("2025-10-02T08:14:33+02:00");
    expect(entry(2).fieldsV1.time).toBe("[MASKED:date]T08:14:33Z");
    expect(entry(3).time).toBe("born [MASKED:date]");
    expect(entry(4).time).toBe("[MASKED:date]T08:14:34Z ");
    expect(r.text).not.toContain("1999-01-02");
  });

  it("a kept managedFields entry gives way to another only after it missed eight runs in a row", () => {
    const c = ctx({ verb: "list", namespace: "", resource: "events" });
    const tag = uniqueTag();
    const one = (manager: string) =>
      oneEvent([{ manager: `${manager}-${tag}`, operation: "Update", fieldsV1: { "f:count": {} } }]);
    // a policy of its own: no other test's entries are kept for its detectors
    const { pol } = withDetector("ssn-only", "ssn", "\\b\\d{3}-\\d{2}-\\d{4}\\b", "everywhere");
    const reused = (manager: string) => maskJsonTextWith(pol, KEY, c, undefined, one(manager)).managedReused;
    expect(reused("first")).toBe(0); // kept for the runs that follow
    expect(reused("other")).toBe(0); // one miss: the first one stays kept
    expect(reused("first")).toBe(1);
    // seven more misses in a row (eight in all) and the other one is kept instead
    for (let i = 0; i < 7; i++) expect(reused("other")).toBe(0);
    expect(reused("other")).toBe(0);
    expect(reused("other")).toBe(1);
    expect(reused("first")).toBe(0);
  });

  it("a clean managedFields entry kept from a non-ASCII text never stands for an ASCII body's bytes", () => {
    const c = ctx({ verb: "list", namespace: "", resource: "events" });
    const tag = uniqueTag();
    // U+0131 (dotless i) is 0x31, the digit 1, in its low byte: a Latin-1 copy would say "1"
    const doc = (key: string) =>
      oneEvent([
        {
          manager: `kubelet-${tag}`,
          operation: "Update",
          fieldsV1: { [key]: {} },
          time: "2025-10-02T08:14:31Z",
        },
      ]);
    // a policy of its own: no other test's entries are kept for its detectors
    const { m } = withDetector("mrn-any", "mrn", "MRN \\d{8}", "everywhere");
    const first = m.maskJsonText(doc("f:record MRN \u01312345678"), c);
    expect(first.text).toContain("\u01312345678");
    const second = m.maskJsonBytes(Buffer.from(doc("f:record MRN 12345678")), c);
    expect(second.body.toString()).not.toContain("12345678");
  });

  it("a key is never taken for a cached one that differs in a character above U+007F", () => {
    // "a\u0131cdefgh" and "a1cdefgh" share the key cache's slot (length, first, middle and last
    // characters); U+0131's low byte is the digit 1, and four at a time its bits spill into the
    // next byte's, which "c" happens to set: only a cached key's own ASCII bytes may be compared
    const doc = (key: string) =>
      JSON.stringify({
        kind: "PodList",
        apiVersion: "v1",
        metadata: {},
        items: [{ metadata: { name: "p", namespace: "default" }, spec: { [key]: "SSN 123-45-6789" } }],
      });
    const first = masker.maskJsonText(doc("a\u0131cdefgh"), podCtx);
    expect(first.summary.paths).toContain("/items/0/spec/a\u0131cdefgh");
    const second = masker.maskJsonBytes(Buffer.from(doc("a1cdefgh")), podCtx);
    expect(second.summary.paths).toContain("/items/0/spec/a1cdefgh");
    expect(second.summary.paths).not.toContain("/items/0/spec/a\u0131cdefgh");
  });

  it("copies untouched numbers, escapes and whitespace byte for byte", () => {
    const untouched = `"status":{"score":1.50E+2,"big":12345678901234567890,"neg":-0,"tiny":1e-7,"esc":"\\u0041\\/b","huge":1e400}`;
    const text = list(
      `{"metadata":{"name":"p","namespace":"phi-a"},\n  "spec":{"containers":[{"name":"c","env":[{"name":"A","value":"secret-1"}]}]},\n  ${untouched}}`,
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    expect(r.text).toContain(untouched);
    expect(r.text).toContain(`\n  "spec"`);
    expect(r.text).toContain(`"value":"[MASKED:env]"`);
    expect(r.text).not.toContain("secret-1");
    // the old path re-serialises: 150, 12345678901234567000, 0, 1e-7, "A/b", null
    expect(JSON.stringify(masker.maskJson(JSON.parse(text), podCtx).value)).not.toContain("1.50E+2");
  });

  it("pretty-printed input: members dropped with their commas, the rest as written", () => {
    const obj = {
      kind: "PodList",
      apiVersion: "v1",
      metadata: {},
      items: [
        {
          metadata: {
            name: "p",
            namespace: "phi-a",
            labels: { "custos.dev/patient": "true" },
            managedFields: [{ manager: "m" }],
            annotations: { "patient-name": "Jane Roe" },
          },
          spec: { containers: [{ name: "c", env: [{ name: "A", value: "v" }] }] },
        },
      ],
    };
    for (const indent of [0, 1, 2, "\t"] as const) {
      const text = JSON.stringify(obj, null, indent);
      const r = expectEquivalent(text, podCtx);
      expect(r.via).toBe("text");
      expect(r.text).not.toContain("managedFields");
      expect(r.summary.paths).toContain("/items/0/metadata/managedFields");
    }
  });

  it("drops the first, middle and last members of an object and the elements of an array", () => {
    const drop = makeConfig({
      masks: [
        {
          id: "drop",
          match: { resources: ["pods"] },
          fields: [
            { path: "spec.a", segments: ["spec", "a"], strategy: { kind: "drop" }, label: "a" },
            { path: "spec.c", segments: ["spec", "c"], strategy: { kind: "drop" }, label: "c" },
            { path: "spec.e", segments: ["spec", "e"], strategy: { kind: "drop" }, label: "e" },
            { path: "spec.xs[*]", segments: ["spec", "xs", "*"], strategy: { kind: "drop" }, label: "x" },
            { path: "spec.o", segments: ["spec", "o"], strategy: { kind: "drop" }, label: "o" },
          ],
          detectors: [],
          source: { file: "p.ts", line: 1, column: 1 },
        },
      ],
    });
    const p = compilePolicy(drop);
    const m = createMasker(drop, { pseudonymKey: KEY });
    for (const spec of [
      `{"a":1,"b":2,"c":3,"d":4,"e":5}`,
      `{ "a" : 1 , "c" : 3 , "b" : 2 , "e" : 5 }`,
      `{"a":1,"c":3,"e":5}`,
      `{"b":[],"xs":[1, "two", {"t":3}, [4]],"o":{"deep":[1,2]},"d":{}}`,
      `{"xs":[],"e":"five"}`,
    ]) {
      const text = list(`{"metadata":{"name":"p","namespace":"x"},"spec":${spec}}`);
      const r = maskJsonTextWith(p, KEY, podCtx, undefined, text);
      const old = m.maskJson(JSON.parse(text), podCtx);
      expect(r.via).toBe("text");
      expect(JSON.parse(r.text)).toEqual(old.value);
      expect(r.summary).toEqual(old.summary);
    }
  });

  it("field strategies on strings, numbers, objects and base64 values", () => {
    const src = { file: "p.ts", line: 1, column: 1 };
    const f = (path: string, strategy: import("../sdk/schema/config.ts").MaskStrategy, base64?: boolean) => ({
      path,
      segments: path.split("."),
      strategy,
      label: path.split(".").pop()!,
      ...(base64 === undefined ? {} : { base64 }),
    });
    const cfg = makeConfig({
      masks: [
        {
          id: "cm",
          match: { resources: ["configmaps"] },
          fields: [
            f("data.token", { kind: "redact" }, true),
            f("data.plain", { kind: "redact" }),
            f("data.part", { kind: "partial", keepFirst: 1, keepLast: 2 }),
            f("data.pseudo", { kind: "pseudonymize" }),
            f("data.num", { kind: "redact" }),
            f("data.obj", { kind: "redact" }),
            f("data.nul", { kind: "redact" }),
          ],
          detectors: [],
          source: src,
        },
      ],
    });
    const p = compilePolicy(cfg);
    const m = createMasker(cfg, { pseudonymKey: KEY });
    const c = ctx({ resource: "configmaps", verb: "list", namespace: "" });
    const text = `{"kind":"ConfigMapList","items":[{"kind":"ConfigMap","metadata":{"name":"a"},"data":{"token":"${b64("s3cret")}","plain":"[MASKED:plain]","part":"123-45-6789","pseudo":"Jane","num":1.5e1,"obj":{"a":["x",2,null]},"nul":null}}]}`;
    const r = maskJsonTextWith(p, KEY, c, undefined, text);
    const old = m.maskJson(JSON.parse(text), c);
    expect(r.via).toBe("text");
    expect(JSON.parse(r.text)).toEqual(old.value);
    expect(r.summary).toEqual(old.summary);
    expect(JSON.parse(r.text).items[0].data.token).toBe(b64("[MASKED:token]"));
  });

  it("duplicate keys: the value JSON.parse keeps is masked, the shadowed one is not emitted", () => {
    const text = list(
      pod("default", `{"name":"A","value":"SSN 123-45-6789","value":"fine"}`) +
        "," +
        pod("phi-a", `{"name":"B","value":"x"}`),
    );
    const r = expectEquivalent(text, podCtx);
    expect(r.via).toBe("text");
    expect(r.itemFallbacks).toBe(1);
    expect(r.text).not.toContain("6789");
    expect(r.text).toContain(`"value":"[MASKED:env]"`);
    // in a part no mask walks (the list's own members, a skipped key), too — also when the
    // duplicate is written with an escape, or comes after more than 32 other keys
    // (`uid` is a key the detectors skip: its value is passed over, not walked)
    const many = Array.from({ length: 40 }, (_, i) => `"f${i}":${i}`).join(",");
    for (const text of [
      list(`{"metadata":{"name":"p"},"spec":{"uid":{"ab":"SSN 900-12-3456","a\\u0062":"u"}}}`),
      list(`{"metadata":{"name":"p"},"spec":{"uid":{"a\\u0062":"SSN 900-12-3456","ab":"u"}}}`),
      list(`{"metadata":{"name":"p"},"spec":{"uid":{${many},"k7":"SSN 900-12-3456","k7":1}}}`),
      list(`{"metadata":{"name":"p"},"spec":{"uid":{"k7":"SSN 900-12-3456","k7":1,${many}}}}`),
      `{"kind":"PodList","apiVersion":"v1 SSN 900-12-3456","apiVersion":"v1","items":[]}`,
      list(`{"metadata":{"name":"p","uid":"SSN 900-12-3456","uid":"u"}}`),
    ]) {
      const d = expectEquivalent(text, podCtx);
      expect(d.text).not.toContain("900-12-3456");
    }
  });

  it("array-index keys, facts after metadata, and identifier keys go to the object walker", () => {
    for (const item of [
      `{"metadata":{"name":"p","namespace":"default","annotations":{"b":"MRN: 12345678","7":"SSN 123-45-6789"}}}`,
      `{"metadata":{"name":"p","namespace":"phi-a"},"kind":"Secret","data":{"ssn":"${b64("123-45-6789")}"}}`,
      `{"metadata":{"name":"p","namespace":"default","labels":{"MRN-00481516":"x"}},"spec":{"n":"SSN 123-45-6789"}}`,
      `{"metadata":{"name":"p","namespace":"default"},"spec":{"__proto__":"SSN 123-45-6789","n":"SSN 123-45-6789"}}`,
    ]) {
      const r = expectEquivalent(list(item), podCtx);
      expect(r.via).toBe("text");
      expect(r.itemFallbacks).toBe(1);
      expect(r.text).not.toContain("6789");
    }
  });

  it("an EventList as the API server writes it (involvedObject after metadata) is masked on the text", () => {
    const evCtx = ctx({ verb: "list", namespace: "", resource: "events" });
    const items = Array.from({ length: 60 }, (_, i) => clusterEvent(i, i % 2 === 1 ? "phi-a" : "default"));
    const text = JSON.stringify({
      kind: "EventList",
      apiVersion: "v1",
      metadata: { resourceVersion: "1" },
      items,
    });
    const r = expectEquivalent(text, evCtx);
    expect(r.via).toBe("text");
    expect(r.itemFallbacks).toBe(0);
    // the applications' events name an MRN (items 7, 27, 47): masked, as the object walker does
    expect(r.summary.counts.mrn).toBe(3);
    expect(r.text).not.toMatch(/MRN: \d/);
    // the prescan stops at involvedObject: a kind after it sends the item to the object walker
    const odd = JSON.stringify({
      kind: "EventList",
      apiVersion: "v1",
      metadata: {},
      items: [{ ...(items[7] as object), kind: "Secret" }],
    });
    expect(expectEquivalent(odd, evCtx).itemFallbacks).toBe(1);
  });

  it("an Event whose object is not the guessed one is masked again, as the object walker masks it", () => {
    // pods in PHI namespaces carry an SSN detector that applies only where the pods' mask does:
    // an event gets it when it is about such a pod (whatever the event's own namespace)
    const { same } = withDetector("ssn-near", "ssn", "\\b\\d{3}-\\d{2}-\\d{4}\\b", "masks", [
      {
        id: "phi-pods",
        match: { resources: ["pods"], phi: true },
        fields: [],
        detectors: ["ssn-near"],
        source: SRC,
      },
    ]);
    const evCtx = ctx({ verb: "list", namespace: "", resource: "events" });
    const ev = (i: number, ns: string, ref: Json | undefined) => ({
      metadata: { name: `e${i}`, namespace: ns, uid: `u${i}` },
      ...(ref === undefined ? {} : { involvedObject: ref }),
      reason: "Note",
      message: `about 123-45-${String(1000 + i)}`,
    });
    const items = [
      ev(0, "phi-a", { kind: "Pod", apiVersion: "v1", namespace: "phi-a", name: "p" }), // as guessed
      ev(1, "default", { kind: "Pod", apiVersion: "v1", namespace: "phi-b", name: "p" }), // another namespace
      ev(2, "phi-a", undefined), // about nothing: no pod detectors
      ev(3, "phi-a", { kind: "ConfigMap", apiVersion: "v1", namespace: "phi-a", name: "c" }), // not a pod
      ev(4, "phi-a", { kind: "Pod", apiVersion: "v1", name: "p" }), // the event's namespace
      ev(5, "default", { kind: "Pod", apiVersion: "v1", namespace: "default", name: "p" }),
      ev(6, "default", { kind: "Pod", apiVersion: "v1", namespace: "phi-b", name: "p" }), // after a Pod in default
      ev(7, "default", { kind: 7, apiVersion: "v1", namespace: "phi-b" }), // a kind that is no string
      ev(8, "default", { kind: "Pod", apiVersion: "v1", namespace: { ns: "phi-b" } }), // nor this namespace
      ev(9, "default", {}), // an object with nothing in it
    ];
    const text = JSON.stringify({ kind: "EventList", apiVersion: "v1", metadata: {}, items })
      // an escape in the object's namespace (the walk reads it decoded)
      .replace('"namespace":"phi-b","name":"p"}', '"namespace":"ph\\u0069-b","name":"p"}');
    expect(text).toContain("ph\\u0069-b");
    const r = same(text, evCtx);
    expect(r.itemFallbacks).toBe(0);
    expect(r.itemRedos).toBeGreaterThanOrEqual(3);
    const msgs = (JSON.parse(r.text) as { items: { message: string }[] }).items.map((x) => x.message);
    expect(msgs).toEqual([
      "about [MASKED:ssn]",
      "about [MASKED:ssn]",
      "about 123-45-1002",
      "about 123-45-1003",
      "about [MASKED:ssn]",
      "about 123-45-1005",
      "about [MASKED:ssn]",
      "about 123-45-1007",
      "about 123-45-1008",
      "about 123-45-1009",
    ]);
  });

  it("last-applied-configuration: masked on the text when canonical, else by the object walker", () => {
    const inner = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "phi-a", annotations: { n: "MRN: 12345678" } },
      spec: { containers: [{ name: "c", env: [{ name: "A", value: "secret-1" }] }] },
    };
    for (const la of [
      `${JSON.stringify(inner)}\n`,
      JSON.stringify(inner),
      JSON.stringify(inner, null, 1),
      JSON.stringify(inner).replace('"p"', '"\\u0070"'),
      JSON.stringify({ ...inner, x: 1.0e21, y: "<&>\u2028" }),
      JSON.stringify({ ...inner, z: "\ud800" }),
      `${JSON.stringify(inner).slice(0, -1)},"3":1}`,
      "not json SSN 123-45-6789",
    ]) {
      const text = list(
        `{"metadata":{"name":"p","namespace":"phi-a","annotations":{"kubectl.kubernetes.io/last-applied-configuration":${JSON.stringify(la)}}}}`,
      );
      const r = expectEquivalent(text, podCtx);
      expect(r.via).toBe("text");
      expect(r.text).not.toContain("secret-1");
      expect(r.text).not.toContain("12345678");
    }
  });

  it("shapes the text walk does not take go to the object walker whole", () => {
    for (const text of [
      `[{"message":"SSN 123-45-6789"}]`,
      `"SSN 123-45-6789"`,
      `{"type":"ADDED","object":{"metadata":{"name":"p","namespace":"phi-a"},"status":{"m":"SSN 123-45-6789"}}}`,
      `{"kind":"Status","message":"SSN 123-45-6789"}`,
      `{"items":[{"m":"SSN 123-45-6789"}],"kind":"Table","rows":[]}`,
      `{"kind":"PodList","items":[{"m":"SSN 123-45-6789"}],"kind":"PodList"}`,
      `{"kind":"PodList","items":{"m":"SSN 123-45-6789"}}`,
      `{"kind":"Pod","metadata":{"name":"p"},"kind":"Status","message":"SSN 123-45-6789"}`,
    ]) {
      const r = expectEquivalent(text, podCtx);
      expect(r.via).toBe("object");
    }
  });

  it("refuses what JSON.parse refuses, with its message", () => {
    for (const text of [
      "",
      " ",
      "\ufeff{}",
      `{"kind":"PodList","items":[{]}`,
      `{"kind":"PodList","items":[],}`,
      `{"kind":"PodList","items":[1,]}`,
      `{"kind":"PodList","items":[01]}`,
      `{"kind":"PodList","items":[1.]}`,
      `{"kind":"PodList","items":[-]}`,
      `{"kind":"PodList","items":[.5]}`,
      `{"kind":"PodList","items":[+1]}`,
      `{"kind":"PodList","items":[1e]}`,
      `{"kind":"PodList","items":[NaN]}`,
      `{"kind":"PodList","items":[tru]}`,
      `{"kind":"PodList","items":["a\u0001b"]}`,
      `{"kind":"PodList","items":["a\\xb"]}`,
      `{"kind":"PodList","items":["a\\u12g4"]}`,
      `{"kind":"PodList","items":["abc]}`,
      `{"kind":"PodList","items":[{"a" 1}]}`,
      `{"kind":"PodList","items":[{a:1}]}`,
      `{"kind":"PodList","items":[]} x`,
      `{"kind":"PodList","items":[]}{}`,
      `{"kind":"Pod","metadata":{"name":"p\u001f"}}`,
      `{"kind":"Pod","metadata":{"name":'p'}}`,
    ]) {
      let want = "";
      try {
        JSON.parse(text);
      } catch (e) {
        want = (e as Error).message;
      }
      expect(want).not.toBe("");
      expect(() => masker.maskJsonText(text, podCtx)).toThrow(want);
      expect(() => masker.maskJsonText(text, podCtx)).toThrow(SyntaxError);
    }
  });
});

describe("maskBuffered uses the text masker", () => {
  const c = ctx({ verb: "list", namespace: "" });
  const headers = { "content-type": "application/json" };
  /** the same masker without maskJsonText: maskBuffered's object path */
  const objectOnly: Masker = {
    maskJson: (v, x) => masker.maskJson(v, x),
    textStream: (x) => masker.textStream(x),
    appliesTo: (x) => masker.appliesTo(x),
  };

  it("masks a list as the object path does, and says so in the summary", () => {
    const text = JSON.stringify({
      kind: "PodList",
      apiVersion: "v1",
      metadata: {},
      items: [{ metadata: { name: "p", namespace: "phi-a" }, status: { message: "SSN 123-45-6789 é" } }],
    });
    const a = maskBuffered({ status: 200, headers, body: Buffer.from(text) }, masker, c);
    const b = maskBuffered({ status: 200, headers, body: Buffer.from(text) }, objectOnly, c);
    expect(JSON.parse(a.body.toString("utf8"))).toEqual(JSON.parse(b.body.toString("utf8")));
    expect(a.summary).toEqual(b.summary);
    expect(a.body.toString("utf8")).toContain("SSN [MASKED:ssn] é");
  });

  it("an unchanged body goes out as the upstream's bytes only when they are valid UTF-8", () => {
    const clean = Buffer.from(JSON.stringify({ kind: "Pod", apiVersion: "v1", metadata: { name: "p é" } }));
    const a = maskBuffered({ status: 200, headers, body: clean }, masker, c);
    expect(a.body).toBe(clean);
    // a byte that is not UTF-8: the client gets what the masker read (U+FFFD), never the raw byte
    const broken = Buffer.concat([
      Buffer.from('{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p'),
      Buffer.from([0xff]),
      Buffer.from('"}}'),
    ]);
    const b = maskBuffered({ status: 200, headers, body: broken }, masker, c);
    expect(b.body).not.toBe(broken);
    expect(b.body.includes(0xff)).toBe(false);
    expect(b.body.toString("utf8")).toBe(broken.toString("utf8"));
    // a masked body is always the masked text
    const masked = Buffer.from(
      JSON.stringify({
        kind: "Pod",
        apiVersion: "v1",
        metadata: { name: "p", namespace: "phi-a" },
        status: { message: "SSN 123-45-6789" },
      }),
    );
    expect(maskBuffered({ status: 200, headers, body: masked }, masker, c).body.toString()).toContain(
      "[MASKED:ssn]",
    );
  });

  it("refuses malformed JSON with the same MASK_MALFORMED_JSON error as before", () => {
    for (const text of [`{"kind":"PodList","items":[{"a":1,}]}`, "{", `{"kind":"Pod","x":"\u0000"}`, "[é"]) {
      const body = Buffer.from(text);
      const errOf = (m: Masker) => {
        try {
          maskBuffered({ status: 200, headers, body }, m, c);
        } catch (e) {
          return e as Error & { code?: string };
        }
        throw new Error("not refused");
      };
      const a = errOf(masker);
      const b = errOf(objectOnly);
      expect(a.code).toBe("MASK_MALFORMED_JSON");
      expect(a.message).toBe(b.message);
      expect(a).toEqual(b);
    }
  });

  it("a refusal never quotes the body: the parser's message loses what it quoted", () => {
    // V8 quotes the input in its messages: `Unexpected token 'S', "SSN 123-45-6789" is not valid JSON`
    for (const text of [
      "SSN 123-45-6789",
      `{"note":"SSN 123-45-6789"}x`,
      `["MRN 12345678", tru]`,
      `"SSN 123-45-6789`,
    ]) {
      let parserSaid = "";
      try {
        JSON.parse(text);
      } catch (e) {
        parserSaid = (e as Error).message;
      }
      for (const m of [masker, objectOnly]) {
        let err: (Error & { code?: string; details?: unknown }) | undefined;
        try {
          maskBuffered({ status: 200, headers, body: Buffer.from(text) }, m, c);
        } catch (e) {
          err = e as Error & { code?: string };
        }
        expect(err?.code).toBe("MASK_MALFORMED_JSON");
        expect(`${err?.message} ${JSON.stringify(err)}`).not.toMatch(/6789|12345678/);
      }
      // the same for a watch stream's event
      const w = masker.watchStream(ctx({ verb: "watch" }));
      let werr: Error | undefined;
      try {
        w.push(`${text}\n`, () => {});
      } catch (e) {
        werr = e as Error;
      }
      expect(werr?.message).toContain("not valid JSON");
      expect(`${werr?.message} ${JSON.stringify(werr)}`).not.toMatch(/6789|12345678/);
      // (the test is only worth something where the parser did quote it)
      if (text === "SSN 123-45-6789") expect(parserSaid).toContain("123-45-6789");
    }
  });
});

describe("hasControlByte (four bytes at a time)", () => {
  it("says whether a byte below 0x20 occurs, as a byte-by-byte loop does, at any alignment", () => {
    // bytes near the edges that matter (0x1f/0x20, 0x7f/0x80, 0xff) and any other
    const byte = fc.oneof(
      fc.constantFrom(0, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xa0, 0xff),
      fc.integer({ min: 0, max: 255 }),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 40 }), fc.nat(7), (bytes, cut) => {
        const all = Uint8Array.from(bytes);
        const b = all.subarray(Math.min(cut, all.length));
        expect(hasControlByte(b)).toBe(b.some((x) => x < 0x20));
      }),
      RUNS,
    );
    // a long ASCII run with one control byte anywhere
    const long = Buffer.alloc(1027, 0x61);
    expect(hasControlByte(long)).toBe(false);
    for (const at of [0, 1, 2, 3, 4, 511, 1023, 1026]) {
      long[at] = 0x0a;
      expect(hasControlByte(long)).toBe(true);
      long[at] = 0x61;
    }
  });
});
