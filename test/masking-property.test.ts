/**
 * Universal claims, checked with generated data (fast-check):
 *  1. no planted identifier (SSN, MRN, email, phone, birth date) survives in objects, lists,
 *     Tables, watch streams split anywhere, log streams and exec frames split anywhere;
 *  2. what no mask targets comes out byte for byte as it went in (key order, numbers).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import type { Json } from "../sdk/schema/config.ts";
import { ctx, makeConfig } from "./masking-fixtures.ts";

const masker = createMasker(makeConfig(), { pseudonymKey: new Uint8Array(32).fill(9) });
const RUNS = { numRuns: Number(process.env.MASK_PROP_RUNS ?? 150) };

const d = (n: number) => fc.integer({ min: 0, max: 10 ** n - 1 }).map((x) => String(x).padStart(n, "0"));

// ---- planted identifiers ---------------------------------------------------------------------
const ssn = fc
  .tuple(
    fc.integer({ min: 1, max: 899 }).filter((a) => a !== 666),
    fc.integer({ min: 1, max: 99 }),
    fc.integer({ min: 1, max: 9999 }),
  )
  .map(
    ([a, g, s]) =>
      `${String(a).padStart(3, "0")}-${String(g).padStart(2, "0")}-${String(s).padStart(4, "0")}`,
  );
const mrn = fc
  .tuple(fc.constantFrom("MRN: ", "MRN#", "MRN ", "mrn:"), d(8))
  .map(([l, n]) => ({ text: l + n, secret: n }));
const phone = fc
  .tuple(
    fc.integer({ min: 200, max: 999 }),
    fc.integer({ min: 200, max: 999 }),
    d(4),
    fc.constantFrom("(A) B-C", "A-B-C", "A.B.C", "+1 A B C"),
  )
  .map(([a, b, c, f]) => f.replace("A", String(a)).replace("B", String(b)).replace("C", c));
const email = fc
  .tuple(
    fc.stringMatching(/^[a-z][a-z0-9._]{1,10}[a-z0-9]$/),
    fc.constantFrom("example.org", "mail.example.com", "clinic.example.net"),
  )
  .map(([u, h]) => `${u}@${h}`);
const dob = fc
  .tuple(
    fc.integer({ min: 1920, max: 2015 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 28 }),
    fc.constantFrom("iso", "us", "long"),
  )
  .map(([y, m, dd, f]) => {
    const mm = String(m).padStart(2, "0");
    const ds = String(dd).padStart(2, "0");
    if (f === "iso") return `${y}-${mm}-${ds}`;
    if (f === "us") return `${mm}/${ds}/${y}`;
    const names = [
      "January",
      "February",
      "March",
      "April",
      "May",
      "June",
      "July",
      "August",
      "September",
      "October",
      "November",
      "December",
    ];
    return `${names[m - 1]} ${dd}, ${y}`;
  });

interface Planted {
  text: string;
  secrets: string[];
}
const identifier: fc.Arbitrary<Planted> = fc.oneof(
  ssn.map((s) => ({ text: `SSN ${s}`, secrets: [s] })),
  mrn.map((m) => ({ text: m.text, secrets: [m.secret] })),
  phone.map((p) => ({ text: p, secrets: [p] })),
  email.map((e) => ({ text: e, secrets: [e] })),
  dob.map((x) => ({ text: `born ${x}`, secrets: [x] })),
);
/** filler without digits or '@' (so it cannot itself look like an identifier) */
const word = fc.stringMatching(/^[a-zA-Z]{1,9}$/);
const sep = fc.constantFrom(" ", ", ", "; ", " - ", " (", ") ");
const plantedText: fc.Arbitrary<Planted> = fc
  .tuple(
    fc.array(word, { maxLength: 4 }),
    identifier,
    sep,
    fc.array(word, { maxLength: 4 }),
    fc.option(identifier, { nil: undefined }),
  )
  .map(([a, id, s, b, id2]) => ({
    text: [...a, id.text].join(" ") + s + b.join(" ") + (id2 ? ` ${id2.text}` : ""),
    secrets: [...id.secrets, ...(id2?.secrets ?? [])],
  }));

function leaks(out: string, planted: Planted[]): string[] {
  return planted.flatMap((p) => p.secrets).filter((s) => out.includes(s));
}

const nsArb = fc.constantFrom("phi-a", "phi-icu", "default", "kube-system");
const podWith = (ns: string, texts: Planted[], i: number): Json => ({
  metadata: {
    name: `p-${i}`,
    namespace: ns,
    uid: "4f1c2a6e-1234-4b1e-9a3d-0c2d5e6f7a8b",
    resourceVersion: "42",
    labels: { app: "x" },
    annotations: Object.fromEntries(texts.map((t, k) => [`note-${k}`, t.text])),
  },
  spec: {
    containers: [
      { name: "c", image: "nginx:1.25", env: texts.map((t, k) => ({ name: `E${k}`, value: t.text })) },
    ],
  },
});

function splitAt(s: string, cuts: number[]): string[] {
  const pts = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(s.slice(prev, p));
    prev = p;
  }
  out.push(s.slice(prev));
  return out;
}

