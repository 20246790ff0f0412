/**
 * What each rule does: which masks apply to which object, the four strategies, Secret base64,
 * last-applied, managedFields, Tables, summaries, text streams and the fail-closed checks.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  assertMaskableResponse,
  createMasker,
  decodeBody,
  MAX_JSON_NESTING,
  MaskingError,
  maskableAccept,
  parseJsonBody,
} from "../gateway/masking/index.ts";
import type { Json, Mask } from "../sdk/schema/config.ts";
import { ctx, makeConfig } from "./masking-fixtures.ts";
import { gzipSync } from "node:zlib";

const KEY = new Uint8Array(32).fill(1);
const src = { file: "p.ts", line: 1, column: 1 };
type O = { [k: string]: Json };

function field(
  path: string[],
  strategy: Mask["fields"][number]["strategy"],
  label: string,
  base64?: boolean,
) {
  const f: Mask["fields"][number] = { path: path.join("."), segments: path, strategy, label };
  if (base64 !== undefined) f.base64 = base64;
  return f;
}

function masker(masks: Mask[], detectors = makeConfig().detectors) {
  return createMasker(makeConfig({ masks, detectors }), { pseudonymKey: KEY });
}

const get = (v: Json, ...path: (string | number)[]): Json => {
  let cur: Json = v;
  for (const p of path) cur = (cur as Record<string, Json>)[p as string] as Json;
  return cur;
};

describe("strategies", () => {
  const mk = (strategy: Mask["fields"][number]["strategy"]) =>
    masker(
      [
        {
          id: "m",
          match: { resources: ["configmaps"] },
          fields: [field(["data", "v"], strategy, "ssn")],
          detectors: [],
          source: src,
        },
      ],
      [],
    );
  const cm = (v: string) => ({
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { name: "c", namespace: "x" },
    data: { v, other: "keep" },
  });
  const c = ctx({ resource: "configmaps", namespace: "x" });

  it("redact says what it was", () => {
    expect(get(mk({ kind: "redact" }).maskJson(cm("123-45-6789"), c).value, "data", "v")).toBe(
      "[MASKED:ssn]",
    );
  });
  it("partial keeps the last digits and the format, never more than half", () => {
    const m = mk({ kind: "partial", keepFirst: 0, keepLast: 4 });
    expect(get(m.maskJson(cm("123-45-6789"), c).value, "data", "v")).toBe("[MASKED:ssn:***-**-6789]");
    const greedy = mk({ kind: "partial", keepFirst: 9, keepLast: 9 });
    const out = get(greedy.maskJson(cm("123456"), c).value, "data", "v") as string;
    expect(out.match(/\*/g)?.length).toBeGreaterThanOrEqual(3);
  });
  it("pseudonymize is HMAC-SHA256(key, label:value), stable per key and different across keys", () => {
    const m = mk({ kind: "pseudonymize" });
    const a = get(m.maskJson(cm("123-45-6789"), c).value, "data", "v");
    const b = get(m.maskJson(cm("123-45-6789"), c).value, "data", "v");
    const expected = createHmac("sha256", KEY).update("ssn:123-45-6789").digest("hex").slice(0, 12);
    expect(a).toBe(`[PSEUDO:ssn:${expected}]`);
    expect(b).toBe(a);
    const other = createMasker(
      makeConfig({
        masks: [
          {
            id: "m",
            match: {},
            fields: [field(["data", "v"], { kind: "pseudonymize" }, "ssn")],
            detectors: [],
            source: src,
          },
        ],
        detectors: [],
      }),
      {
        pseudonymKey: new Uint8Array(32).fill(2),
      },
    );
    expect(get(other.maskJson(cm("123-45-6789"), c).value, "data", "v")).not.toBe(a);
    expect(get(m.maskJson(cm("123-45-6780"), c).value, "data", "v")).not.toBe(a);
  });
  it("drop removes the field and records its pointer", () => {
    const r = mk({ kind: "drop" }).maskJson(cm("x"), c);
    expect(get(r.value, "data")).toEqual({ other: "keep" });
    expect(r.summary.paths).toEqual(["/data/v"]);
    expect(r.summary.counts).toEqual({ ssn: 1 });
  });
  it("wildcards reach array elements and object members; a whole subtree keeps its shape", () => {
    const m = masker(
      [
        {
          id: "m",
          match: {},
          fields: [
            field(["spec", "*", "secret"], { kind: "redact" }, "x"),
            field(["spec", "tree"], { kind: "redact" }, "t"),
          ],
          detectors: [],
          source: src,
        },
      ],
      [],
    );
    const v = m.maskJson(
      {
        kind: "Thing",
        metadata: { name: "a" },
        spec: {
          a: { secret: "1", keep: "2" },
          b: [{ secret: "3" }],
          tree: { n: 5, s: ["a", "b"], f: false },
        },
      },
      ctx(),
    ).value;
    expect(get(v, "spec", "a")).toEqual({ secret: "[MASKED:x]", keep: "2" });
    expect(get(v, "spec", "tree")).toEqual({
      n: "[MASKED:t]",
      s: ["[MASKED:t]", "[MASKED:t]"],
      f: "[MASKED:t]",
    });
  });
  it("the strongest strategy wins when two masks target one field", () => {
    const m = masker(
      [
        {
          id: "a",
          match: {},
          fields: [field(["data", "v"], { kind: "partial", keepFirst: 1, keepLast: 1 }, "v")],
          detectors: [],
          source: src,
        },
        {
          id: "b",
          match: {},
          fields: [field(["data", "v"], { kind: "redact" }, "v")],
          detectors: [],
          source: src,
        },
      ],
      [],
    );
    expect(get(m.maskJson(cm("abcdef"), c).value, "data", "v")).toBe("[MASKED:v]");
  });
});

