/**
 * The look-alike view of a string, for the detectors (plain-ASCII regular expressions): an
 * identifier spelled with fullwidth or other Unicode digits, Unicode dashes, a fullwidth '＠',
 * or with zero-width characters inside (`１２３－４５－６７８９`, `555−234−5678`, `123\u200B-45-6789`)
 * reads as its ASCII spelling there. Each code point is replaced on its own by:
 *  - its NFKC form (fullwidth and mathematical letters, digits and punctuation, circled and
 *    superscript digits, compatibility spaces), then in that form:
 *  - any Unicode decimal digit (Nd: Arabic-Indic, Devanagari, Thai, ...) by its ASCII digit;
 *  - any dash (Pd), minus sign, hyphen bullet or prolonged sound mark by '-';
 *  - the ideographic full stop by '.' (as in domain names);
 *  - format characters (Cf: zero-width space and joiners, word joiner, BOM, soft hyphen, bidi
 *    controls) and combining marks (M: a combining low line or keycap drawn on a digit, variation
 *    selectors) by nothing.
 * Each character of the view knows the range of the original it came from, so a match in the
 * view masks exactly the original characters it was read from (a combining mark goes with the
 * character before it; a format character before or after a match stays outside it).
 * ASCII never changes: only strings holding other characters are looked at.
 */

export interface LookalikeView {
  /** the string as the detectors read it */
  readonly text: string;
  /** for each code unit of `text`, the start of the original characters it was read from */
  readonly start: readonly number[];
  /** ... and their end */
  readonly end: readonly number[];
}

const NFKC_DIGIT = /\p{Nd}/u;
const DASH = /[\p{Pd}\u2212\u2043\u02d7\u2796\u30fc]/u;
const INVISIBLE = /[\p{Cf}\p{M}]/u;
const MARK = /\p{M}/u;

/**
 * The ASCII digit of a decimal digit: Nd characters come in runs of ten, 0 to 9, one run
 * after another (a Unicode stability guarantee), so the digit is the distance to the start of
 * the run, modulo ten.
 */
function digitOf(cp: number): string {
  let zero = cp;
  while (zero > 0 && NFKC_DIGIT.test(String.fromCodePoint(zero - 1))) zero--;
  return String.fromCharCode(48 + ((cp - zero) % 10));
}

/** how a code point reads (memo: non-ASCII code points seen so far; bounded) */
const READS = new Map<number, string>();
const READS_MAX = 1 << 14;

function readOf(cp: number): string {
  let r = READS.get(cp);
  if (r !== undefined) return r;
  r = "";
  for (const ch of String.fromCodePoint(cp).normalize("NFKC")) {
    const c = ch.codePointAt(0)!;
    if (c < 128) r += ch;
    else if (NFKC_DIGIT.test(ch)) r += digitOf(c);
    else if (DASH.test(ch)) r += "-";
    else if (c === 0x3002) r += ".";
    else if (!INVISIBLE.test(ch)) r += ch;
  }
  if (READS.size >= READS_MAX) READS.clear();
  READS.set(cp, r);
  return r;
}

/** BMP code points known to read as themselves (1) or not (2); 0: not known yet (surrogates) */
const BMP = new Uint8Array(0x10000);

function readsAsItself(cp: number): boolean {
  if (cp > 0xffff || (cp >= 0xd800 && cp <= 0xdfff)) return readOf(cp) === String.fromCodePoint(cp);
  let k = BMP[cp]!;
  if (k === 0) {
    k = readOf(cp) === String.fromCharCode(cp) ? 1 : 2;
    BMP[cp] = k;
  }
  return k === 1;
}

/**
 * The look-alike view of `s`, or null when it reads as itself (every ASCII string, and most
 * others: accented names, CJK text, emoji).
 */
export function lookalikeView(s: string): LookalikeView | null {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 128 || BMP[c] === 1) continue;
    const cp = s.codePointAt(i)!;
    if (!readsAsItself(cp)) break;
    if (cp > 0xffff) i++;
  }
  if (i >= n) return null;
  const start: number[] = [];
  const end: number[] = [];
  // the characters before i read as themselves
  for (let k = 0; k < i; k++) {
    start.push(k);
    end.push(k + 1);
  }
  let text = "";
  /** the characters from `run` to i read as themselves (not yet added to `text`) */
  let run = 0;
  /** where the last character read (not removed) ended in `s` */
  let lastEnd = i > 0 ? i : -1;
  while (i < n) {
    const c = s.charCodeAt(i);
    const cp = c < 128 ? c : s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (c < 128 || readsAsItself(cp)) {
      start.push(i);
      end.push(i + 1);
      if (w === 2) {
        start.push(i + 1);
        end.push(i + 2);
      }
      i += w;
      lastEnd = i;
      continue;
    }
    text += s.slice(run, i);
    const r = readOf(cp);
    if (r.length === 0) {
      // a mark drawn on the character before goes with it
      if (lastEnd === i && end.length > 0 && MARK.test(String.fromCodePoint(cp))) {
        end[end.length - 1] = i + w;
        lastEnd = i + w;
      }
    } else {
      text += r;
      for (let k = 0; k < r.length; k++) {
        start.push(i);
        end.push(i + w);
      }
      lastEnd = i + w;
    }
    i += w;
    run = i;
  }
  text += s.slice(run);
  return { text, start, end };
}

/**
 * Characters an identifier can be spelled with besides ASCII (for the stream maskers' hold
 * patterns, which must not let the start of a look-alike identifier go out): numbers,
 * dashes, format characters, marks, spaces, fullwidth and small forms, the ideographic full
 * stop and mathematical letters and digits, and a lone high surrogate (the first half of a
 * character the chunk boundary split). A character class body for a "u" RegExp.
 */
export const LOOKALIKE_CHARS =
  "\\p{N}\\p{Pd}\\p{Cf}\\p{M}\\u2212\\u2043\\u02d7\\u2796\\u30fc\\u207b\\u208b" +
  "\\u00a0\\u2000-\\u200a\\u202f\\u205f\\u3000\\u3002\\uff01-\\uff9f\\ufe50-\\ufe6b" +
  "\\u{1d400}-\\u{1d7ff}\\ud800-\\udbff";
