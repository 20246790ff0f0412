import type { MaskStrategy, SourceLocation } from "../schema/config.ts";
import { parseFieldPath } from "./fieldpath.ts";
import { callerLocation } from "./source.ts";
import type { DetectorDef, FieldDef, LibraryDetector, MaskDef, MaskSpec } from "./types.ts";

/** Replace the value with `[MASKED:<label>]`. @example field("data.*", redact()) */
export function redact(): MaskStrategy {
  return { kind: "redact" };
}
/**
 * Keep the first/last characters, mask the rest.
 * @example field("spec.containers[*].env[*].value", partial({ keepLast: 4 }))
 */
export function partial(keep: { keepFirst?: number; keepLast?: number }): MaskStrategy {
  return { kind: "partial", keepFirst: keep.keepFirst ?? 0, keepLast: keep.keepLast ?? 0 };
}
/**
 * A stable keyed-HMAC token: the same input gives the same token, so records can still be
 * correlated without revealing the value.
 * @example annotation("clinic.example/patient-id", pseudonymize())
 */
export function pseudonymize(): MaskStrategy {
  return { kind: "pseudonymize" };
}
/** Remove the field entirely. @example annotation("kubectl.kubernetes.io/last-applied-configuration", drop()) */
export function drop(): MaskStrategy {
  return { kind: "drop" };
}

export interface FieldOptions {
  /** label shown in the masked value; default: the path */
  label?: string;
  /** the values are base64 (Secret `data`): decode before masking, re-encode after */
  base64?: boolean;
}

/**
 * A field rule. Paths: `data.*`, `spec.containers[*].env[*].value`, `metadata.annotations["a/b"]`.
 * @example field("data.*", redact(), { label: "configmap-data" })
 */
export function field(path: string, strategy: MaskStrategy, options: FieldOptions = {}): FieldDef {
  const def: FieldDef = {
    kind: "field",
    path,
    segments: parseFieldPath(path),
    strategy: structuredClone(strategy),
    ...(options.label === undefined ? {} : { label: options.label }),
    ...(options.base64 === undefined ? {} : { base64: options.base64 }),
    source: callerLocation(),
  };
  return Object.freeze(def);
}

function quoted(key: string): string {
  return JSON.stringify(key);
}

/**
 * An annotation by key.
 * @example annotation("kubectl.kubernetes.io/last-applied-configuration", drop())
 */
export function annotation(key: string, strategy: MaskStrategy, options: FieldOptions = {}): FieldDef {
  return field(`metadata.annotations[${quoted(key)}]`, strategy, {
    label: options.label ?? `annotation:${key}`,
    ...options,
  });
}

/**
 * A label by key.
 * @example label("clinic.example/patient", pseudonymize())
 */
export function label(key: string, strategy: MaskStrategy, options: FieldOptions = {}): FieldDef {
  return field(`metadata.labels[${quoted(key)}]`, strategy, {
    label: options.label ?? `label:${key}`,
    ...options,
  });
}

/**
 * A masking rule: which objects or streams (resource, namespace, PHI, labels) and what to
 * mask in them (field rules, content detectors).
 * @example
 * mask("configmap-data", {
 *   resources: ["configmaps"], phi: true,
 *   fields: [field("data.*", redact())],
 *   detectors: safeHarbor,
 * })
 */
export function mask(id: string, spec: MaskSpec): MaskDef {
  const source = callerLocation();
  const { detectors, ...rest } = structuredClone(spec);
  const out: MaskDef["spec"] =
    detectors === undefined ? rest : { ...rest, detectors: detectors.map((d) => asDetectorDef(d, source)) };
  return Object.freeze({ kind: "mask", id, spec: out, source });
}

/** Library detectors (plain `Detector` data) become DetectorDefs located where they are used. */
export function asDetectorDef<T extends DetectorDef | LibraryDetector | string>(
  d: T,
  source: SourceLocation,
): DetectorDef | Extract<T, string> {
  if (typeof d === "string") return d as Extract<T, string>;
  if ((d as DetectorDef).kind === "detector") return d as DetectorDef;
  const { validate, contextPattern, ...rest } = structuredClone(d) as LibraryDetector;
  return Object.freeze({
    ...rest,
    ...(validate === undefined ? {} : { validate }),
    ...(contextPattern === undefined ? {} : { contextPattern }),
    kind: "detector",
    source,
  });
}

export interface DetectorBuilderSpec {
  /** Safe Harbor category: ssn, mrn, phone, fax, email, date, zip, address, url, ip, account, health-plan, device, vehicle, licence, ... */
  category: string;
  pattern: RegExp;
  strategy?: MaskStrategy;
  /** default: the category */
  label?: string;
  /** "everywhere": every response; "masks" (default): only where a mask lists it */
  scope?: "everywhere" | "masks";
  validate?: "none" | "luhn" | "ssn" | "date" | "ipv4";
  /** also mask what this matches on a line where another detector found an identifier (same flags as `pattern`) */
  contextPattern?: RegExp;
}

/**
 * A content detector (45 CFR 164.514(b)(2) identifiers that text patterns can find).
 * @example
 * detector("mrn", { category: "mrn", pattern: /\bMRN[-: ]?\d{6,10}\b/i, strategy: pseudonymize() })
 */
export function detector(id: string, spec: DetectorBuilderSpec): DetectorDef {
  const flags = [...new Set(spec.pattern.flags.replace(/[gy]/g, ""))].sort().join("");
  const def: DetectorDef = {
    kind: "detector",
    id,
    category: spec.category,
    pattern: spec.pattern.source,
    flags,
    strategy: structuredClone(spec.strategy ?? { kind: "redact" }),
    label: spec.label ?? spec.category,
    scope: spec.scope ?? "masks",
    ...(spec.validate === undefined ? {} : { validate: spec.validate }),
    ...(spec.contextPattern === undefined ? {} : { contextPattern: spec.contextPattern.source }),
    source: callerLocation(),
  };
  return Object.freeze(def);
}
