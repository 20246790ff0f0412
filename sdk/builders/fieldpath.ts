/**
 * Field paths as authors write them: `data.*`, `spec.containers[*].env[*].value`,
 * `metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`, `items[0].x`.
 * Parsed into segments; `"*"` is a wildcard over array elements or object members.
 */
export class FieldPathError extends Error {
  readonly code = "INVALID_FIELD_PATH" as const;
  readonly data: { path: string; at: number };
  constructor(path: string, at: number, what: string) {
    super(
      `field path ${JSON.stringify(path)}: expected ${what} at offset ${at}; write paths like spec.containers[*].env[*].value or metadata.annotations["a/b"]`,
    );
    this.name = "FieldPathError";
    this.data = { path, at };
  }
}

export function parseFieldPath(path: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = path.length;
  if (n === 0) throw new FieldPathError(path, 0, "a field name");
  let expectName = true;
  while (i < n) {
    const ch = path[i]!;
    if (ch === "[") {
      const close = path.indexOf("]", i);
      if (close < 0) throw new FieldPathError(path, i, "a closing ]");
      const inner = path.slice(i + 1, close);
      if (inner === "*") out.push("*");
      else if (/^(0|[1-9][0-9]*)$/.test(inner)) out.push(inner);
      else if (/^"(?:[^"\\]|\\.)*"$/.test(inner) || /^'(?:[^'\\]|\\.)*'$/.test(inner)) {
        const body = inner.slice(1, -1).replace(/\\(.)/g, "$1");
        if (body === "") throw new FieldPathError(path, i, "a non-empty key");
        out.push(body);
      } else throw new FieldPathError(path, i + 1, "*, an index or a quoted key inside [ ]");
      i = close + 1;
      expectName = false;
      continue;
    }
    if (ch === ".") {
      if (expectName) throw new FieldPathError(path, i, "a field name");
      i++;
      expectName = true;
      if (i >= n) throw new FieldPathError(path, i, "a field name");
      continue;
    }
    if (!expectName) throw new FieldPathError(path, i, "'.' or '['");
    let j = i;
    while (j < n && path[j] !== "." && path[j] !== "[") j++;
    const name = path.slice(i, j);
    if (!/^(\*|[A-Za-z0-9_$-]+)$/.test(name))
      throw new FieldPathError(path, i, "a field name (letters, digits, _ $ -) or *");
    out.push(name);
    i = j;
    expectName = false;
  }
  if (expectName) throw new FieldPathError(path, n, "a field name");
  return out;
}

/** Render segments back into the bracket form (for messages). */
export function formatFieldPath(segments: readonly string[]): string {
  return segments
    .map((s, i) => {
      if (s === "*") return i === 0 ? "*" : "[*]";
      if (/^(0|[1-9][0-9]*)$/.test(s)) return `[${s}]`;
      if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s)) return i === 0 ? s : `.${s}`;
      return `[${JSON.stringify(s)}]`;
    })
    .join("");
}
