/**
 * Identifiers written with look-alike characters (fullwidth and other Unicode digits, Unicode
 * dashes, fullwidth '＠', zero-width and other format characters inside the identifier) are
 * masked as their ASCII spelling is, and exactly over their own characters:
 *  1. by hand: each kind of look-alike, in objects, in JSON text and in text streams;
 *  2. property: an identifier spelled with random look-alikes comes out masked exactly where its
 *     ASCII spelling is (the output, read back to ASCII, is the ASCII text's masked output), in
 *     objects, JSON text and log / exec streams split at any character;
 *  3. property: text without identifiers, full of look-alikes, comes out unchanged.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import type { Json } from "../sdk/schema/config.ts";
import { ctx, makeConfig } from "./masking-fixtures.ts";

const masker = createMasker(makeConfig(), { pseudonymKey: new Uint8Array(32).fill(9) });
const RUNS = { numRuns: Number(process.env.MASK_PROP_RUNS ?? 150) };

// ---- look-alikes (this table is the test's own, not the implementation's) -----------------------
/** the zero of some Unicode decimal digit sets (fullwidth, Arabic-Indic, Devanagari, Thai, ...) */
const ZEROS = [
  0xff10, 0x0660, 0x06f0, 0x07c0, 0x0966, 0x09e6, 0x0a66, 0x0be6, 0x0d66, 0x0e50, 0x0f20, 0x1040, 0x17e0,
  0x1810, 0x104a0, 0x11066, 0x1d7ce, 0x1d7d8, 0x1d7f6, 0x1e950,
];
const SUPERSCRIPT = ["⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"];
const CIRCLED = ["⓪", "①", "②", "③", "④", "⑤", "⑥", "⑦", "⑧", "⑨"];
const DASHES = [
  "\u2010",
  "\u2011",
  "\u2012",
  "\u2013",
  "\u2014",
  "\u2015",
  "\u2212",
  "\ufe63",
  "\uff0d",
  "\ufe58",
  "\u30fc",
];
const SPACES = ["\u00a0", "\u2002", "\u2007", "\u202f", "\u3000"];
/** format characters and marks that may sit anywhere inside an identifier */
const INVISIBLE = [
  "\u200b",
  "\u200c",
  "\u200d",
  "\u2060",
  "\ufeff",
  "\u00ad",
  "\u200e",
  "\u202c",
  "\u2066",
  "\u180e",
  "\u034f",
];
/** marks drawn on a digit: combining low line, a keycap */
const ON_DIGIT = ["\u0332", "\ufe0f\u20e3"];
const PUNCT: Record<string, string[]> = {
  "@": ["\uff20", "\ufe6b"],
  ".": ["\uff0e", "\u3002", "\ufe52"],
  "(": ["\uff08", "\ufe59"],
  ")": ["\uff09", "\ufe5a"],
  "/": ["\uff0f"],
  ":": ["\uff1a", "\ufe55"],
  "#": ["\uff03"],
  "+": ["\uff0b"],
  ",": ["\uff0c"],
  _: ["\uff3f"],
};

/** every spelling of each ASCII character the generators use */
function spellings(c: string): string[] {
  const out = [c];
  const code = c.charCodeAt(0);
  if (c >= "0" && c <= "9") {
    const v = code - 48;
    for (const z of ZEROS) out.push(String.fromCodePoint(z + v));
    out.push(SUPERSCRIPT[v]!, CIRCLED[v]!);
    for (const m of ON_DIGIT) out.push(c + m);
  } else if (c === "-") out.push(...DASHES);
  else if (c === " ") out.push(...SPACES);
  else if (/[A-Za-z]/.test(c)) {
    out.push(String.fromCharCode(code + 0xfee0)); // fullwidth
    const bold = c <= "Z" ? 0x1d400 + code - 65 : 0x1d41a + code - 97; // mathematical bold
    out.push(String.fromCodePoint(bold));
  } else if (PUNCT[c]) out.push(...PUNCT[c]!);
  return out;
}

const READ_BACK = new Map<string, string>();
for (let c = 32; c < 127; c++) {
  const ch = String.fromCharCode(c);
  for (const s of spellings(ch)) if (s !== ch) READ_BACK.set(s, ch);
}
const READ_BACK_RE = new RegExp(
  [...READ_BACK.keys()]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&"))
    .join("|"),
  "gu",
);
const INVISIBLE_RE = new RegExp(`[${INVISIBLE.join("")}]`, "gu");

/** the test's own reading of a look-alike text as ASCII */
function readBack(s: string): string {
  return s.replace(READ_BACK_RE, (m) => READ_BACK.get(m)!).replace(INVISIBLE_RE, "");
}

