/**
 * The default HIPAA Safe Harbor detector library (45 CFR 164.514(b)(2)(i)): one factory per
 * identifier category, each returning the plain `Detector` data the compiled config carries
 * (minus `source`, which the compiler adds). Every factory takes overrides, so a policy can
 * tune the pattern, strategy, label or scope of one detector without rewriting the set.
 *
 * Patterns are JavaScript RegExp sources, compiled by the gateway with flags "g" + `flags`.
 * They are written to leave Kubernetes-shaped values alone: uids, resourceVersions, image
 * digests and tags, container ids, ports and API timestamps never match (see
 * test/masking-false-positives.test.ts). A lookbehind such as `(?<=MRN[:# ]*)` keeps the label
 * visible and masks only the identifier; a named group `value` does the same. Write them for
 * ASCII: a string with other characters is also matched in its look-alike view (fullwidth and
 * other Unicode digits, Unicode dashes, `＠`, zero-width characters read as ASCII; see
 * gateway/masking/lookalike.ts), and each match masks the original characters.
 *
 * Names (A) only labelled or next to another identifier on the same line (`personName`); a
 * name in prose alone, biometric identifiers (P) and full-face photographs (Q) need field masks;
 * "any other unique identifying number" (R) is the author's to add.
 *
 * @example
 *   import { detectors } from "custos";
 *   const set = detectors.hipaaSafeHarbor({ strategy: { kind: "pseudonymize" } });
 *   const myMrn = detectors.mrn({ pattern: "(?<=\\bPAT-)\\d{8}\\b", label: "mrn" });
 */
import type { Detector, MaskStrategy } from "../schema/config.ts";

/** A detector as a policy declares it; the compiler adds `source`. */
export type DetectorSpec = Omit<Detector, "source">;

export interface DetectorOptions {
  id?: string;
  pattern?: string;
  flags?: string;
  strategy?: MaskStrategy;
  label?: string;
  scope?: "everywhere" | "masks";
  validate?: NonNullable<Detector["validate"]>;
  /** a pattern that counts only next to another identifier on the same line; null: none */
  contextPattern?: string | null;
}

const REDACT: MaskStrategy = { kind: "redact" };

// ---- shared pieces -------------------------------------------------------------------------
/** optional separator between a label and its value: "MRN: ", "MRN#", "MRN 123" */
const SEP = "[^\\S\\n]{0,3}[:#=]?[^\\S\\n]{0,3}";
/** "number", "no.", "#", "id" after a label word */
const NUM_WORD = "(?:[^\\S\\n]?(?:number|num|no\\.?|#|id|identifier))?";
/** a value boundary: not inside a longer word, uid, digest or path */
const NOT_BEFORE = "(?<![\\w.:/+-])";
const NOT_AFTER = "(?![\\w-]|\\.\\w)";
const MONTHS =
  "(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";
const STATES =
  "(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI)";
const STREET_SUFFIX =
  "(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Alley|Row)";

/** "label: value": the label stays visible, only the named group `value` is masked */
/**
 * An identifier value of `min`-`max` letters, digits and dashes with at least 4 digits. The
 * four mandatory `\\d` let the gateway skip strings with fewer digits before running the regex.
 */
function ID_VALUE(min: number, max: number): string {
  return `(?=[A-Z0-9][A-Z0-9-]{${min - 1},${max - 1}}(?![\\w.-]))(?:[A-Z-]*\\d){4}[A-Z0-9-]*`;
}

function labelled(words: string, value: string): string {
  return `\\b(?:${words})${NUM_WORD}${SEP}(?<value>${value})`;
}

function make(defaults: DetectorSpec, o: DetectorOptions): DetectorSpec {
  const d: DetectorSpec = {
    id: o.id ?? defaults.id,
    category: defaults.category,
    pattern: o.pattern ?? defaults.pattern,
    flags: o.flags ?? (o.pattern !== undefined ? "" : defaults.flags),
    strategy: o.strategy ?? defaults.strategy,
    label: o.label ?? defaults.label,
    scope: o.scope ?? defaults.scope,
  };
  const validate = o.validate ?? (o.pattern !== undefined ? undefined : defaults.validate);
  if (validate !== undefined) d.validate = validate;
  const context = o.contextPattern === undefined ? defaults.contextPattern : (o.contextPattern ?? undefined);
  if (context !== undefined) d.contextPattern = context;
  return d;
}

