/**
 * core/v1 Events and events.k8s.io/v1 Events are one storage (as in kube-apiserver); the
 * simulator stores the core shape and converts for the events.k8s.io group.
 */
import type { JsonObject } from "./errors.ts";
import type { ResourceDef } from "./resources.ts";

const RENAMES: Array<[core: string, v1: string]> = [
  ["involvedObject", "regarding"],
  ["message", "note"],
  ["source", "deprecatedSource"],
  ["firstTimestamp", "deprecatedFirstTimestamp"],
  ["lastTimestamp", "deprecatedLastTimestamp"],
  ["count", "deprecatedCount"],
  ["reportingComponent", "reportingController"],
];

function rename(o: JsonObject, from: 0 | 1, apiVersion: string): JsonObject {
  const out: JsonObject = { ...o, apiVersion };
  for (const pair of RENAMES) {
    const a = pair[from];
    const b = pair[from === 0 ? 1 : 0];
    if (a in out) {
      out[b] = out[a]!;
      delete out[a];
    }
  }
  return out;
}

export function isEventsGroup(def: ResourceDef): boolean {
  return def.group === "events.k8s.io";
}

/** storage (core) shape -> the shape of `def`'s group */
export function present(def: ResourceDef, o: JsonObject): JsonObject {
  return isEventsGroup(def) ? rename(o, 0, "events.k8s.io/v1") : o;
}

/** a body in `def`'s shape -> storage (core) shape */
export function toStorage(def: ResourceDef, o: JsonObject): JsonObject {
  return isEventsGroup(def) ? rename(o, 1, "v1") : o;
}
