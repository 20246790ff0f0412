/**
 * `kubectl get` asks for server-side Tables, whose rows kube-apiserver embeds only the object's
 * metadata in by default: a printer column showing a masked field (a CRD's "Patient" column
 * printing `.spec.patientName`) can then be matched by neither its name nor its value. The
 * gateway asks the upstream for the whole row objects whenever a field mask can apply, masks
 * the cells by value, and gives each row the object the client asked for. Real kubectl 1.32
 * through the gateway to the simulator; the names are synthetic.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import { patientsCrd } from "../simulator/seed/crds.ts";
import {
  AGENT_TOKEN,
  call,
  kubectl,
  startTestGateway,
  type TestGateway,
  testPolicy,
  withHash,
} from "./gateway-helpers.ts";
import { redactFieldMask } from "./masking-fixtures.ts";

const SIM_TOKEN = "sim-admin-token-tables";
const NAMES = ["Patient Number1", "Patient Number2", "Patient Number3"];
const MASKED = "[MASKED:patient-name]";
const T_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const PATIENTS = "/apis/clinic.example.com/v1/namespaces/ward-a/patients";

const crd = patientsCrd([
  { name: "Patient", type: "string", jsonPath: ".spec.patientName" },
  { name: "Bed", type: "string", jsonPath: ".spec.bed" },
  { name: "Attending", type: "string", jsonPath: ".spec.patientName", priority: 1 },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
]);

const patient = (name: string, who: string, bed: string) => ({
  apiVersion: "clinic.example.com/v1",
  kind: "Patient",
  metadata: { name, namespace: "ward-a", labels: { app: "intake" } },
  spec: { patientName: who, bed },
});

let sim: Simulator;
let t: TestGateway;
let kc: string;
const printed: string[] = [];

beforeAll(async () => {
  sim = await startSimulator({
    token: SIM_TOKEN,
    seed: [
      crd,
      patient("p1", NAMES[0]!, "b-12"),
      patient("p2", NAMES[1]!, "b-14"),
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "settings", namespace: "ward-a" },
        data: { mode: "day" },
      },
    ],
  });
  const { policyHash: _h, ...base } = testPolicy();
  const config = withHash({
    ...base,
    masks: [
      redactFieldMask(
        "patient-names",
        { apiGroups: ["clinic.example.com"], resources: ["patients"] },
        "spec.patientName",
        "patient-name",
      ),
    ],
    detectors: [],
  });
  const skc = new k8s.KubeConfig();
  skc.loadFromString(sim.kubeconfig());
  t = await startTestGateway(new Upstream(skc, { timeoutMs: 10_000 }), {
    config,
    maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(5) }),
  });
  kc = await t.kubeconfig(AGENT_TOKEN);
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

function noNames(s: string) {
  for (const n of NAMES) expect(s).not.toContain(n);
}

async function k(args: string[]) {
  const r = await kubectl(kc, args);
  printed.push(r.stdout, r.stderr);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** spawn kubectl; resolves once `want` holds for its stdout (then kills it) */