// ---- (G) Social Security numbers -------------------------------------------------------------
/** 123-45-6789, or a labelled 9-digit run ("SSN: 123456789"); SSA issuance rules validate it. */
export function ssn(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "ssn",
      category: "ssn",
      // also inside names: "intake-123-45-6789" is a patient's SSN in a pod name
      pattern: `(?<![A-Za-z0-9.:+]|\\d-)\\d{3}-\\d{2}-\\d{4}(?![A-Za-z0-9]|-\\d)|${labelled("ssn|social security|ss#", "\\d{3}[- ]?\\d{2}[- ]?\\d{4}(?!\\d)")}`,
      flags: "i",
      strategy: REDACT,
      label: "ssn",
      scope: "everywhere",
      validate: "ssn",
    },
    o,
  );
}

// ---- (H) medical record numbers ------------------------------------------------------------
/** "MRN: 12345678", "Medical Record Number 0012345" (optional 1-3 letter prefix), "MRN-00481516". */
export function mrn(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "mrn",
      category: "mrn",
      // "MRN: 12345678", and the record-id form "MRN-00481516" (masked whole; no word boundary
      // before it: "\\nMRN-..." inside JSON text embedded in a string is still caught)
      pattern: `${labelled("mrn|medical record|med rec|chart", "[A-Z]{0,3}\\d{6,10}(?![\\w-])")}|MRN-\\d{6,10}(?![\\w-])`,
      flags: "i",
      strategy: REDACT,
      label: "mrn",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (I) health plan beneficiary numbers -----------------------------------------------------
/** "Member ID: XYZ123456789", "Subscriber #", "Medicare ID", "Policy No" — at least 4 digits. */
export function healthPlanId(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "health-plan-id",
      category: "health-plan",
      pattern: labelled(
        "member|subscriber|beneficiary|insurance|insured|health plan|plan member|medicaid|medicare|mbi|policy holder|policy",
        ID_VALUE(6, 20),
      ),
      flags: "i",
      strategy: REDACT,
      label: "health-plan-id",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (J) account numbers -----------------------------------------------------------------------
/** "Account #: 00123456", "acct no 987654321" — at least 4 digits. */
export function accountNumber(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "account",
      category: "account",
      pattern: labelled("account|acct|a/c|billing account|bank account", ID_VALUE(6, 20)),
      flags: "i",
      strategy: REDACT,
      label: "account",
      scope: "everywhere",
    },
    o,
  );
}

/** Payment card numbers in 4-4-4-4 / 4-6-5 groups, or labelled; Luhn-checked. */
export function paymentCard(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "payment-card",
      category: "account",
      pattern: `${NOT_BEFORE}(?:\\d{4}[ -]\\d{4}[ -]\\d{4}[ -]\\d{1,7}|\\d{4}[ -]\\d{6}[ -]\\d{5})${NOT_AFTER}|${labelled("card|credit card|cc", "\\d{13,19}(?!\\d)")}`,
      flags: "i",
      strategy: REDACT,
      label: "payment-card",
      scope: "everywhere",
      validate: "luhn",
    },
    o,
  );
}

// ---- (D, E) telephone and fax numbers --------------------------------------------------------
const NANP = "(?:\\+?1[ .-]?)?(?:\\([2-9]\\d{2}\\)[ .-]?|[2-9]\\d{2}[ .-])[2-9]\\d{2}[ .-]\\d{4}";
const INTL = "\\+(?:[2-9]\\d{0,2})[ .-]\\d{1,4}(?:[ .-]\\d{2,4}){2,3}";