describe("which masks apply", () => {
  const m = masker(makeConfig().masks);
  it("judges each list item by its own namespace and labels", () => {
    const item = (ns: string, patient: string) => ({
      metadata: {
        name: "p",
        namespace: ns,
        labels: { "custos.dev/patient": patient },
        annotations: { "patient-name": "Jane Roe" },
      },
      spec: { containers: [{ name: "c", env: [{ name: "A", value: "v" }] }] },
    });
    const v = m.maskJson(
      { kind: "PodList", items: [item("phi-a", "true"), item("default", "false"), item("phi-b", "false")] },
      ctx({ namespace: "", verb: "list" }),
    ).value;
    const items = get(v, "items") as O[];
    expect(get(items[0]!, "spec", "containers", 0, "env", 0, "value")).toBe("[MASKED:env]");
    expect(get(items[0]!, "metadata", "annotations", "patient-name")).toMatch(
      /^\[PSEUDO:name:[0-9a-f]{12}\]$/,
    );
    expect(get(items[1]!, "spec", "containers", 0, "env", 0, "value")).toBe("v");
    expect(get(items[1]!, "metadata", "annotations", "patient-name")).toBe("Jane Roe");
    expect(get(items[2]!, "spec", "containers", 0, "env", 0, "value")).toBe("[MASKED:env]");
    expect(get(items[2]!, "metadata", "annotations", "patient-name")).toBe("Jane Roe");
  });
  it("uses RBAC resource forms: pods/log and pods/exec masks, not the pods mask, cover streams", () => {
    const onlyPods = masker([
      { id: "pods-ip", match: { resources: ["pods"] }, fields: [], detectors: ["ip"], source: src },
    ]);
    const logs = (mm: typeof m) => {
      const t = mm.textStream(ctx({ subresource: "log" }));
      return t.push("client 10.1.2.3 connected\n") + t.end();
    };
    expect(logs(onlyPods)).toContain("10.1.2.3");
    expect(logs(m)).toBe("client [MASKED:ip] connected\n"); // phi-logs lists pods/log + ip
    expect(
      logs(
        masker([{ id: "all", match: { resources: ["pods/*"] }, fields: [], detectors: ["ip"], source: src }]),
      ),
    ).not.toContain("10.1.2.3");
  });
  it("matches API groups and namespace globs", () => {
    const crd = {
      apiVersion: "clinic.example.com/v1",
      kind: "Patient",
      metadata: { name: "p1", namespace: "ward-3" },
      spec: { name: "Jane Roe", mrn: "X1", room: "12" },
    };
    const v = m.maskJson(
      crd,
      ctx({ apiGroup: "clinic.example.com", resource: "patients", namespace: "ward-3" }),
    ).value;
    expect(get(v, "spec", "mrn")).toBe("[MASKED:mrn]");
    expect(get(v, "spec", "room")).toBe("12");
    const wrongGroup = m.maskJson(
      crd,
      ctx({ apiGroup: "other.example.com", resource: "patients", namespace: "ward-3" }),
    ).value;
    expect(get(wrongGroup, "spec", "mrn")).toBe("X1");
    const ns = masker(
      [
        {
          id: "n",
          match: { namespaces: ["ward-*"] },
          fields: [field(["spec", "room"], { kind: "redact" }, "room")],
          detectors: [],
          source: src,
        },
      ],
      [],
    );
    expect(get(ns.maskJson(crd, ctx({ namespace: "ward-3" })).value, "spec", "room")).toBe("[MASKED:room]");
    expect(
      get(
        ns.maskJson({ ...crd, metadata: { name: "p", namespace: "icu" } }, ctx({ namespace: "icu" })).value,
        "spec",
        "room",
      ),
    ).toBe("12");
  });
  it("an unknown namespace or labels never lets an object escape (Table rows without objects)", () => {
    const table = {
      kind: "Table",
      columnDefinitions: [{ name: "Name" }, { name: "Env" }],
      rows: [{ cells: ["p", "secret"] }],
    };
    const mm = masker(
      [
        {
          id: "e",
          match: { phi: true, labels: { a: "b" } },
          fields: [field(["spec", "env"], { kind: "redact" }, "env")],
          detectors: [],
          source: src,
        },
      ],
      [],
    );
    expect(get(mm.maskJson(table, ctx({ namespace: "" })).value, "rows", 0, "cells", 1)).toBe("[MASKED:env]");
    expect(get(mm.maskJson(table, ctx({ namespace: "" })).value, "rows", 0, "cells", 0)).toBe("p");
  });
  it("Events about a pod get the detectors of the masks on that pod", () => {
    const mm = masker([
      { id: "pod-ip", match: { resources: ["pods"], phi: true }, fields: [], detectors: ["ip"], source: src },
    ]);
    const ev = {
      kind: "Event",
      apiVersion: "v1",
      metadata: { name: "e", namespace: "phi-a" },
      involvedObject: { kind: "Pod", name: "p", namespace: "phi-a" },
      message: "probe to 10.9.8.7 failed",
    };
    expect(get(mm.maskJson(ev, ctx({ resource: "events" })).value, "message")).toBe(
      "probe to [MASKED:ip] failed",
    );
    const other = { ...ev, involvedObject: { kind: "Node", name: "n" } };
    expect(get(mm.maskJson(other, ctx({ resource: "events" })).value, "message")).toBe(
      "probe to 10.9.8.7 failed",
    );
  });
});

