/**
 * Server-side Tables as kube-apiserver writes them: the row object each includeObject value
 * asks for, and a custom resource's columns from its CRD's additionalPrinterColumns.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Simulator, startSimulator } from "./index.ts";
import { patientsCrd } from "./seed/crds.ts";

let sim: Simulator;
const TOKEN = "tables-test-token";
const T_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const T_V1BETA1 = "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

const crd = patientsCrd([
  { name: "Patient", type: "string", jsonPath: ".spec.patientName" },
  { name: "Beds", type: "integer", jsonPath: ".spec.beds" },
  { name: "Ward", type: "string", jsonPath: ".spec.ward", priority: 1 },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
]);

beforeAll(async () => {
  sim = await startSimulator({
    tls: false,
    token: TOKEN,
    seed: [
      // (the object before its CRD: loading orders them)
      {
        apiVersion: "clinic.example.com/v1",
        kind: "Patient",
        metadata: { name: "p1", namespace: "ward-a", labels: { app: "intake" } },
        spec: { patientName: "Patient Number1", beds: 2 },
      },
      crd,
    ],
  });
});
afterAll(async () => {
  await sim?.stop();
});

async function get(path: string, accept: string): Promise<Record<string, unknown>> {
  const r = await fetch(`${sim.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}`, accept } });
  expect(r.status, path).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}
type Table = {
  kind: string;
  apiVersion: string;
  columnDefinitions: Array<{ name: string; type: string; format: string; priority: number }>;
  rows: Array<{ cells: unknown[]; object?: Record<string, unknown> | null }>;
};

describe("Table rows by includeObject", () => {
  it("None: the row's object is null; Metadata (the default): PartialObjectMetadata in the Table's version; Object: the object", async () => {
    const none = (await get("/api/v1/namespaces/default/serviceaccounts?includeObject=None", T_V1)) as Table;
    expect(none.rows.length).toBeGreaterThan(0);
    for (const r of none.rows) {
      expect("object" in r).toBe(true);
      expect(r.object).toBeNull();
    }
    for (const [accept, version] of [
      [T_V1, "meta.k8s.io/v1"],
      [T_V1BETA1, "meta.k8s.io/v1beta1"],
    ] as const) {
      const t = (await get("/api/v1/namespaces/default/serviceaccounts", accept)) as Table;
      expect(t.apiVersion).toBe(version);
      expect(t.rows[0]!.object).toMatchObject({ kind: "PartialObjectMetadata", apiVersion: version });
      expect(Object.keys(t.rows[0]!.object!)).toEqual(["kind", "apiVersion", "metadata"]);
    }
    const obj = (await get("/api/v1/namespaces/default/serviceaccounts?includeObject=Object", T_V1)) as Table;
    expect(obj.rows[0]!.object).toMatchObject({ kind: "ServiceAccount", apiVersion: "v1" });
  });

  it("a watch's Table events carry the same row objects", async () => {
    const ac = new AbortController();
    const r = await fetch(
      `${sim.url}/api/v1/namespaces/default/serviceaccounts?watch=true&includeObject=None`,
      { headers: { authorization: `Bearer ${TOKEN}`, accept: T_V1 }, signal: ac.signal },
    );
    const reader = r.body!.getReader();
    let buf = "";
    while (!buf.includes("\n")) buf += Buffer.from((await reader.read()).value!).toString();
    ac.abort();
    const ev = JSON.parse(buf.slice(0, buf.indexOf("\n"))) as { object: Table };
    expect(ev.object.rows[0]!.object).toBeNull();
  });
});

describe("a CustomResourceDefinition's additionalPrinterColumns", () => {
  it("are the custom resource's Table columns, after Name, with cells read by their JSONPath", async () => {
    const t = (await get("/apis/clinic.example.com/v1/namespaces/ward-a/patients", T_V1)) as Table;
    expect(t.columnDefinitions.map((c) => [c.name, c.type, c.priority])).toEqual([
      ["Name", "string", 0],
      ["Patient", "string", 0],
      ["Beds", "integer", 0],
      ["Ward", "string", 1],
      ["Age", "date", 0],
    ]);
    expect(t.columnDefinitions[0]!.format).toBe("name");
    const cells = t.rows[0]!.cells;
    expect(cells.slice(0, 4)).toEqual(["p1", "Patient Number1", 2, null]);
    expect(cells[4]).toMatch(/^\d+s$/);
    expect(t.rows[0]!.object).toMatchObject({ kind: "PartialObjectMetadata", metadata: { name: "p1" } });
    const full = (await get(
      "/apis/clinic.example.com/v1/namespaces/ward-a/patients/p1?includeObject=Object",
      T_V1,
    )) as Table;
    expect(full.rows[0]!.object).toMatchObject({ kind: "Patient", spec: { patientName: "Patient Number1" } });
    // served (with its short name) in discovery, as kubectl finds it
    const d = await get("/apis/clinic.example.com/v1", "application/json");
    expect(d.resources).toContainEqual(expect.objectContaining({ name: "patients", shortNames: ["pt"] }));
  });
});
