/**
 * One masking contract, run against every response shape the gateway forwards: a single
 * object, a List, a paginated List, a server-side Table (cells and embedded objects), a watch
 * event (maskJson and the JSON-lines stream), a Status, an Event, logs, exec frames, a Secret,
 * and the last-applied annotation. Each shape carries the same planted patient; none of its
 * identifiers may survive, and what no mask targets must come out unchanged.
 */
import { describe, expect, it } from "vitest";
import { createMasker, type CustosMasker } from "../gateway/masking/index.ts";
import type { MaskSummary } from "../gateway/ports.ts";
import type { Json } from "../sdk/schema/config.ts";
import { ctx, makeConfig, type Patient, patient, pod, rng } from "./masking-fixtures.ts";

const KEY = new Uint8Array(32).fill(7);
const masker = createMasker(makeConfig(), { pseudonymKey: KEY });
const p: Patient = patient(rng(42), 1);
const planted = [p.ssn, p.mrn, p.phone, p.email, p.dob];

interface Out {
  text: string;
  summary: MaskSummary;
}

function note(x: Patient): string {
  return `Patient SSN ${x.ssn}, MRN: ${x.mrn}, phone ${x.phone}, email ${x.email}, DOB ${x.dob}.`;
}

function chunked(s: string, sizes: number[]): string[] {
  const out: string[] = [];
  let i = 0;
  let k = 0;
  while (i < s.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    out.push(s.slice(i, i + n));
    i += n;
  }
  return out;
}

const json = (m: CustosMasker, v: Json, c = ctx()): Out => {
  const r = m.maskJson(v, c);
  return { text: JSON.stringify(r.value), summary: r.summary };
};

/** every shape wraps the same patient */
const shapes: Record<string, (m: CustosMasker) => Out> = {
  object: (m) => json(m, pod(1, p)),
  list: (m) =>
    json(
      m,
      {
        kind: "PodList",
        apiVersion: "v1",
        metadata: { resourceVersion: "7" },
        items: [pod(1, p), pod(2, p)],
      },
      ctx({ verb: "list" }),
    ),
  "paginated list (page 2)": (m) =>
    json(
      m,
      {
        kind: "PodList",
        apiVersion: "v1",
        metadata: { resourceVersion: "7", continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzNDV9" },
        items: [pod(3, p)],
      },
      ctx({ verb: "list" }),
    ),
  "cluster-wide list": (m) =>
    json(
      m,
      { kind: "PodList", apiVersion: "v1", metadata: {}, items: [pod(1, p, "phi-b"), pod(2, p, "default")] },
      ctx({ verb: "list", namespace: "" }),
    ),
  table: (m) =>
    json(m, {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: { resourceVersion: "7" },
      columnDefinitions: [
        { name: "Name", type: "string", format: "name", description: "", priority: 0 },
        { name: "Note", type: "string", format: "", description: "", priority: 1 },
      ],
      rows: [{ cells: [`intake-1`, note(p)], object: pod(1, p) as { [k: string]: Json } }],
    }),
  "table without objects": (m) =>
    json(
      m,
      {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        metadata: {},
        columnDefinitions: [{ name: "Note", type: "string", format: "", description: "", priority: 0 }],
        rows: [{ cells: [note(p)] }],
      },
      ctx({ namespace: "" }),
    ),
  "watch event": (m) => json(m, { type: "MODIFIED", object: pod(1, p) }, ctx({ verb: "watch" })),
  "watch stream (split lines)": (m) => {
    const w = m.watchStream(ctx({ verb: "watch" }));
    const body = [
      { type: "ADDED", object: pod(1, p) },
      { type: "MODIFIED", object: pod(2, p) },
    ]
      .map((e) => JSON.stringify(e) + "\n")
      .join("");
    const outs: Buffer[] = [];
    const write = (b: Buffer) => outs.push(b);
    for (const c of chunked(body, [7, 300, 1, 4096])) w.push(c, write);
    w.end(write);
    const text = Buffer.concat(outs).toString("utf8");
    return { text, summary: w.summary() };
  },
  "table watch event": (m) =>
    json(m, {
      type: "ADDED",
      object: {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        metadata: {},
        columnDefinitions: [{ name: "Note", type: "string", format: "", description: "", priority: 0 }],
        rows: [
          {
            cells: [note(p)],
            object: {
              kind: "PartialObjectMetadata",
              apiVersion: "meta.k8s.io/v1",
              metadata: { name: "x", namespace: "phi-a" },
            },
          },
        ],
      },
    }),
  status: (m) =>
    json(m, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `admission webhook denied the request: ${note(p)}`,
      reason: "Invalid",
      details: {
        name: p.mrn.length > 0 ? `intake-${p.ssn}` : "x",
        kind: "pods",
        causes: [{ message: note(p), field: "spec" }],
      },
      code: 422,
    }),
  "error watch event": (m) =>
    json(m, {
      type: "ERROR",
      object: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: note(p),
        code: 500,
      },
    }),
  "event (describe)": (m) =>
    json(
      m,
      {
        kind: "EventList",
        apiVersion: "v1",
        metadata: {},
        items: [
          {
            metadata: { name: "intake-1.17a", namespace: "phi-a", uid: "0b2c", resourceVersion: "55" },
            involvedObject: { kind: "Pod", namespace: "phi-a", name: "intake-1", apiVersion: "v1" },
            reason: "Failed",
            message: `Error: ${note(p)}`,
            firstTimestamp: "2024-03-12T10:00:00Z",
            lastTimestamp: "2024-03-12T10:00:00Z",
            count: 1,
            type: "Warning",
          },
        ],
      },
      ctx({ resource: "events", verb: "list" }),
    ),
  "events.k8s.io event": (m) =>
    json(
      m,
      {
        kind: "Event",
        apiVersion: "events.k8s.io/v1",
        metadata: { name: "e", namespace: "phi-a" },
        regarding: { kind: "Pod", namespace: "phi-a", name: "intake-1" },
        note: note(p),
        eventTime: "2024-03-12T10:00:00.000000Z",
      },
      ctx({ apiGroup: "events.k8s.io", resource: "events" }),
    ),
  "last-applied annotation": (m) =>
    json(
      m,
      {
        kind: "ConfigMap",
        apiVersion: "v1",
        metadata: {
          name: "cm",
          namespace: "phi-a",
          annotations: {
            "kubectl.kubernetes.io/last-applied-configuration":
              JSON.stringify({ kind: "ConfigMap", data: { note: note(p) } }) + "\n",
          },
        },
        data: { note: note(p) },
      },
      ctx({ resource: "configmaps" }),
    ),
  "secret (base64 data)": (m) => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const r = m.maskJson(
      {
        kind: "Secret",
        apiVersion: "v1",
        metadata: { name: "s", namespace: "phi-a" },
        type: "Opaque",
        data: { ssn: b64(p.ssn), mrn: b64(p.mrn), note: b64(note(p)) },
      },
      ctx({ resource: "secrets" }),
    );
    // decode every data value so a base64-encoded identifier cannot hide from the assertion
    const data = (r.value as { data: Record<string, string> }).data;
    return {
      text:
        JSON.stringify(r.value) +
        Object.values(data)
          .map((v) => Buffer.from(v, "base64").toString())
          .join("\n"),
      summary: r.summary,
    };
  },
  "secret stringData (request body)": (m) =>
    json(
      m,
      {
        kind: "Secret",
        apiVersion: "v1",
        metadata: { name: "s", namespace: "phi-a" },
        stringData: { note: note(p) },
      },
      ctx({ resource: "secrets", verb: "create" }),
    ),
  logs: (m) => {
    const t = m.textStream(ctx({ resource: "pods", subresource: "log" }));
    const body = `2024-03-12T10:00:00.000Z INFO start\n2024-03-12T10:00:01.000Z INFO ${note(p)}\nlast line without newline ${p.ssn}`;
    let text = "";
    for (const c of chunked(body, [5, 17, 3])) text += t.push(c);
    text += t.end();
    return { text, summary: t.summary() };
  },
  "exec frames": (m) => {
    const t = m.textStream(ctx({ resource: "pods", subresource: "exec" }));
    const body = `$ cat /data/patient.txt\r\n${note(p)}\r\n$ `;
    let text = "";
    for (const c of chunked(body, [1, 2, 3, 11])) text += t.push(c);
    text += t.end();
    return { text, summary: t.summary() };
  },
};