describe("request bodies (masked before anything stores them)", () => {
  const m = masker(makeConfig().masks);
  it("a merge patch without labels is treated as possibly labelled (label-constrained masks apply)", () => {
    const patch = { metadata: { annotations: { "patient-name": "Jane Roe" } } };
    const v = m.maskJson(patch, ctx({ verb: "patch", namespace: "default", resource: "configmaps" })).value;
    expect(get(v, "metadata", "annotations", "patient-name")).toMatch(/^\[PSEUDO:name:/);
  });
  it("a JSON Patch (array of operations) is scanned by the detectors", () => {
    const ops = [{ op: "replace", path: "/data/note", value: "SSN 123-45-6789" }];
    const v = m.maskJson(ops, ctx({ verb: "patch", resource: "configmaps" })).value;
    expect(JSON.stringify(v)).not.toContain("123-45-6789");
    expect(get(v, 0, "path")).toBe("/data/note");
  });
});

describe("Kubernetes duplicates of data", () => {
  const m = masker(makeConfig().masks);
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const unb64 = (s: Json) => Buffer.from(s as string, "base64").toString();

  it("Secret data: decoded, masked, re-encoded; dropped per rule; detectors see decoded text", () => {
    const sec = {
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name: "s", namespace: "phi-a" },
      type: "Opaque",
      data: {
        ssn: b64("123-45-6789"),
        mrn: b64("12345678"),
        note: b64("call 617-555-0199 now"),
        bin: "AAEC/w==",
      },
    };
    const r = m.maskJson(sec, ctx({ resource: "secrets" }));
    const data = get(r.value, "data") as O;
    expect(unb64(data.ssn!)).toBe("[MASKED:ssn:***-**-6789]");
    expect("mrn" in data).toBe(false);
    expect(unb64(data.note!)).toBe("call [MASKED:phone] now");
    expect(data.bin).toBe("AAEC/w=="); // binary data, not text: unchanged
    expect(r.summary.paths).toEqual(expect.arrayContaining(["/data/ssn", "/data/mrn", "/data/note"]));
  });

  it("keys of data maps that hold identifiers are renamed, in the value and in the summary", () => {
    const cm = {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: {
        name: "c",
        namespace: "default",
        annotations: { "note-MRN-00481516": "x" },
        labels: { "MRN-00623420": "y" },
      },
      data: { "record-MRN-00481516.json": "{}", "MRN-00481516": "a", "[MASKED:mrn]": "b", plain: "c" },
    };
    const r = m.maskJson(cm, ctx({ resource: "configmaps", namespace: "default" }));
    const out = JSON.stringify(r.value);
    expect(out).not.toContain("00481516");
    expect(out).not.toContain("00623420");
    expect(Object.keys(get(r.value, "data") as O)).toEqual([
      "record-[MASKED:mrn].json",
      "[MASKED:mrn]#2",
      "[MASKED:mrn]",
      "plain",
    ]);
    expect((get(r.value, "data") as O)["[MASKED:mrn]"]).toBe("b"); // an existing key is never overwritten
    expect(JSON.stringify(r.summary)).not.toContain("00481516");
    expect(r.summary.paths).toEqual(
      expect.arrayContaining(["/data/record-[MASKED:mrn].json", "/metadata/labels/[MASKED:mrn]"]),
    );
    expect(r.summary.counts.mrn).toBe(4);
    // a map without identifier keys is returned as it was (same reference)
    const clean = { kind: "ConfigMap", metadata: { name: "d", namespace: "default" }, data: { a: "b" } };
    expect(m.maskJson(clean, ctx({ resource: "configmaps", namespace: "default" })).value).toBe(clean);
  });

  it("record ids, ITIN-range SSNs and a street address with city and ZIP are masked whole", () => {
    const cm = {
      kind: "ConfigMap",
      metadata: { name: "c", namespace: "default" },
      data: {
        a: "GET /patients/MRN-00481516 ok",
        b: "SSN 900-12-3456; 987-65-4320",
        c: "moved to 7 Sample Court, Springfield 99903 today; 404 Notfound Avenue, 99902",
      },
    };
    const d = get(m.maskJson(cm, ctx({ resource: "configmaps", namespace: "default" })).value, "data") as O;
    expect(d).toEqual({
      a: "GET /patients/[MASKED:mrn] ok",
      b: "SSN [MASKED:ssn]; [MASKED:ssn]",
      c: "moved to [MASKED:address] today; [MASKED:address]",
    });
  });

  it("an SSN right after a slash (an access log's path, a file name) is masked", () => {
    const cm = {
      kind: "ConfigMap",
      metadata: { name: "c", namespace: "default" },
      data: {
        log: '10.0.0.7 - - "GET /patients/900-12-3456 HTTP/1.1" 200',
        file: "/data/987-65-4320.json",
      },
    };
    const d = get(m.maskJson(cm, ctx({ resource: "configmaps", namespace: "default" })).value, "data") as O;
    expect(d).toEqual({
      log: '10.0.0.7 - - "GET /patients/[MASKED:ssn] HTTP/1.1" 200',
      file: "/data/[MASKED:ssn].json",
    });
    // and in a log stream, line by line
    const t = m.textStream(ctx({ resource: "pods", subresource: "log", namespace: "default" }));
    expect(t.push("GET /patients/900-12-3456 200\n") + t.end()).toBe("GET /patients/[MASKED:ssn] 200\n");
  });

  it("last-applied-configuration: parsed, masked with the same rules, re-serialised; unparseable is redacted", () => {
    const inner = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "phi-a" },
      spec: { containers: [{ name: "c", env: [{ name: "A", value: "secret-value" }] }] },
    };
    const pod = (la: string) => ({
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name: "p",
        namespace: "phi-a",
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": la },
      },
      spec: {},
    });
    const r = m.maskJson(pod(JSON.stringify(inner) + "\n"), ctx());
    const la = get(
      r.value,
      "metadata",
      "annotations",
      "kubectl.kubernetes.io/last-applied-configuration",
    ) as string;
    expect(la.endsWith("\n")).toBe(true);
    const parsed = JSON.parse(la);
    expect(parsed.spec.containers[0].env[0].value).toBe("[MASKED:env]");
    expect(Object.keys(parsed)).toEqual(Object.keys(inner));
    expect(r.summary.paths).toContain(
      "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    );
    const bad = m.maskJson(pod('{"broken": 123-45-6789'), ctx()).value;
    expect(get(bad, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")).toBe(
      "[MASKED:last-applied-configuration]",
    );
  });

  it("managedFields: dropped when a mask applies, kept untouched otherwise", () => {
    const mf = [
      { manager: "kubectl", operation: "Update", time: "2024-03-12T10:00:00Z", fieldsV1: { "f:spec": {} } },
    ];
    const masked = m.maskJson(
      { kind: "Pod", metadata: { name: "p", namespace: "phi-a", managedFields: mf }, spec: {} },
      ctx(),
    ).value;
    expect(get(masked, "metadata", "managedFields")).toBeUndefined();
    const plain = m.maskJson(
      { kind: "Pod", metadata: { name: "p", namespace: "default", managedFields: mf }, spec: {} },
      ctx({ namespace: "default" }),
    ).value;
    expect(get(plain, "metadata", "managedFields")).toBe(mf);
  });

  it("managedFields kept under detectors: the data they repeat is masked there too", () => {
    // no mask applies to configmaps in "default": the managedFields stay, and they name the data
    // keys (a ConfigMap entry, an annotation), list keys and set values the detectors mask
    const mf = [
      {
        manager: "intake-writer SSN 123-45-6789",
        operation: "Update",
        apiVersion: "v1",
        time: "2024-03-12T10:00:00Z",
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:data": { ".": {}, "f:record-MRN-12345678.json": {} },
          "f:metadata": { "f:annotations": { "f:MRN-87654321": {} } },
          "f:spec": {
            "f:patients": { 'k:{"id":"MRN-11223344"}': { ".": {}, "f:id": {} } },
            "f:tags": { 'v:"SSN 987-65-4320"': {} },
          },
        },
      },
    ];
    const cm = {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: {
        name: "records",
        namespace: "default",
        annotations: { "MRN-87654321": "seen" },
        managedFields: mf,
      },
      data: { "record-MRN-12345678.json": "{}" },
    };
    const c = ctx({ namespace: "default", resource: "configmaps", name: "records" });
    const r = m.maskJson(cm, c);
    const out = JSON.stringify(r.value);
    for (const planted of ["12345678", "87654321", "11223344", "987-65-4320", "123-45-6789"])
      expect(out).not.toContain(planted);
    // kept, with the keys renamed as the data keys they repeat are
    const kept = get(r.value, "metadata", "managedFields", 0, "fieldsV1") as O;
    expect(Object.keys(get(kept, "f:data") as O)).toEqual([".", "f:record-[MASKED:mrn].json"]);
    expect(Object.keys(get(r.value, "data") as O)).toEqual(["record-[MASKED:mrn].json"]);
    expect(get(kept, "f:spec", "f:patients", 'k:{"id":"[MASKED:mrn]"}', "f:id")).toEqual({});
    expect(get(r.value, "metadata", "managedFields", 0, "time")).toBe("2024-03-12T10:00:00Z");
    expect(r.summary.paths).toContain("/metadata/managedFields/0/fieldsV1/f:data/f:record-[MASKED:mrn].json");
    // the text masker the gateway runs does the same
    const text = m.maskJsonText(JSON.stringify(cm), c);
    expect(JSON.parse(text.text)).toEqual(r.value);
    expect(text.summary).toEqual(r.summary);
  });
});