function kubectlUntil(args: string[], want: (out: string) => boolean, onStart: () => void): Promise<string> {
  const cache = path.join(path.dirname(kc), `cache-${path.basename(kc)}`);
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn("kubectl", ["--kubeconfig", kc, "--cache-dir", cache, ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.dirname(kc) },
    });
    let out = "";
    let err = "";
    let started = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out: stdout=${out} stderr=${err}`));
    }, 15_000);
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      if (!started) {
        started = true;
        onStart();
      }
      if (want(out)) {
        clearTimeout(timer);
        child.kill("SIGTERM");
        printed.push(out, err);
        resolve(out);
      }
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
  });
}

describe("a printer column showing a masked field (kubectl get)", () => {
  it("get, -o wide, --show-labels across namespaces: the cells are masked, the metadata-only rows still work", async () => {
    const out = await k(["get", "patients", "-n", "ward-a"]);
    expect(out).toMatch(/NAME\s+PATIENT\s+BED\s+AGE/);
    expect(out).toMatch(/p1\s+\[MASKED:patient-name\]\s+b-12/);
    expect(out).toMatch(/p2\s+\[MASKED:patient-name\]\s+b-14/);
    const wide = await k(["get", "pt", "-n", "ward-a", "-o", "wide"]);
    expect(wide).toMatch(/NAME\s+PATIENT\s+BED\s+ATTENDING\s+AGE/);
    expect(wide.match(/\[MASKED:patient-name\]/g)?.length).toBe(4);
    // the namespace column and the labels come from each row's PartialObjectMetadata
    const all = await k(["get", "patients", "-A", "--show-labels", "-L", "app"]);
    expect(all).toMatch(/NAMESPACE\s+NAME\s+PATIENT\s+BED\s+AGE\s+APP\s+LABELS/);
    expect(all).toMatch(/ward-a\s+p1\s+\[MASKED:patient-name\]\s+b-12\s+\S+\s+intake\s+app=intake/);
    for (const o of [out, wide, all]) noNames(o);
  });

  it("get -w: the events of a Table watch are masked too", async () => {
    const out = await kubectlUntil(
      ["get", "patients", "-n", "ward-a", "-w", "--request-timeout=0"],
      (o) => /p3\s+\[MASKED:patient-name\]\s+b-20/.test(o),
      () => {
        setTimeout(() => {
          sim.load([patient("p3", NAMES[2]!, "b-20")]);
        }, 300);
      },
    );
    expect(out).toMatch(/p1\s+\[MASKED:patient-name\]/);
    noNames(out);
  });

  it("each row carries the object the client asked for, masked; the upstream was asked for whole objects", async () => {
    const before = sim.requests.length;
    const get = async (q: string, accept = T_V1) => {
      const r = await call(t.gw.url, "GET", `${PATIENTS}${q}`, { token: AGENT_TOKEN, headers: { accept } });
      expect(r.status).toBe(200);
      noNames(r.body);
      return JSON.parse(r.body) as {
        rows: Array<{ cells: unknown[]; object?: Record<string, unknown> | null }>;
      };
    };
    // Metadata (the default): a PartialObjectMetadata of the masked object, as kube-apiserver writes it
    const meta = await get("");
    const row = meta.rows.find((r) => r.cells[0] === "p1")!;
    expect(row.cells[1]).toBe(MASKED);
    expect(Object.keys(row.object!)).toEqual(["kind", "apiVersion", "metadata"]);
    expect(row.object).toMatchObject({
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1",
      metadata: { name: "p1", namespace: "ward-a", labels: { app: "intake" } },
    });
    // (masked metadata: managedFields go whenever a mask applies)
    expect((row.object!.metadata as Record<string, unknown>).managedFields).toBeUndefined();
    const beta = await get("", "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json");
    expect(beta.rows[0]!.object).toMatchObject({
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1beta1",
    });
    const none = await get("?includeObject=None");
    expect(none.rows[0]!.cells[1]).toBe(MASKED);
    expect(none.rows.every((r) => r.object === null)).toBe(true);
    const obj = await get("?includeObject=Object");
    expect(obj.rows[0]!.object).toMatchObject({ kind: "Patient", spec: { patientName: MASKED } });
    const one = await get("/p2");
    expect(one.rows[0]!.cells[1]).toBe(MASKED);
    const seen = sim.requests.slice(before).map((r) => r.url);
    expect(seen.length).toBe(5);
    for (const u of seen)
      expect(new URL(u, "https://x").searchParams.getAll("includeObject")).toEqual(["Object"]);
  });

  it("a Table no field mask can touch is asked for as the client asked (no whole objects from the upstream)", async () => {
    const before = sim.requests.length;
    const out = await k(["get", "configmaps", "-n", "ward-a"]);
    expect(out).toContain("settings");
    const r = await call(t.gw.url, "GET", "/api/v1/namespaces/ward-a/configmaps?includeObject=None", {
      token: AGENT_TOKEN,
      headers: { accept: T_V1 },
    });
    expect(JSON.parse(r.body).rows[0].object).toBeNull();
    const urls = sim.requests
      .slice(before)
      .map((x) => x.url)
      .filter((u) => u.includes("/configmaps"));
    expect(urls).toEqual([
      expect.not.stringContaining("includeObject"),
      "/api/v1/namespaces/ward-a/configmaps?includeObject=None",
    ]);
  });

  it("nothing kubectl printed holds a name", () => {
    noNames(printed.join("\n"));
  });
});