describe("property: no planted identifier survives", () => {
  it("objects and lists (any namespace: the detectors apply everywhere)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(nsArb, fc.array(plantedText, { minLength: 1, maxLength: 3 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (items) => {
          const planted = items.flatMap(([, t]) => t);
          const list = {
            kind: "PodList",
            apiVersion: "v1",
            metadata: {},
            items: items.map(([ns, t], i) => podWith(ns, t, i)),
          };
          const out = JSON.stringify(masker.maskJson(list, ctx({ namespace: "", verb: "list" })).value);
          expect(leaks(out, planted)).toEqual([]);
          const one = JSON.stringify(masker.maskJson(list.items[0]!, ctx({ namespace: items[0]![0] })).value);
          expect(leaks(one, items[0]![1])).toEqual([]);
        },
      ),
      RUNS,
    );
  });

  it("server-side Tables (cells and row objects)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(nsArb, plantedText), { minLength: 1, maxLength: 5 }), (rows) => {
        const table = {
          kind: "Table",
          apiVersion: "meta.k8s.io/v1",
          metadata: {},
          columnDefinitions: [{ name: "Name" }, { name: "Note" }],
          rows: rows.map(([ns, t], i) => ({ cells: [`p-${i}`, t.text], object: podWith(ns, [t], i) })),
        };
        const out = JSON.stringify(masker.maskJson(table, ctx({ namespace: "" })).value);
        expect(
          leaks(
            out,
            rows.map(([, t]) => t),
          ),
        ).toEqual([]);
      }),
      RUNS,
    );
  });

  it("watch streams split at any byte", () => {
    fc.assert(
      fc.property(
        fc.array(plantedText, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (texts, cuts) => {
          const body = texts
            .map(
              (t, i) =>
                // with characters of two, three and four UTF-8 bytes, for the cuts to fall inside
                JSON.stringify({
                  type: "MODIFIED",
                  object: { ...(podWith("phi-a", [t], i) as object), note: "é日😀" },
                }) + "\n",
            )
            .join("");
          const w = masker.watchStream(ctx({ verb: "watch" }));
          const outs: Buffer[] = [];
          const write = (b: Buffer) => outs.push(b);
          // cut at any byte: a character split between chunks must come out whole
          for (const c of splitAt(Buffer.from(body).toString("latin1"), cuts))
            w.push(Buffer.from(c, "latin1"), write);
          w.end(write);
          const out = Buffer.concat(outs).toString("utf8");
          expect(leaks(out, texts)).toEqual([]);
          const lines = out.split("\n").filter((l) => l !== "");
          expect(lines.length).toBe(texts.length);
          for (const l of lines) {
            expect(JSON.parse(l).type).toBe("MODIFIED");
            expect(JSON.parse(l).object.note).toBe("é日😀");
          }
        },
      ),
      RUNS,
    );
  });

  for (const [name, sub, nl] of [
    ["log streams", "log", "\n"],
    ["exec frames", "exec", "\r\n"],
  ] as const) {
    it(`${name} split at any character`, () => {
      fc.assert(
        fc.property(
          fc.array(plantedText, { minLength: 1, maxLength: 5 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          fc.boolean(),
          (texts, cuts, trailing) => {
            const body = texts.map((t) => t.text).join(nl) + (trailing ? nl : "");
            const t = masker.textStream(ctx({ subresource: sub }));
            let out = "";
            for (const c of splitAt(body, cuts)) out += t.push(c);
            out += t.end();
            expect(leaks(out, texts)).toEqual([]);
            expect(out.split(nl).length).toBe(body.split(nl).length);
          },
        ),
        RUNS,
      );
    });
  }
});

describe("property: what no mask targets is unchanged", () => {
  /** JSON without identifier-like strings: letters and spaces only; any numbers */
  const safeJson = fc.letrec<{ v: Json }>((tie) => ({
    v: fc.oneof(
      { depthSize: "small" },
      fc.stringMatching(/^[a-zA-Z ]{0,12}$/),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie("v"), { maxLength: 4 }),
      fc.dictionary(fc.stringMatching(/^[a-zA-Z][a-zA-Z-]{0,8}$/), tie("v"), { maxKeys: 4 }),
    ),
  })).v;

  it("untargeted subtrees are byte for byte identical, beside masked fields", () => {
    fc.assert(
      fc.property(safeJson, plantedText, nsArb, (extra, t, ns) => {
        const obj = {
          kind: "Pod",
          apiVersion: "v1",
          metadata: { name: "p", namespace: ns, annotations: { note: t.text } },
          spec: { extra, containers: [{ name: "c", env: [{ name: "A", value: t.text }] }] },
        };
        const before = JSON.stringify(obj);
        const r = masker.maskJson(obj, ctx({ namespace: ns }));
        expect(JSON.stringify(obj)).toBe(before); // never mutates its input
        const out = r.value as { spec: { extra: Json } };
        expect(JSON.stringify(out.spec.extra)).toBe(JSON.stringify(extra));
        expect(Object.keys(out)).toEqual(Object.keys(obj));
      }),
      RUNS,
    );
  });

  it("text without identifiers streams through unchanged, however it is split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-zA-Z ,.;:$#>/-]{0,40}$/), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.constantFrom("log", "exec"),
        (lines, cuts, sub) => {
          const body = lines.join("\n");
          const t = masker.textStream(ctx({ subresource: sub }));
          let out = "";
          for (const c of splitAt(body, cuts)) out += t.push(c);
          out += t.end();
          expect(out).toBe(body);
        },
      ),
      RUNS,
    );
  });
});