/**
 * `ascii` respelled: each character by one of its spellings (the original at `keep` odds), with
 * invisible characters between the characters of the identifier (never at its ends).
 */
function respell(ascii: string, picks: number[], invisibles: number[]): string {
  let out = "";
  for (let i = 0; i < ascii.length; i++) {
    const sp = spellings(ascii[i]!);
    const p = picks[i % picks.length]!;
    out += p % 3 === 0 ? ascii[i] : sp[p % sp.length];
    const v = invisibles[i % invisibles.length]!;
    if (i < ascii.length - 1 && v % 4 === 0) out += INVISIBLE[v % INVISIBLE.length];
  }
  return out;
}

// ---- planted identifiers (the shapes of masking-property.test.ts) ------------------------------
const d = (n: number) => fc.integer({ min: 0, max: 10 ** n - 1 }).map((x) => String(x).padStart(n, "0"));
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
const asciiId = fc.oneof(
  ssn.map((s) => `SSN ${s}`),
  ssn,
  fc.tuple(fc.constantFrom("MRN: ", "MRN#", "MRN ", "mrn:"), d(8)).map(([l, n]) => l + n),
  fc
    .tuple(
      fc.integer({ min: 200, max: 999 }),
      fc.integer({ min: 200, max: 999 }),
      d(4),
      fc.constantFrom("(A) B-C", "A-B-C", "A.B.C", "+1 A B C"),
    )
    .map(([a, b, c, f]) => f.replace("A", String(a)).replace("B", String(b)).replace("C", c)),
  fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9._]{1,10}[a-z0-9]$/),
      fc.constantFrom("example.org", "mail.example.com", "clinic.example.net"),
    )
    .map(([u, h]) => `${u}@${h}`),
  fc
    .tuple(
      fc.integer({ min: 1920, max: 2015 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 28 }),
      fc.constantFrom("iso", "us"),
    )
    .map(([y, m, dd, f]) => {
      const mm = String(m).padStart(2, "0");
      const ds = String(dd).padStart(2, "0");
      return f === "iso" ? `born ${y}-${mm}-${ds}` : `born ${mm}/${ds}/${y}`;
    }),
);
const word = fc.stringMatching(/^[a-zA-Z]{1,9}$/);
const sep = fc.constantFrom(" ", ", ", "; ", " - ", " (", ") ");

interface Planted {
  /** the text with the identifier in ASCII */
  ascii: string;
  /** the same text, the identifier respelled */
  text: string;
}
const planted: fc.Arbitrary<Planted> = fc
  .tuple(
    fc.array(word, { maxLength: 4 }),
    asciiId,
    fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
    sep,
    fc.array(word, { maxLength: 4 }),
  )
  .map(([a, id, picks, inv, s, b]) => {
    const before = a.length > 0 ? `${a.join(" ")} ` : "";
    const after = s + b.join(" ");
    return { ascii: before + id + after, text: before + respell(id, picks, inv) + after };
  });