describe.each(Object.entries(shapes))("masking contract: %s", (_name, run) => {
  it("lets no planted identifier through", () => {
    const { text } = run(masker);
    for (const v of planted) expect(text).not.toContain(v);
  });
  it("says what was masked, and the summary holds no value", () => {
    const { text, summary } = run(masker);
    expect(text).toMatch(/\[(MASKED|PSEUDO):[a-z-]+/);
    expect(summary.rules.length).toBeGreaterThan(0);
    expect(Object.values(summary.counts).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    const s = JSON.stringify(summary);
    for (const v of planted) expect(s).not.toContain(v);
    for (const ptr of summary.paths) expect(ptr).toMatch(/^(\/([^~/]|~[01])*)*$/);
  });
  it("is deterministic for one key", () => {
    expect(run(masker).text).toBe(run(masker).text);
  });
});

describe("masking contract: unmasked fields are unchanged", () => {
  it("keeps Kubernetes metadata, status and key order byte for byte", () => {
    const input = pod(1, p) as { [k: string]: Json };
    const before = JSON.stringify(input);
    const out = masker.maskJson(input, ctx()).value as { [k: string]: { [k: string]: Json } };
    expect(JSON.stringify(input)).toBe(before); // input never mutated
    const inMeta = input.metadata as { [k: string]: Json };
    for (const k of [
      "name",
      "namespace",
      "uid",
      "resourceVersion",
      "creationTimestamp",
      "generation",
      "labels",
    ]) {
      expect(JSON.stringify(out.metadata![k])).toBe(JSON.stringify(inMeta[k]));
    }
    expect(JSON.stringify(out.status)).toBe(JSON.stringify(input.status));
    expect(Object.keys(out)).toEqual(Object.keys(input));
    expect(Object.keys(out.metadata!)).toEqual(Object.keys(inMeta).filter((k) => k !== "managedFields"));
    const spec = out.spec as {
      containers: { image: string; ports: Json; env: { name: string; value: string }[] }[];
    };
    const inSpec = input.spec as typeof spec;
    expect(spec.containers[0]!.image).toBe(inSpec.containers[0]!.image);
    expect(spec.containers[0]!.ports).toBe(inSpec.containers[0]!.ports); // same reference: untouched subtree
    expect(spec.containers[0]!.env.map((e) => e.name)).toEqual(inSpec.containers[0]!.env.map((e) => e.name));
  });

  it("returns the very same object when nothing applies", () => {
    const cm = {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "plain", namespace: "default" },
      data: { a: "hello", n: "42" },
    };
    const r = masker.maskJson(cm, ctx({ namespace: "default", resource: "configmaps" }));
    expect(r.value).toBe(cm);
    expect(r.summary).toEqual({ rules: [], paths: [], truncated: false, counts: {} });
  });
});
