/**
 * Cheap gates in front of the detector regexes. Running ~16 regexes over every string of a
 * 50 MB list is the masker's whole cost; most strings cannot match most detectors. From each
 * pattern we derive, conservatively, what EVERY match must contain, as a small disjunction of
 * alternatives, each requiring:
 *   - a run of at least `run` consecutive ASCII digits, and `digits` digits in all,
 *   - each of a few punctuation characters (`@` for email, `:` and `/` for URLs),
 *   - some literal words of 3+ letters, case-insensitively ("mrn", "member", "street").
 * A string satisfying no alternative is skipped without running the regex. The analysis only ever
 * under-states a requirement (unknown syntax, lookarounds, optional parts count as "nothing
 * required"), so a gate can never hide a match.
 */

export interface Alt {
  /** every match (taking this alternative) contains this many consecutive digits */
  run: number;
  /** ... and at least this many digits in all */
  digits: number;
  /** ... each of these non-alphanumeric ASCII characters */
  chars: string;
  /** ... and each of these words (lower-case; compared with the lower-cased string) */
  words: string[];
}

/** A disjunction: a string may match only if it satisfies at least one alternative. */
export type Requirement = Alt[];

const TRUE: Alt = { run: 0, digits: 0, chars: "", words: [] };
const MAX_ALTS = 64;

function union(a: string, b: string): string {
  let out = a;
  for (const c of b) if (!out.includes(c)) out += c;
  return out;
}

function and(a: Alt, b: Alt): Alt {
  const words = [...new Set([...a.words, ...b.words])].sort((x, y) => y.length - x.length).slice(0, 2);
  // a and b describe disjoint parts of one match (a group and the rest of its sequence)
  return { run: Math.max(a.run, b.run), digits: a.digits + b.digits, chars: union(a.chars, b.chars), words };
}

function product(a: Requirement, b: Requirement): Requirement {
  if (a.length * b.length > MAX_ALTS) return [and(weaken(a), weaken(b))];
  const out: Alt[] = [];
  for (const x of a) for (const y of b) out.push(and(x, y));
  return out;
}

/** one alternative implied by every alternative of r (for when a disjunction grows too big) */
function weaken(r: Requirement): Alt {
  if (r.length === 0) return TRUE;
  let run = Number.POSITIVE_INFINITY;
  let digits = Number.POSITIVE_INFINITY;
  let chars: string | null = null;
  for (const a of r) {
    run = Math.min(run, a.run);
    digits = Math.min(digits, a.digits);
    if (chars === null) chars = a.chars;
    else {
      let kept = "";
      for (const c of chars) if (a.chars.includes(c)) kept += c;
      chars = kept;
    }
  }
  return {
    run: Number.isFinite(run) ? run : 0,
    digits: Number.isFinite(digits) ? digits : 0,
    chars: chars ?? "",
    words: [],
  };
}

