/**
 * Seeds: multi-document YAML (or JSON) and `*List` documents flattened into plain objects.
 */
import YAML from "yaml";
import type { JsonObject } from "./errors.ts";
import { isObject } from "./patch.ts";

export class SeedError extends Error {
  readonly code = "SIM_SEED_INVALID";
  readonly data: { document: number };
  constructor(document: number, message: string) {
    super(
      `seed document ${document}: ${message}; each document must be a Kubernetes object with apiVersion, kind and metadata.name (or a List of them)`,
    );
    this.data = { document };
  }
}

function flatten(o: JsonObject, doc: number, out: JsonObject[]): void {
  if (typeof o.kind === "string" && o.kind.endsWith("List") && Array.isArray(o.items)) {
    for (const item of o.items) {
      if (!isObject(item)) throw new SeedError(doc, "a List item is not an object");
      flatten(item, doc, out);
    }
    return;
  }
  if (typeof o.apiVersion !== "string" || typeof o.kind !== "string")
    throw new SeedError(doc, "apiVersion or kind is missing");
  const m = o.metadata;
  if (!isObject(m) || (typeof m.name !== "string" && typeof m.generateName !== "string"))
    throw new SeedError(doc, `${o.kind} has no metadata.name`);
  out.push(o);
}

/** Parse seed text: multi-document YAML (JSON is YAML too) or a List. */
export function loadSeed(yamlText: string): JsonObject[] {
  const out: JsonObject[] = [];
  const docs = YAML.parseAllDocuments(yamlText);
  docs.forEach((d, i) => {
    if (d.errors.length > 0) throw new SeedError(i + 1, `YAML error: ${d.errors[0]!.message}`);
    const v = d.toJS({ maxAliasCount: 100 }) as unknown;
    if (v === null || v === undefined) return;
    if (!isObject(v)) throw new SeedError(i + 1, "not a mapping");
    flatten(v, i + 1, out);
  });
  return out;
}