const podWith = (ns: string, texts: string[]): Json => ({
  metadata: {
    name: "p-1",
    namespace: ns,
    uid: "4f1c2a6e-1234-4b1e-9a3d-0c2d5e6f7a8b",
    labels: { app: "x" },
    annotations: Object.fromEntries(texts.map((t, k) => [`note-${k}`, t])),
  },
  spec: {
    containers: [{ name: "c", image: "nginx:1.25", env: texts.map((t, k) => ({ name: `E${k}`, value: t })) }],
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

function stream(sub: "log" | "exec", chunks: string[]): string {
  const t = masker.textStream(ctx({ subresource: sub }));
  let out = "";
  for (const c of chunks) out += t.push(c);
  return out + t.end();
}

const maskObject = (v: Json, ns = "phi-a") => masker.maskJson(v, ctx({ namespace: ns })).value;
type Annotated = { metadata: { annotations: Record<string, string> } };
const maskString = (s: string) =>
  (maskObject({ metadata: { annotations: { a: s } } }) as Annotated).metadata.annotations.a;

// ---- by hand -------------------------------------------------------------------------------------
describe("look-alike identifiers, by hand", () => {
  const cases: [string, string, string][] = [
    ["fullwidth digits", "SSN １２３-４５-６７８９ on file", "SSN [MASKED:ssn] on file"],
    ["fullwidth digits and dash", "id １２３－４５－６７８９.", "id [MASKED:ssn]."],
    ["Arabic-Indic digits", "ssn ١٢٣-٤٥-٦٧٨٩ x", "ssn [MASKED:ssn] x"],
    ["Devanagari digits", "call ५५५-२३४-५६७८ now", "call [MASKED:phone] now"],
    ["mathematical digits", "MRN: 𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "MRN: [MASKED:mrn]"],
    ["en dash", "SSN 123–45–6789", "SSN [MASKED:ssn]"],
    ["minus sign", "phone 555−234−5678", "phone [MASKED:phone]"],
    ["non-breaking hyphen", "123‑45‑6789", "[MASKED:ssn]"],
    ["small hyphen-minus", "123﹣45﹣6789", "[MASKED:ssn]"],
    ["horizontal bar", "(555) 234―5678", "[MASKED:phone]"],
    ["fullwidth at", "mail jane.roe＠example.org today", "mail [MASKED:email] today"],
    ["small commercial at", "jane.roe﹫example.org", "[MASKED:email]"],
    ["fullwidth letters and dot", "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｏｒｇ", "[MASKED:email]"],
    ["zero-width space", "SSN 123\u200b-45-\u200b6789 ok", "SSN [MASKED:ssn] ok"],
    ["zero-width joiners", "1\u200c2\u200d3-45-6789", "[MASKED:ssn]"],
    ["word joiner", "555-234\u2060-5678", "[MASKED:phone]"],
    ["BOM inside", "123-4\ufeff5-6789", "[MASKED:ssn]"],
    ["soft hyphen", "jane\u00adroe@example.org", "[MASKED:email]"],
    ["soft hyphen beside a dash", "born 1984\u00ad-03-12", "born [MASKED:date]"],
    ["fullwidth label", "ＭＲＮ： ００４８１５１６", "ＭＲＮ： [MASKED:mrn]"],
    ["fullwidth space", "MRN:\u300012345678", "MRN:\u3000[MASKED:mrn]"],
    ["circled digits", "①②③-④⑤-⑥⑦⑧⑨", "[MASKED:ssn]"],
    ["keycaps", "1️⃣2️⃣3️⃣-4️⃣5️⃣-6️⃣7️⃣8️⃣9️⃣!", "[MASKED:ssn]!"],
    ["mixed scripts", "SSN １2٣-४5-6７8９", "SSN [MASKED:ssn]"],
    ["a date", "born ０３／１２／１９８４.", "born [MASKED:date]."],
    [
      "beside other non-ASCII text",
      "患者 é 😀 SSN １２３-４５-６７８９ 日本",
      "患者 é 😀 SSN [MASKED:ssn] 日本",
    ],
    ["two identifiers", "１２３-４５-６７８９ and 555−234−5678", "[MASKED:ssn] and [MASKED:phone]"],
  ];

  for (const [name, input, expected] of cases) {
    it(`${name}: objects, JSON text and streams`, () => {
      expect(maskString(input)).toBe(expected);
      const text = JSON.stringify({
        kind: "ConfigMap",
        metadata: { name: "c", namespace: "phi-a" },
        data: { k: input },
      });
      const viaText = masker.maskJsonText(text, ctx({ resource: "configmaps" })).text;
      expect(JSON.parse(viaText).data.k).toBe(expected);
      const viaBytes = masker.maskJsonBytes(Buffer.from(text), ctx({ resource: "configmaps" })).body;
      expect(JSON.parse(viaBytes.toString("utf8")).data.k).toBe(expected);
      for (const sub of ["log", "exec"] as const) {
        expect(stream(sub, [`${input}\n`])).toBe(`${expected}\n`);
        // one character (code unit) at a time
        expect(stream(sub, [...`${input}\n`.split("")])).toBe(`${expected}\n`);
      }
    });
  }

  it("in keys, as in values", () => {
    const out = maskObject({ data: { "１２３-４５-６７８９": "x" } }) as { data: Record<string, string> };
    expect(Object.keys(out.data)).toEqual(["[MASKED:ssn]"]);
  });

  it("an invisible character before or after the identifier stays, outside the mask", () => {
    expect(maskString("a \u200b１２３-４５-６７８９\u200b b")).toBe("a \u200b[MASKED:ssn]\u200b b");
    expect(maskString("x\u200b123-45-6789")).toBe("x\u200b[MASKED:ssn]"); // as the raw text is masked today
  });

  it("a mark drawn on the last digit goes with it", () => {
    expect(maskString("１２３-４５-６７８９\u0332 b")).toBe("[MASKED:ssn] b");
  });

  it("an idle flush holds a look-alike number in progress, as an ASCII one", () => {
    for (const [a, b] of [
      ["SSN １２３－４", "５－６７８９ done\r\n"],
      ["SSN 123\ufeff-4", "5-6789 done\r\n"],
      ["SSN ١٢٣-٤٥-٦", "٧٨٩ done\r\n"],
    ]) {
      const t = masker.textStream(ctx({ subresource: "exec" }));
      const out = t.push(a!) + t.flush() + t.push(b!) + t.end();
      expect(out).toBe("SSN [MASKED:ssn] done\r\n");
    }
  });

  it("look-alike text that is no identifier is left alone", () => {
    for (const s of [
      "ｖｅｒｓｉｏｎ １．２５．３",
      "build ４２ — ok",
      "٣ pods ready",
      "１２：３０",
      "サーバー ー 起動",
      "width\u200b100\u200bpx",
      "price −5",
      "naïve café 😀 👩‍⚕️",
    ])
      expect(maskString(s)).toBe(s);
  });
});

// ---- properties ---------------------------------------------------------------------------------
describe("property: look-alike identifiers are masked as their ASCII spelling is", () => {
  it("objects and lists: read back as ASCII, the output is the ASCII text's output", () => {
    fc.assert(
      fc.property(
        fc.array(planted, { minLength: 1, maxLength: 4 }),
        fc.constantFrom("phi-a", "default"),
        (ps, ns) => {
          const out = maskObject(
            podWith(
              ns,
              ps.map((p) => p.text),
            ),
            ns,
          ) as Annotated;
          const ascii = maskObject(
            podWith(
              ns,
              ps.map((p) => p.ascii),
            ),
            ns,
          );
          expect(readBack(JSON.stringify(out))).toBe(JSON.stringify(ascii));
          // (no digit of an identifier survives)
          expect(readBack(Object.values(out.metadata.annotations).join(" "))).not.toMatch(/\d/);
        },
      ),
      RUNS,
    );
  });

  it("JSON text and bytes: the same as the object path", () => {
    fc.assert(
      fc.property(fc.array(planted, { minLength: 1, maxLength: 4 }), (ps) => {
        const pod = {
          kind: "Pod",
          apiVersion: "v1",
          ...(podWith(
            "phi-a",
            ps.map((p) => p.text),
          ) as object),
        };
        const text = JSON.stringify(pod);
        const c = ctx({ namespace: "phi-a" });
        const expected = JSON.stringify(masker.maskJson(pod as Json, c).value);
        expect(JSON.stringify(JSON.parse(masker.maskJsonText(text, c).text))).toBe(expected);
        const bytes = masker.maskJsonBytes(Buffer.from(text), c).body.toString("utf8");
        expect(JSON.stringify(JSON.parse(bytes))).toBe(expected);
      }),
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
          fc.array(planted, { minLength: 1, maxLength: 5 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          (ps, cuts) => {
            const body = ps.map((p) => p.text).join(nl) + nl;
            const out = stream(sub, splitAt(body, cuts));
            const ascii = stream(sub, [ps.map((p) => p.ascii).join(nl) + nl]);
            expect(readBack(out)).toBe(ascii);
            expect(readBack(out)).not.toMatch(/\d/);
          },
        ),
        RUNS,
      );
    });
  }
});

describe("property: text without identifiers, full of look-alikes, is unchanged", () => {
  const digit = fc.tuple(fc.integer({ min: 0, max: 9 }), fc.nat()).map(([v, p]) => {
    const sp = spellings(String(v));
    return ` ${sp[p % sp.length]} `;
  });
  const other = fc.constantFrom(
    "é",
    "日本語",
    "😀",
    "👩‍⚕️",
    "العربية",
    "हिन्दी",
    "ｋｕｂｅ",
    "𝐩𝐨𝐝",
    "サーバー",
    "。",
    "，",
    "：",
    "（",
    "）",
    "＠",
    ...DASHES,
    ...SPACES,
    ...INVISIBLE,
  );
  const text = fc
    .array(fc.oneof(fc.stringMatching(/^[a-z]{1,8}$/), fc.constant(" "), digit, other), { maxLength: 30 })
    .map((xs) => xs.join(""));

  it("in objects, JSON text and streams split anywhere", () => {
    fc.assert(
      fc.property(
        fc.array(text, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (ts, cuts) => {
          const pod = podWith("default", ts);
          expect(maskObject(pod, "default")).toEqual(pod);
          const json = JSON.stringify(pod);
          expect(masker.maskJsonText(json, ctx({ namespace: "default" })).text).toBe(json);
          const body = ts.join("\n");
          for (const sub of ["log", "exec"] as const) expect(stream(sub, splitAt(body, cuts))).toBe(body);
        },
      ),
      RUNS,
    );
  });
});