describe("digest (what an approval binds without storing it)", () => {
  it("is keyed by the pseudonym key, stable, and tells values apart", () => {
    const a = createMasker(makeConfig(), { pseudonymKey: new Uint8Array(32).fill(1) });
    const b = createMasker(makeConfig(), { pseudonymKey: new Uint8Array(32).fill(2) });
    const d = a.digest("record-MRN-12345678");
    expect(d).toMatch(/^[0-9a-f]{32}$/);
    expect(a.digest("record-MRN-12345678")).toBe(d);
    expect(a.digest("record-MRN-12345679")).not.toBe(d);
    expect(b.digest("record-MRN-12345678")).not.toBe(d);
    // not the unkeyed hash a dictionary of MRNs would reverse
    expect(d).not.toBe(
      createHmac("sha256", "").update("custos-bind:record-MRN-12345678").digest("hex").slice(0, 32),
    );
  });
});

describe("server-side Table", () => {
  const m = masker(makeConfig().masks);
  it("masks cells whose column shows a masked field, and cells equal to a value masked in the row object", () => {
    const table = {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: {},
      columnDefinitions: [{ name: "Name" }, { name: "MRN" }, { name: "Patient" }, { name: "Age" }],
      rows: [
        {
          cells: ["p1", "MRN-77", "Jane Roe", "5d"],
          object: {
            apiVersion: "clinic.example.com/v1",
            kind: "Patient",
            metadata: { name: "p1", namespace: "ward" },
            spec: { name: "Jane Roe", mrn: "MRN-77" },
          },
        },
      ],
    };
    const v = m.maskJson(
      table,
      ctx({ apiGroup: "clinic.example.com", resource: "patients", namespace: "ward" }),
    ).value;
    const cells = get(v, "rows", 0, "cells") as Json[];
    expect(cells[0]).toBe("p1");
    expect(cells[1]).toBe("[MASKED:mrn]");
    expect(cells[2]).toMatch(/^\[PSEUDO:name:/);
    expect(cells[3]).toBe("5d");
    expect(get(v, "rows", 0, "object", "spec", "mrn")).toBe("[MASKED:mrn]");
    expect(get(v, "rows", 0, "object", "spec", "name")).toBe(cells[2]);
  });
});

describe("watch events", () => {
  const m = masker(makeConfig().masks);
  const cm = {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { name: "intake", namespace: "default", labels: { "custos.dev/patient": "true" } },
    data: { patient: "Patient Number1", note: "ok" },
  };
  const watchCtx = ctx({ verb: "watch", resource: "configmaps", namespace: "default" });
  it("on a watch stream, an event with more keys than type and object still has its object masked as the event's object", () => {
    for (const ev of [
      { type: "ADDED", object: cm, x: 1 },
      { x: "SSN 123-45-6789", type: "MODIFIED", object: cm },
      // keys that would make another shape of a plain body do not make a watch line one
      { type: "ADDED", object: cm, kind: "Status", items: [] },
      { type: "ADDED", object: cm, kind: "Table", rows: [] },
    ]) {
      const line = JSON.stringify(ev);
      const w = m.watchStream(watchCtx);
      let out = "";
      w.push(`${line}\n`, (b) => {
        out += b.toString();
      });
      const viaObject = m.maskJson(ev as unknown as Json, watchCtx).value as O;
      for (const v of [JSON.parse(out) as O, viaObject]) {
        expect(JSON.stringify(v), line).not.toContain("Patient Number1");
        expect(get(v, "object", "data", "note")).toBe("ok");
        // the other keys' values are scanned with the detectors
        expect(JSON.stringify(v), line).not.toContain("123-45-6789");
        expect(Object.keys(v)).toEqual(Object.keys(ev));
      }
      expect(JSON.parse(out)).toEqual(viaObject);
      expect(w.summary().rules).toContain("patient-labels");
    }
  });
});

describe("summary", () => {
  it("caps pointers at 200 and says so; counts stay exact", () => {
    const m = masker(makeConfig().masks);
    const items = Array.from({ length: 300 }, (_, i) => ({
      metadata: { name: `p${i}`, namespace: "phi-a" },
      spec: { containers: [{ name: "c", env: [{ name: "A", value: "v" }] }] },
    }));
    const r = m.maskJson({ kind: "PodList", items }, ctx({ verb: "list" }));
    expect(r.summary.paths.length).toBe(200);
    expect(r.summary.truncated).toBe(true);
    expect(r.summary.counts.env).toBe(300);
    expect(r.summary.paths[0]).toBe("/items/0/spec/containers/0/env/0/value");
  });
});

describe("text streams", () => {
  const m = masker(makeConfig().masks);
  it("logs: complete lines go out at once, only the unterminated tail is held", () => {
    const t = m.textStream(ctx({ subresource: "log" }));
    expect(t.push("line one\nline two 123-45-")).toBe("line one\n");
    expect(t.push("6789 end\nnext")).toBe("line two [MASKED:ssn] end\n");
    expect(t.end()).toBe("next");
  });
  it("logs: a tail longer than maxHold is flushed anyway (bounded memory), identifiers intact", () => {
    const t = m.textStream(ctx({ subresource: "log" }), { maxHold: 64 });
    const out = t.push("x".repeat(100) + " ssn 123-45-6789 " + "y".repeat(10));
    expect(out.length).toBeGreaterThan(0);
    const all = out + t.end();
    expect(all).toContain("[MASKED:ssn]");
    expect(all).not.toContain("6789");
  });
  it("exec: an identifier split across frames is caught; a shell prompt is not held", () => {
    const t = m.textStream(ctx({ subresource: "exec" }));
    let out = t.push("root@web-0:/# ");
    expect(out).toBe("root@web-0:/# ");
    out = t.push("cat f\r\nSSN 123-4");
    out += t.push("5-67");
    out += t.push("89\r\n");
    out += t.end();
    expect(out).toBe("cat f\r\nSSN [MASKED:ssn]\r\n");
  });
  it("exec: flush() emits held text (idle TTY), but not a number in progress", () => {
    const t = m.textStream(ctx({ subresource: "exec" }));
    expect(t.push("typing 555")).toBe("typing ");
    expect(t.flush()).toBe("");
    expect(t.push("x")).toBe("");
    expect(t.flush()).toBe("555x");
    // an SSN split across an idle gap is still caught whole
    const u = m.textStream(ctx({ subresource: "exec" }));
    let out = u.push("SSN 987-6");
    out += u.flush();
    out += u.push("5-4320 ok");
    out += u.flush();
    expect(out + u.end()).toBe("SSN [MASKED:ssn] ok");
  });
});

describe("fail closed", () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(MaskingError);
      return (e as MaskingError).code;
    }
    return "no error";
  };
  it("refuses protobuf, CBOR, YAML and missing content types; unknown compression", () => {
    expect(code(() => assertMaskableResponse({ contentType: "application/vnd.kubernetes.protobuf" }))).toBe(
      "MASK_UNREADABLE_ENCODING",
    );
    expect(
      code(() => assertMaskableResponse({ contentType: "application/vnd.kubernetes.protobuf;stream=watch" })),
    ).toBe("MASK_UNREADABLE_ENCODING");
    expect(code(() => assertMaskableResponse({ contentType: "application/cbor" }))).toBe(
      "MASK_UNREADABLE_ENCODING",
    );
    expect(code(() => assertMaskableResponse({ contentType: "application/yaml" }))).toBe(
      "MASK_UNREADABLE_ENCODING",
    );
    expect(code(() => assertMaskableResponse({ contentType: undefined }))).toBe("MASK_UNREADABLE_ENCODING");
    expect(
      code(() => assertMaskableResponse({ contentType: "application/json", contentEncoding: "zstd" })),
    ).toBe("MASK_UNKNOWN_COMPRESSION");
  });
  it("accepts JSON (watch streams too), text, and gzip it can undo", () => {
    expect(
      assertMaskableResponse({ contentType: "application/json;stream=watch", contentEncoding: "gzip" }),
    ).toEqual({ format: "json", stream: true, compression: ["gzip"] });
    expect(assertMaskableResponse({ contentType: "text/plain; charset=utf-8" }).format).toBe("text");
    const body = decodeBody(gzipSync(Buffer.from('{"a":1}')), ["gzip"]);
    expect(parseJsonBody(body)).toEqual({ a: 1 });
    expect(code(() => decodeBody(Buffer.from("not gzip"), ["gzip"]))).toBe("MASK_MALFORMED_JSON");
  });
  it("refuses malformed JSON and oversized watch events, with a Status the client can read", () => {
    expect(code(() => parseJsonBody("{nope"))).toBe("MASK_MALFORMED_JSON");
    const m = masker(makeConfig().masks);
    const w = m.watchStream(ctx({ verb: "watch" }), { maxEventBytes: 100 });
    expect(code(() => w.push("x".repeat(200), () => {}))).toBe("MASK_EVENT_TOO_LARGE");
    const w2 = m.watchStream(ctx({ verb: "watch" }));
    expect(code(() => w2.push("{broken\n", () => {}))).toBe("MASK_MALFORMED_JSON");
    try {
      parseJsonBody("{nope");
    } catch (e) {
      expect((e as MaskingError).httpStatus).toBe(502);
      expect((e as MaskingError).message).toContain("refused");
    }
  });
  it("reads bodies nested as deep as it says it does; refuses deeper ones with a Status naming the limit", () => {
    const m = masker(makeConfig().masks);
    const nested = (d: number) =>
      `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","namespace":"default"},"data":{"x":${"[".repeat(d)}"SSN 123-45-6789"${"]".repeat(d)}}}`;
    // a Table goes to the object walker, a ConfigMap through the text walker first
    for (const text of [
      nested(MAX_JSON_NESTING),
      `{"kind":"Table","rows":[{"cells":[],"object":${nested(MAX_JSON_NESTING)}}]}`,
    ]) {
      const out = m.maskJsonBytes(Buffer.from(text), ctx({ resource: "configmaps", namespace: "default" }));
      expect(out.body.toString()).not.toContain("123-45-6789");
    }
    const deep = nested(200_000);
    expect(code(() => m.maskJsonBytes(Buffer.from(deep), ctx({ resource: "configmaps" })))).toBe(
      "MASK_TOO_DEEP",
    );
    const w = m.watchStream(ctx({ verb: "watch", resource: "configmaps" }));
    let err: MaskingError | undefined;
    try {
      w.push(`{"type":"ADDED","object":${deep}}\n`, () => {});
    } catch (e) {
      err = e as MaskingError;
    }
    expect(err?.code).toBe("MASK_TOO_DEEP");
    expect(err?.httpStatus).toBe(502);
    expect(err?.message).toContain(`${MAX_JSON_NESTING} levels`);
  });
  it("rewrites Accept so the upstream answers JSON", () => {
    expect(maskableAccept("application/vnd.kubernetes.protobuf,application/json")).toBe("application/json");
    expect(maskableAccept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")).toBe(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    expect(maskableAccept("application/vnd.kubernetes.protobuf")).toBe("application/json");
  });
  it("refuses a config whose mask lists an unknown detector, and a short pseudonym key", () => {
    expect(
      code(() =>
        createMasker(
          makeConfig({ masks: [{ id: "m", match: {}, fields: [], detectors: ["nope"], source: src }] }),
          { pseudonymKey: KEY },
        ),
      ),
    ).toBe("MASK_CONFIG_INVALID");
    expect(() => createMasker(makeConfig(), { pseudonymKey: new Uint8Array(4) })).toThrow(/pseudonymKey/);
  });
  it("appliesTo says whether a response must be readable", () => {
    const none = createMasker(makeConfig({ masks: [], detectors: [] }), { pseudonymKey: KEY });
    expect(none.appliesTo(ctx())).toBe(false);
    expect(masker(makeConfig().masks).appliesTo(ctx())).toBe(true);
    const nr = (path: string) =>
      ctx({ isResourceRequest: false, path, verb: "get", resource: "", namespace: "" });
    const mm = masker(makeConfig().masks);
    for (const path of [
      "/api",
      "/apis",
      "/apis/apps/v1",
      "/api/v1",
      "/openapi/v3/apis/apps/v1",
      "/version",
      "/healthz",
      "/readyz/etcd",
    ]) {
      expect(mm.appliesTo(nr(path))).toBe(false);
    }
    expect(mm.appliesTo(nr("/metrics"))).toBe(true);
    expect(mm.appliesTo(nr("/logs/kube-apiserver.log"))).toBe(true);
  });
});
