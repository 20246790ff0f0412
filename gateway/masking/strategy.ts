/**
 * Mask strategies. Every masked value says what it was (45 CFR 164.514(b): the reader must
 * see that a value was removed, and which identifier it was):
 * - redact:       `[MASKED:<label>]`
 * - partial:      `[MASKED:<label>:***-**-6789]` — keeps the first/last N letters or digits,
 *                 shows separators and the length; never reveals more than half of the
 *                 identifying characters, whatever keepFirst/keepLast say.
 * - pseudonymize: `[PSEUDO:<label>:<first 12 hex of HMAC-SHA256(key, label + ":" + value)>]` —
 *                 stable per deployment key, so the same patient correlates across calls.
 * - drop:         the field is removed (its pointer is recorded); where a value cannot be
 *                 removed (inside a string, a Table cell, an array element) it is redacted.
 */
import { createHmac } from "node:crypto";
import type { MaskStrategy } from "../../sdk/schema/config.ts";

/** Returned by applyStrategy when the containing field should be removed. */
export const DROP: unique symbol = Symbol("drop");
export type Dropped = typeof DROP;

export interface StrategyKey {
  pseudonymKey: Uint8Array;
}

export function redactToken(label: string): string {
  return `[MASKED:${label}]`;
}

const IDENT_CHAR = /[\p{L}\p{N}]/u;

export function partialToken(value: string, label: string, keepFirst: number, keepLast: number): string {
  const chars = Array.from(value);
  const idx: number[] = [];
  for (let i = 0; i < chars.length; i++) if (IDENT_CHAR.test(chars[i]!)) idx.push(i);
  const n = idx.length;
  const maxKeep = Math.floor(n / 2);
  let kl = Math.min(keepLast, maxKeep);
  let kf = Math.min(keepFirst, maxKeep - kl);
  if (kf < 0) kf = 0;
  if (kl < 0) kl = 0;
  for (let j = kf; j < n - kl; j++) chars[idx[j]!] = "*";
  return `[MASKED:${label}:${chars.join("")}]`;
}

export function pseudonymToken(key: Uint8Array, label: string, value: string): string {
  const h = createHmac("sha256", key)
    .update(label + ":" + value, "utf8")
    .digest("hex");
  return `[PSEUDO:${label}:${h.slice(0, 12)}]`;
}

/**
 * Apply a strategy to one string. `canDrop` says whether the caller can remove the field;
 * if not, drop degrades to redact.
 */
export function applyStrategy(
  strategy: MaskStrategy,
  label: string,
  value: string,
  key: Uint8Array,
  canDrop: boolean,
): string | Dropped {
  switch (strategy.kind) {
    case "redact":
      return redactToken(label);
    case "partial":
      return partialToken(value, label, strategy.keepFirst, strategy.keepLast);
    case "pseudonymize":
      return pseudonymToken(key, label, value);
    case "drop":
      return canDrop ? DROP : redactToken(label);
  }
}

/** When two masks target the same field, the strongest wins. */
export function strategyStrength(s: MaskStrategy): number {
  switch (s.kind) {
    case "drop":
      return 4;
    case "redact":
      return 3;
    case "pseudonymize":
      return 2;
    case "partial":
      return 1;
  }
}