/** NANP numbers with separators ((555) 234-5678, 555-234-5678, +1 555 234 5678) and +CC numbers. */
export function phone(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "phone",
      category: "phone",
      pattern: `(?<![\\w+.:/-])(?:${NANP}|${INTL})(?![\\w-]|\\.\\d)|${labelled("phone|tel|telephone|mobile|cell", "\\+?\\d{10,12}(?!\\d)")}`,
      flags: "i",
      strategy: REDACT,
      label: "phone",
      scope: "everywhere",
    },
    o,
  );
}

/** "Fax: 555-234-5678": only with the word fax (put it before `phone`, it wins the tie). */
export function fax(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "fax",
      category: "fax",
      pattern: labelled("fax|facsimile", `(?:${NANP}|${INTL}|\\+?\\d{10,12}(?!\\d))`),
      flags: "i",
      strategy: REDACT,
      label: "fax",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (F) email addresses -----------------------------------------------------------------------
/** RFC 5322-ish addresses; Google service-account identities (workload identity) are left alone. */
export function email(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "email",
      category: "email",
      pattern:
        "(?<![\\w.%+-])(?!git@)[A-Za-z0-9._%+-]+@(?![\\w.-]*gserviceaccount\\.com)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\\.[A-Za-z]{2,24}(?![\\w-])",
      flags: "",
      strategy: REDACT,
      label: "email",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (C) dates (except year) -------------------------------------------------------------------
/**
 * Birth/admission-style dates: 1984-03-12, 1984/03/12, 03/12/1984, 3/12/84, 03-12-1984,
 * "March 12, 1984", "12 March 1984". A date that carries a time of day (log lines, API
 * timestamps: 2024-05-01T10:00:00Z, "2024-05-01 10:00:00") is an event time, not left to this
 * detector; image tags (app:2024-03-12) are not matched. Validated as a real calendar date.
 */
export function date(o: DetectorOptions = {}): DetectorSpec {
  const notTime = "(?![\\w:/-]|\\.\\d|[T ]\\d{1,2}:)";
  return make(
    {
      id: "date",
      category: "date",
      pattern:
        `(?<![\\w.:/@-])(?:` +
        `(?:1[89]|20)\\d{2}-\\d{1,2}-\\d{1,2}|(?:1[89]|20)\\d{2}/\\d{1,2}/\\d{1,2}` +
        `|\\d{1,2}/\\d{1,2}/(?:\\d{4}|\\d{2})|\\d{1,2}-\\d{1,2}-\\d{4}` +
        `)${notTime}` +
        `|\\b${MONTHS}\\.?[^\\S\\n]+\\d{1,2}(?:st|nd|rd|th)?,?[^\\S\\n]+(?:1[89]|20)\\d{2}\\b(?![^\\S\\n]?\\d{1,2}:)` +
        `|\\b\\d{1,2}(?:st|nd|rd|th)?[^\\S\\n]+${MONTHS}\\.?,?[^\\S\\n]+(?:1[89]|20)\\d{2}\\b(?![^\\S\\n]?\\d{1,2}:)`,
      flags: "",
      strategy: REDACT,
      label: "date",
      scope: "everywhere",
      validate: "date",
    },
    o,
  );
}

// ---- (B) geographic subdivisions smaller than a state ----------------------------------------
/** ZIP codes only in context: "ZIP: 02139", "Boston, MA 02139-4307". */
export function zip(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "zip",
      category: "zip",
      pattern: `\\b(?:(?:[Zz][Ii][Pp](?:[ -]?[Cc]ode)?|ZIP|[Pp]ostal [Cc]ode|[Pp]ostcode)${SEP}|${STATES},?[^\\S\\n]{1,2})(?<value>\\d{5}(?:-\\d{4})?)(?![\\w-])`,
      flags: "",
      strategy: REDACT,
      label: "zip",
      scope: "everywhere",
    },
    o,
  );
}

