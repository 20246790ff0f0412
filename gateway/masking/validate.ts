/**
 * Validators that cut detector false positives: a regex candidate must also be a plausible
 * identifier of its kind. They see the masked part of the match only (the `value` group).
 */
import type { Detector } from "../../sdk/schema/config.ts";

export type Validator = (candidate: string) => boolean;

function digitsOf(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) out += s[i];
  }
  return out;
}

/** ISO/IEC 7812 Luhn check (payment cards, many account and member numbers). */
export function luhn(candidate: string): boolean {
  const d = digitsOf(candidate);
  if (d.length < 12 || d.length > 19) return false;
  let sum = 0;
  let dbl = false;
  for (let i = d.length - 1; i >= 0; i--) {
    let n = d.charCodeAt(i) - 48;
    if (dbl) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}

/**
 * SSA rules (SSA "Social Security Number Randomization", 2011): area 001-999 except 666,
 * group 01-99, serial 0001-9999. Areas 900-999 are never issued as SSNs, but they are ITINs
 * (tax identifiers of people) and the numbers synthetic and test patient data use: in a
 * response about patients they are masked too (fail closed); only the impossible shapes
 * (area 000 or 666, group 00, serial 0000) are left alone.
 */
export function ssn(candidate: string): boolean {
  const d = digitsOf(candidate);
  if (d.length !== 9) return false;
  const area = Number(d.slice(0, 3));
  const group = Number(d.slice(3, 5));
  const serial = Number(d.slice(5));
  return area !== 0 && area !== 666 && group !== 0 && serial !== 0;
}

const MONTHS: Record<string, number> = {
  jan: 1,
  feb: 2,
  mar: 3,
  apr: 4,
  may: 5,
  jun: 6,
  jul: 7,
  aug: 8,
  sep: 9,
  oct: 10,
  nov: 11,
  dec: 12,
};

function realDate(y: number, m: number, d: number): boolean {
  if (!(m >= 1 && m <= 12 && d >= 1 && d <= 31)) return false;
  if (y < 100) y += 2000; // two-digit years: leap-year test only
  const dim = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return d <= dim && y >= 1850 && y <= 2200;
}

/**
 * A real calendar date in one of the forms the default `date` detector matches:
 * 1984-03-12, 1984/03/12, 03/12/1984, 3-12-84, 12.03.1984, March 12, 1984, 12 March 1984.
 * Forms it does not know pass (custom patterns are the author's call).
 */
export function date(candidate: string): boolean {
  const s = candidate.trim();
  let m = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})/.exec(s);
  if (m) return realDate(Number(m[1]), Number(m[2]), Number(m[3]));
  m = /^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})$/.exec(s);
  if (m) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    const y = Number(m[3]);
    // US month/day first; day/month accepted too (12.03.1984)
    return realDate(y, a, b) || realDate(y, b, a);
  }
  m = /^([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$/.exec(s);
  if (m) {
    const mon = MONTHS[m[1]!.slice(0, 3).toLowerCase()];
    return mon !== undefined && realDate(Number(m[3]), mon, Number(m[2]));
  }
  m = /^(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})$/.exec(s);
  if (m) {
    const mon = MONTHS[m[2]!.slice(0, 3).toLowerCase()];
    return mon !== undefined && realDate(Number(m[3]), mon, Number(m[1]));
  }
  return true;
}

/** Dotted-quad IPv4 with every octet 0-255 and no leading zeros. */
export function ipv4(candidate: string): boolean {
  const parts = candidate.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return false;
    if (p.length > 1 && p[0] === "0") return false;
    if (Number(p) > 255) return false;
  }
  return true;
}

export const VALIDATORS: Record<NonNullable<Detector["validate"]>, Validator | null> = {
  none: null,
  luhn,
  ssn,
  date,
  ipv4,
};