function or(a: Requirement, b: Requirement): Requirement {
  const seen = new Set<string>();
  const out: Alt[] = [];
  for (const x of [...a, ...b]) {
    const k = `${x.run}|${x.digits}|${x.chars}|${x.words.join(",")}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(x);
    }
  }
  return out.length > MAX_ALTS ? [weaken(out)] : out;
}

type Atom =
  | { t: "digit" }
  | { t: "char"; c: string }
  | { t: "letter"; c: string }
  | { t: "other" }
  | { t: "zero" } // assertions and lookarounds: match no characters
  | { t: "group"; req: Requirement; fixedDigits: number | null };

class Parser {
  i = 0;
  constructor(readonly src: string) {}

  /** alternation := sequence ('|' sequence)* */
  alternation(): { req: Requirement; fixedDigits: number | null } {
    const first = this.sequence();
    let req = first.req;
    let fixed = first.fixedDigits;
    while (this.src[this.i] === "|") {
      this.i++;
      const next = this.sequence();
      req = or(req, next.req);
      fixed = fixed === next.fixedDigits ? fixed : null;
    }
    return { req, fixedDigits: fixed };
  }

  /**
   * A sequence of quantified atoms: consecutive mandatory fixed-length digit atoms form a
   * digit run, consecutive mandatory literal letters form a word.
   */
  sequence(): { req: Requirement; fixedDigits: number | null } {
    let req: Requirement = [TRUE];
    let run = 0;
    let cur = 0;
    let chars = "";
    let word = "";
    const words: string[] = [];
    let allDigits = true;
    let digitsTotal = 0;
    let digitsMin = 0;
    // words shorter than 3 letters ("st", "ca") occur in almost every string: no use as a gate
    const endWord = () => {
      if (word.length >= 3) words.push(word);
      word = "";
    };
    while (this.i < this.src.length && this.src[this.i] !== "|" && this.src[this.i] !== ")") {
      const atom = this.atom();
      const { min, max } = this.quantifier();
      if (atom.t === "zero") continue;
      if (atom.t === "letter" && min === 1 && max === 1) {
        word += atom.c;
        cur = 0;
        allDigits = false;
        continue;
      }
      endWord();
      if (atom.t === "digit") {
        digitsMin += min;
        if (min > 0) {
          cur += min;
          run = Math.max(run, cur);
        }
        if (min !== max) {
          cur = 0;
          allDigits = false;
        } else digitsTotal += min;
        continue;
      }
      if (atom.t === "group") {
        // each of the `min` repetitions brings its own digits
        if (min > 0)
          req = product(req, min > 1 ? atom.req.map((a) => ({ ...a, digits: a.digits * min })) : atom.req);
        if (atom.fixedDigits !== null && min === max) {
          cur += atom.fixedDigits * min;
          run = Math.max(run, cur);
          digitsTotal += atom.fixedDigits * min;
        } else {
          cur = 0;
          allDigits = false;
        }
        continue;
      }
      cur = 0;
      allDigits = false;
      if (atom.t === "char" && min > 0) chars = union(chars, atom.c);
    }
    endWord();
    const own: Alt = {
      run,
      digits: digitsMin,
      chars,
      words: words.sort((x, y) => y.length - x.length).slice(0, 2),
    };
    return { req: req.map((a) => and(a, own)), fixedDigits: allDigits ? digitsTotal : null };
  }
  quantifier(): { min: number; max: number } {
    const c = this.src[this.i];
    let min = 1;
    let max = 1;
    if (c === "*") {
      min = 0;
      max = Number.POSITIVE_INFINITY;
      this.i++;
    } else if (c === "+") {
      max = Number.POSITIVE_INFINITY;
      this.i++;
    } else if (c === "?") {
      min = 0;
      this.i++;
    } else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
      if (m) {
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
        this.i += m[0].length;
      }
    } else return { min, max };
    if (this.src[this.i] === "?") this.i++; // lazy
    return { min, max };
  }

  atom(): Atom {
    const s = this.src;
    const c = s[this.i]!;
    if (c === "(") {
      this.i++;
      let look = false;
      if (s.startsWith("?:", this.i)) this.i += 2;
      else if (s.startsWith("?=", this.i) || s.startsWith("?!", this.i)) {
        this.i += 2;
        look = true;
      } else if (s.startsWith("?<=", this.i) || s.startsWith("?<!", this.i)) {
        this.i += 3;
        look = true;
      } else if (s.startsWith("?<", this.i)) {
        const end = s.indexOf(">", this.i);
        this.i = end + 1;
      } else if (s[this.i] === "?") throw new Error("unknown group");
      const inner = this.alternation();
      if (s[this.i] !== ")") throw new Error("unbalanced");
      this.i++;
      if (look) return { t: "zero" };
      return { t: "group", req: inner.req, fixedDigits: inner.fixedDigits };
    }
    if (c === "[") return this.klass();
    if (c === "\\") return this.escape(false);
    this.i++;
    if (c === "^" || c === "$") return { t: "zero" };
    if (c === ".") return { t: "other" };
    return this.literal(c);
  }

  literal(c: string): Atom {
    if (c >= "0" && c <= "9") return { t: "digit" };
    if (/[A-Za-z]/.test(c)) return { t: "letter", c: c.toLowerCase() };
    if (c.charCodeAt(0) > 127) return { t: "other" };
    return { t: "char", c };
  }

  escape(inClass: boolean): Atom {
    const s = this.src;
    const e = s[this.i + 1];
    this.i += 2;
    if (e === undefined) throw new Error("trailing backslash");
    if (e === "d") return { t: "digit" };
    if (!inClass && (e === "b" || e === "B")) return { t: "zero" };
    if (e === "k") {
      const end = s.indexOf(">", this.i);
      this.i = end + 1;
      return { t: "zero" };
    }
    if (/[1-9]/.test(e)) {
      while (/[0-9]/.test(s[this.i] ?? "")) this.i++;
      return { t: "zero" };
    }
    if (e === "x") {
      this.i += 2;
      return { t: "other" };
    }
    if (e === "u") {
      if (s[this.i] === "{") this.i = s.indexOf("}", this.i) + 1;
      else this.i += 4;
      return { t: "other" };
    }
    if (e === "c") {
      this.i += 1;
      return { t: "other" };
    }
    if (e === "p" || e === "P") {
      if (s[this.i] === "{") this.i = s.indexOf("}", this.i) + 1;
      return { t: "other" };
    }
    if (/[A-Za-z0-9]/.test(e)) return { t: "other" }; // \w \s \n \t \D ...
    return this.literal(e);
  }

  /** a class is a digit atom only if it can match nothing but ASCII digits */
  klass(): Atom {
    const s = this.src;
    this.i++;
    let negated = false;
    if (s[this.i] === "^") {
      negated = true;
      this.i++;
    }
    let onlyDigits = true;
    let first = true;
    const singles = new Set<string>();
    while (this.i < s.length && (s[this.i] !== "]" || first)) {
      first = false;
      let lo: string;
      if (s[this.i] === "\\") {
        const e = s[this.i + 1];
        const a = this.escape(true);
        if (a.t === "digit") {
          singles.add("\\d");
          continue;
        }
        if (a.t === "char") lo = a.c;
        else {
          onlyDigits = false;
          singles.add(`\\${e}`);
          continue;
        }
      } else {
        lo = s[this.i]!;
        this.i++;
      }
      if (s[this.i] === "-" && s[this.i + 1] !== "]" && s[this.i + 1] !== undefined) {
        this.i++;
        let hi: string;
        if (s[this.i] === "\\") {
          const a = this.escape(true);
          hi = a.t === "char" ? a.c : "\uffff";
        } else {
          hi = s[this.i]!;
          this.i++;
        }
        if (!(lo >= "0" && hi <= "9")) onlyDigits = false;
        singles.add(lo + "-" + hi);
      } else {
        if (!(lo >= "0" && lo <= "9")) onlyDigits = false;
        singles.add(lo);
      }
    }
    this.i++; // ]
    if (negated) return { t: "other" };
    if (onlyDigits && singles.size > 0) return { t: "digit" };
    if (singles.size === 1) {
      const only = [...singles][0]!;
      if (only.length === 1) return this.literal(only);
    }
    if (singles.size === 2) {
      const [a, b] = [...singles] as [string, string];
      if (a.length === 1 && b.length === 1 && /[A-Za-z]/.test(a) && a.toLowerCase() === b.toLowerCase()) {
        return { t: "letter", c: a.toLowerCase() };
      }
    }
    return { t: "other" };
  }
}

/** What every match of `source` must contain; [{}] (no claim) when unsure. */
export function requirementOf(source: string, _flags: string): Requirement {
  try {
    const p = new Parser(source);
    const r = p.alternation();
    if (p.i !== source.length) return [TRUE];
    return r.req.length === 0 ? [TRUE] : r.req;
  } catch {
    return [TRUE];
  }
}

export interface GateGroup {
  run: number;
  digits: number;
  chars: string;
  /** null: no word needed; else at least one of these words must occur */
  words: readonly string[] | null;
}

/**
 * Finds which gate words occur in a string in one pass over its characters with a trie
 * (ASCII case-folded). Every occurrence of every word is found: each start position is tried.
 */
export class WordScanner {
  /** transitions: node * 128 + charCode -> node (0: none) */
  private readonly next: Int32Array;
  /** the word ending at a node, or null */
  private readonly ends: (string | null)[];
  private readonly first: Uint8Array;
  /**
   * Any of the words, case-insensitively, in one native search: most strings hold none, and
   * this answers for them faster than the walk. (Its case folding is a superset of ASCII's: a
   * string it lets through is walked, so nothing is found that the walk does not find.)
   */
  private readonly any: RegExp;
  constructor(words: Iterable<string>) {
    const all = [...new Set(words)].filter((w) => /^[\x20-\x7e]+$/.test(w));
    this.any =
      all.length === 0
        ? /(?!)/
        : new RegExp(all.map((w) => w.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")).join("|"), "i");
    const trans: number[][] = [[]];
    const ends: (string | null)[] = [null];
    for (const w of all) {
      let node = 0;
      for (const ch of w.toLowerCase()) {
        const c = ch.charCodeAt(0);
        let n = trans[node]![c];
        if (n === undefined) {
          n = trans.length;
          trans.push([]);
          ends.push(null);
          trans[node]![c] = n;
        }
        node = n;
      }
      ends[node] = w;
    }
    this.next = new Int32Array(trans.length * 128);
    trans.forEach((t, node) => {
      t.forEach((n, c) => {
        if (n !== undefined) this.next[node * 128 + c] = n;
      });
    });
    this.ends = ends;
    this.first = new Uint8Array(128);
    for (let c = 0; c < 128; c++) if (this.next[c] !== 0) this.first[c] = 1;
  }

  scan(s: string): Set<string> | null {
    if (!this.any.test(s)) return null;
    let found: Set<string> | null = null;
    const next = this.next;
    const first = this.first;
    const n = s.length;
    for (let p = 0; p < n; p++) {
      let c = s.charCodeAt(p);
      if (c >= 65 && c <= 90) c |= 32;
      if (c >= 128 || first[c] === 0) continue;
      let node = 0;
      for (let q = p; q < n; q++) {
        c = s.charCodeAt(q);
        if (c >= 65 && c <= 90) c |= 32;
        if (c >= 128) break;
        node = next[node * 128 + c]!;
        if (node === 0) break;
        const w = this.ends[node];
        if (w !== null && w !== undefined) {
          found ??= new Set();
          found.add(w);
        }
      }
    }
    return found;
  }
}

/**
 * A compiled gate: alternatives with the same digit run and characters are grouped; a group
 * passes when the run and characters are present and (if it needs words) one of its words
 * occurs (an alternative with several words keeps its longest).
 */
export class Gate {
  readonly groups: GateGroup[];
  readonly always: boolean;
  readonly words: readonly string[];
  constructor(req: Requirement) {
    const by = new Map<string, { run: number; digits: number; chars: string; words: Set<string> | null }>();
    for (const a of req) {
      const k = `${a.run}|${a.digits}|${a.chars}`;
      let g = by.get(k);
      if (g === undefined) {
        g = { run: a.run, digits: a.digits, chars: a.chars, words: new Set() };
        by.set(k, g);
      }
      if (a.words.length === 0) g.words = null;
      else g.words?.add(a.words[0]!);
    }
    this.groups = [...by.values()]
      .map((g) => ({
        run: g.run,
        digits: g.digits,
        chars: g.chars,
        words: g.words === null ? null : [...g.words],
      }))
      .sort((a, b) => b.run - a.run);
    this.always = this.groups.some(
      (g) => g.run === 0 && g.digits === 0 && g.chars === "" && g.words === null,
    );
    this.words = this.groups.flatMap((g) => g.words ?? []);
  }
}