/** Street addresses ("221B Baker Street", "10 N. Main St, Apt 4", "7 Sample Court, Springfield 99903") and PO boxes. */
export function streetAddress(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "address",
      category: "address",
      pattern:
        `(?<![\\w.:/-])\\d{1,6}[A-Z]? +(?:[NSEW]\\.? +)?(?:[A-Z][A-Za-z'-]* +){1,4}${STREET_SUFFIX}\\.?(?![\\w-])(?:,? +(?:Apt|Suite|Ste|Unit|#)\\.? *[A-Za-z0-9-]+)?` +
        // the rest of the address: ", Springfield 99903", ", Boston, MA 02139", ", 99902"
        `(?:, *(?:[A-Z][A-Za-z'-]+(?: [A-Z][A-Za-z'-]+){0,2},? +)?(?:${STATES},? +)?\\d{5}(?:-\\d{4})?(?![\\w-]))?` +
        `|\\bP\\.? ?O\\.? +Box +\\d+\\b`,
      flags: "",
      strategy: REDACT,
      label: "address",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (N) URLs --------------------------------------------------------------------------------------
/**
 * URLs that point at a person: a patient-portal host, an identifier-like path segment or query
 * value (5+ digits), or a query key such as patient=, mrn=, dob=. Kubernetes API URLs
 * (in-cluster `.svc`/`cluster.local` hosts, /api, /apis, /openapi paths), health/metrics
 * endpoints and image registries (no scheme, or /v2/) are left alone.
 */
export function url(o: DetectorOptions = {}): DetectorSpec {
  const END = "(?:[/?#\\s\"'<>]|$)";
  const excluded =
    `[^\\s/"'<>]*(?:\\.svc|\\.cluster\\.local|localhost|kubernetes\\.default)(?::\\d+)?${END}` +
    `|[^\\s/"'<>]+/(?:api|apis|openapi|version|healthz|livez|readyz|metrics|v2)${END}`;
  const clue =
    `[/=][A-Za-z_-]{0,12}\\d{5,}` +
    `|[?&;](?:patient|mrn|member|dob|birth|ssn|name|email|phone|pid|person)[\\w-]*=` +
    `|^[^/]*(?:portal|mychart|patient|ehr|emr)`;
  return make(
    {
      id: "url",
      category: "url",
      pattern: `\\bhttps?://(?!${excluded})(?=[^\\s"'<>]*?(?:${clue.replace("^[^/]*", "[^\\s/\"'<>]*")}))[^\\s"'<>]+`,
      flags: "i",
      strategy: REDACT,
      label: "url",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (O) IP addresses ---------------------------------------------------------------------------
/**
 * IPv4 addresses. Scope "masks" by default: pod, host and cluster IPs are not PHI, so only a
 * mask that lists this detector (e.g. for a patient-facing service's access logs) applies it.
 */
export function ip(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "ip",
      category: "ip",
      pattern: "(?<![\\w.:-])(?:\\d{1,3}\\.){3}\\d{1,3}(?![\\w-]|\\.\\d)",
      flags: "",
      strategy: REDACT,
      label: "ip",
      scope: "masks",
      validate: "ipv4",
    },
    o,
  );
}

// ---- (L, M, K) vehicle, device and licence/certificate identifiers -------------------------------
/** Vehicle identification numbers (17 characters, the last four digits): labelled, or bare with 2+ letters. */
export function vin(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "vin",
      category: "vehicle",
      pattern:
        "\\b(?:VIN|vin|Vin|[Vv]ehicle [Ii](?:D|d|dentification(?: [Nn]umber)?))" +
        SEP +
        "(?<value>[A-HJ-NPR-Za-hj-npr-z0-9]{13}\\d{4})(?![\\w-])" +
        // bare: 17 characters without I, O, Q, ending in 4 digits (49 CFR 565.15: the last four
        // characters of the sequential production number are numeric)
        "|\\b(?<!-)(?=(?:\\d*[A-HJ-NPR-Z]){2})[A-HJ-NPR-Z0-9]{13}\\d{4}(?![\\w-])",
      flags: "",
      strategy: REDACT,
      label: "vin",
      scope: "everywhere",
    },
    o,
  );
}

/** Device identifiers and serial numbers: "Serial No: SN-00412345", "Device ID", "UDI", "IMEI". */
export function deviceId(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "device",
      category: "device",
      pattern: labelled("serial|device|device serial|udi|imei|pacemaker|implant", ID_VALUE(6, 40)),
      flags: "i",
      strategy: REDACT,
      label: "device",
      scope: "everywhere",
    },
    o,
  );
}

/** Licence and certificate numbers: "Driver's License: D1234567", "DL# 12345678" — at least 4 digits. */
export function licenseNumber(o: DetectorOptions = {}): DetectorSpec {
  return make(
    {
      id: "license",
      category: "license",
      pattern: labelled("driver'?s licen[cs]e|licen[cs]e|certificate", ID_VALUE(5, 20)),
      flags: "i",
      strategy: REDACT,
      label: "license",
      scope: "everywhere",
    },
    o,
  );
}

// ---- (A) names ----------------------------------------------------------------------------------
/**
 * Labelled names in free text: `name="Jane Roe"`, `"patientName": "Jane Roe"`, `Patient: Jane
 * Roe`. A name has no shape a pattern can find on its own, so only a label word followed by `:`
 * or `=` and two to four capitalised words counts (Kubernetes names are lower case, so object
 * names never match); structured names are masked by field rules. Scope "masks": it applies
 * where a mask lists it (the HIPAA template: logs, exec/attach streams, events, PHI objects).
 */
export function personName(o: DetectorOptions = {}): DetectorSpec {
  const label =
    "(?:(?:[Pp]atient|PATIENT|[Ff]ull|FULL|[Ff]irst|FIRST|[Ll]ast|LAST|[Gg]iven|[Ff]amily|[Ll]egal|[Mm]ember|[Ss]ubscriber|[Gg]uarantor)[ _-]?(?:[Nn]ame|NAME)|[Nn]ame|NAME|[Pp]atient|PATIENT)";
  const word = "[A-Z][a-zA-Z'.-]*";
  // a proper noun: Jane, O'Neil, McDonald, Roe-Synthetic (never INFO, GET or MRN)
  const proper = "[A-Z](?:'[A-Z])?[a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z]?[a-z]+)*";
  return make(
    {
      id: "name",
      category: "name",
      pattern: `\\b${label}["']?[^\\S\\n]{0,3}[:=][^\\S\\n]{0,3}["']?(?<value>${word}(?:[^\\S\\n]${word}){1,3})(?![\\w-])`,
      flags: "",
      strategy: REDACT,
      label: "name",
      scope: "masks",
      // two or three capitalised words (Jane Roe, Mei Fictional, Jane Roe-Synthetic, Sean O'Neil)
      // on a line that also holds an SSN, MRN, date, phone, e-mail, address, ...
      contextPattern: `\\b${proper}(?:[^\\S\\n]${proper}){1,2}(?![\\w'-])`,
    },
    o,
  );
}

/** Every factory, by detector id. */
export const factories = {
  mrn,
  ssn,
  "health-plan-id": healthPlanId,
  account: accountNumber,
  "payment-card": paymentCard,
  fax,
  phone,
  email,
  url,
  date,
  zip,
  address: streetAddress,
  vin,
  device: deviceId,
  license: licenseNumber,
  ip,
  name: personName,
} as const;

export type DefaultDetectorId = keyof typeof factories;

/**
 * The whole default set, in priority order (on an exact tie the earlier detector wins: fax
 * before phone, mrn before account). `strategy`/`scope` apply to every detector unless
 * `overrides` says otherwise; `except` leaves detectors out.
 */
export function hipaaSafeHarbor(
  o: {
    strategy?: MaskStrategy;
    except?: DefaultDetectorId[];
    overrides?: Partial<Record<DefaultDetectorId, DetectorOptions>>;
  } = {},
): DetectorSpec[] {
  const out: DetectorSpec[] = [];
  for (const [id, f] of Object.entries(factories) as [
    DefaultDetectorId,
    (o?: DetectorOptions) => DetectorSpec,
  ][]) {
    if (o.except?.includes(id)) continue;
    const opts: DetectorOptions = {
      ...(o.strategy ? { strategy: o.strategy } : {}),
      ...(o.overrides?.[id] ?? {}),
    };
    out.push(f(opts));
  }
  return out;
}
