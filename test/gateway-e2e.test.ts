/**
 * End to end: real kubectl 1.32 and @kubernetes/client-node 1.4 through the gateway to the
 * Kubernetes API simulator, with the real masking stage. Every line of "Proxying everything
 * kubectl does" plus denials, 401s and header stripping.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import tls from "node:tls";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import type { RunningGateway } from "../gateway/server/gateway.ts";
import { Upstream } from "../gateway/upstream/index.ts";
import { type Simulator, startSimulator } from "../simulator/index.ts";
import {
  AGENT_TOKEN,
  kubectl,
  NOBODY_TOKEN,
  PLANTED,
  refusingSink,
  SRC,
  startTestGateway,
  type TestGateway,
  testPolicy,
  withHash,
} from "./gateway-helpers.ts";

const SIM_TOKEN = "sim-admin-token-abcdef";

function policyWithDetector() {
  const { policyHash: _h, ...base } = testPolicy();
  return withHash({
    ...base,
    // exec sessions under this policy are recorded (masked asciicast artefact)
    rules: base.rules.map((r) => (r.id === "agents-exec" ? { ...r, recordSession: true } : r)),
    detectors: [
      {
        id: "patient-name",
        category: "name",
        pattern: "Jane Roe",
        flags: "",
        strategy: { kind: "redact" },
        label: "name",
        scope: "everywhere",
        source: SRC,
      },
    ],
  });
}

const seed = [
  {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-0",
      namespace: "default",
      annotations: {
        "sim.custos.dev/logs": `booting\nadmitted patient ${PLANTED}\nready\n`,
        "sim.custos.dev/logs-follow": `tick ${PLANTED}\n`,
        "sim.custos.dev/exec": JSON.stringify({ "ls -l /": { stdout: `total 0\nowner ${PLANTED}\n` } }),
        "sim.custos.dev/ports": JSON.stringify({ "80": "echo" }),
      },
    },
    spec: {
      containers: [
        {
          name: "main",
          image: "nginx",
          env: [{ name: "PATIENT", value: PLANTED }],
          ports: [{ containerPort: 80 }],
        },
      ],
    },
  },
  ...[1, 2, 3].map((i) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `web-${i}`, namespace: "default" },
    spec: { containers: [{ name: "main", image: "nginx" }] },
  })),
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "db", namespace: "default" },
    stringData: { password: "hunter2" },
  },
];

let sim: Simulator;
let t: TestGateway;
let gw: RunningGateway;
let agentKc: string;

beforeAll(async () => {
  sim = await startSimulator({ token: SIM_TOKEN, seed, logIntervalMs: 100 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  t = await startTestGateway(new Upstream(kc, { timeoutMs: 10_000 }), {
    config: policyWithDetector(),
    maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(3) }),
  });
  gw = t.gw;
  agentKc = await t.kubeconfig(AGENT_TOKEN);
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

function noPlanted(s: string) {
  expect(s).not.toContain(PLANTED);
}

/** spawn kubectl; resolves once `want` appears on stdout (then kills it) */
function kubectlUntil(kc: string, args: string[], want: RegExp, onStart?: () => void): Promise<string> {
  const cache = path.join(path.dirname(kc), `cache-${path.basename(kc)}`);
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn("kubectl", ["--kubeconfig", kc, "--cache-dir", cache, ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.dirname(kc) },
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out waiting for ${want}: stdout=${out} stderr=${err}`));
    }, 15_000);
    let started = false;
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      if (!started && out.length > 0) {
        started = true;
        onStart?.();
      }
      if (want.test(out)) {
        clearTimeout(timer);
        child.kill("SIGTERM");
        resolve(out);
      }
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
  });
}

describe("kubectl through the gateway", () => {
  it("get pods (Table), -o json, pagination with continue", async () => {
    const table = await kubectl(agentKc, ["get", "pods"]);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/NAME\s+READY\s+STATUS/);
    expect(table.stdout).toContain("web-3");
    const j = await kubectl(agentKc, ["get", "pods", "-o", "json"]);
    expect(j.code).toBe(0);
    noPlanted(j.stdout);
    const items = JSON.parse(j.stdout).items as {
      metadata: { name: string };
      spec: { containers: { env?: { value: string }[] }[] };
    }[];
    expect(items.map((p) => p.metadata.name).sort()).toEqual(["web-0", "web-1", "web-2", "web-3"]);
    expect(items.find((p) => p.metadata.name === "web-0")!.spec.containers[0]!.env![0]!.value).toBe(
      "[MASKED:name]",
    );
    const before = sim.requests.length;
    const paged = await kubectl(agentKc, ["get", "pods", "--chunk-size=1", "-o", "name"]);
    expect(paged.stdout.trim().split("\n")).toEqual(["pod/web-0", "pod/web-1", "pod/web-2", "pod/web-3"]);
    expect(
      sim.requests.slice(before).filter((r) => r.url.includes("continue=")).length,
    ).toBeGreaterThanOrEqual(3);
    // the upstream saw the gateway's identity only
    const seen = sim.requests.slice(before);
    expect(seen.every((r) => r.user === "system:admin")).toBe(true);
    expect(
      seen.some((r) => Object.keys(r.headers).some((h) => h.toLowerCase().startsWith("impersonate-"))),
    ).toBe(false);
  });

  it("get -o yaml of one object is masked", async () => {
    const y = await kubectl(agentKc, ["get", "pod", "web-0", "-o", "yaml"]);
    expect(y.code).toBe(0);
    expect(y.stdout).toContain("[MASKED:name]");
    noPlanted(y.stdout);
  });

  it("describe (protobuf Accept is rewritten to JSON) is masked", async () => {
    const before = sim.requests.length;
    const d = await kubectl(agentKc, ["describe", "pod", "web-0"]);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/Name:\s+web-0/);
    expect(d.stdout).toContain("[MASKED:name]");
    noPlanted(d.stdout);
    expect(sim.requests.slice(before).some((r) => String(r.headers.accept ?? "").includes("protobuf"))).toBe(
      false,
    );
  });

  it("apply (create, client-side update, server-side), patch, delete", async () => {
    const f = path.join(t.dir, "cm.yaml");
    await writeFile(
      f,
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-cm\n  namespace: default\ndata:\n  a: one\n",
    );
    const c = await kubectl(agentKc, ["apply", "-f", f]);
    expect(c.stderr).toBe("");
    expect(c.stdout).toContain("configmap/demo-cm created");
    await writeFile(
      f,
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-cm\n  namespace: default\ndata:\n  a: one\n  b: two\n",
    );
    const u = await kubectl(agentKc, ["apply", "-f", f]);
    expect(u.stdout).toContain("configmap/demo-cm configured");
    const ss = await kubectl(agentKc, ["apply", "--server-side", "-f", f]);
    expect(ss.code).toBe(0);
    const p = await kubectl(agentKc, [
      "patch",
      "configmap",
      "demo-cm",
      "--type=merge",
      "-p",
      '{"data":{"c":"three"}}',
    ]);
    expect(p.stdout).toContain("patched");
    const g = await kubectl(agentKc, ["get", "configmap", "demo-cm", "-o", "jsonpath={.data}"]);
    expect(JSON.parse(g.stdout)).toEqual({ a: "one", b: "two", c: "three" });
    const d = await kubectl(agentKc, ["delete", "-f", f]);
    expect(d.stdout).toContain("deleted");
    const recs = (await t.records()).filter(
      (r) => r.objectRef?.resource === "configmaps" && r.verb !== "get",
    );
    expect(recs.map((r) => r.verb)).toEqual(expect.arrayContaining(["create", "patch", "delete"]));
  });

  it("auth can-i is answered from custos policy (protobuf body), never forwarded", async () => {
    const before = sim.requests.length;
    const yes = await kubectl(agentKc, ["auth", "can-i", "get", "pods"]);
    expect(yes.stdout.trim()).toBe("yes");
    const no = await kubectl(agentKc, ["auth", "can-i", "delete", "pods"]);
    // kubectl prints the review's reason after "no": custos names the deciding rule
    expect(no.stdout.trim()).toMatch(/^no - custos rule approve-pod-delete: requires approval/);
    expect(no.code).toBe(1);
    const sec = await kubectl(agentKc, ["auth", "can-i", "get", "secrets"]);
    expect(sec.stdout.trim()).toMatch(/^no - custos rule no-secrets/);
    const list = await kubectl(agentKc, ["auth", "can-i", "--list"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/Resources/);
    const who = await kubectl(agentKc, ["auth", "whoami", "-o", "json"]);
    expect(JSON.parse(who.stdout).status.userInfo).toMatchObject({
      username: "agent-1",
      groups: ["agents", "ci"],
    });
    const nobody = await kubectl(await t.kubeconfig(NOBODY_TOKEN), ["auth", "can-i", "get", "pods"]);
    expect(nobody.stdout.trim()).toMatch(/^no - custos rule default-deny/);
    expect(sim.requests.slice(before).some((r) => r.url.includes("selfsubject"))).toBe(false);
    const rules = (await t.records())
      .filter((r) => r.objectRef?.resource === "selfsubjectaccessreviews")
      .map((r) => r.annotations?.["custos.dev/self-review-rule"]);
    expect(rules).toEqual(["agents-read", "approve-pod-delete", "no-secrets", "default-deny"]);
  });

  it("watch: events arrive while the watch is open", async () => {
    const out = await kubectlUntil(
      agentKc,
      ["get", "pods", "-w", "-o", "name", "--request-timeout=0"],
      /pod\/web-9/,
      () => {
        setTimeout(() => {
          sim.load([
            {
              apiVersion: "v1",
              kind: "Pod",
              metadata: { name: "web-9", namespace: "default" },
              spec: { containers: [{ name: "main", image: "x" }] },
            },
          ]);
        }, 300);
      },
    );
    expect(out).toContain("pod/web-0");
    expect(out).toContain("pod/web-9");
  });

  it("logs and logs -f are masked line by line", async () => {
    const l = await kubectl(agentKc, ["logs", "web-0"]);
    expect(l.code).toBe(0);
    expect(l.stdout).toContain("admitted patient [MASKED:name]");
    noPlanted(l.stdout);
    const f = await kubectlUntil(agentKc, ["logs", "-f", "web-0"], /tick \[MASKED:name\]/);
    noPlanted(f);
  });

  it("exec (WebSocket v5) with stdout masked, and with stdin", async () => {
    const e = await kubectl(agentKc, ["exec", "web-0", "--", "ls", "-l", "/"]);
    expect(e.stderr).toBe("");
    expect(e.stdout).toBe("total 0\nowner [MASKED:name]\n");
    const i = await kubectl(agentKc, ["exec", "-i", "web-0", "--", "cat"], { input: `hello ${PLANTED}\n` });
    expect(i.stdout).toContain("hello [MASKED:name]");
    // the session's record is written when the upstream closes, which may be just after kubectl exits
    const execRecords = async () =>
      (await t.records()).filter((r) => r.objectRef?.subresource === "exec" && r.custos.type === "call");
    for (let i = 0; i < 50 && (await execRecords()).length < 2; i++)
      await new Promise((r) => setTimeout(r, 50));
    const rec = (await execRecords())[1]!;
    expect(rec).toMatchObject({
      verb: "create",
      responseStatus: { code: 101 },
      custos: { ruleId: "agents-exec" },
    });
    expect(rec.custos.bytes!.in).toBeGreaterThan(0);
    expect(rec.custos.masking?.counts).toBeDefined();
    // the command line is in the query string: evidence keeps it masked
    const withPlanted = await kubectl(agentKc, ["exec", "web-0", "--", "echo", PLANTED]);
    expect(withPlanted.stdout).toBe("[MASKED:name]\n");
    for (let i = 0; i < 50 && (await execRecords()).length < 3; i++)
      await new Promise((r) => setTimeout(r, 50));
    noPlanted(JSON.stringify(await t.records()));
    const cast = rec.annotations?.["custos.dev/session-recording"];
    expect(cast).toBe(`${rec.auditID}.cast`);
    const content = await readFile(path.join(t.dir, `${rec.auditID}-${cast}`), "utf8");
    expect(content).toContain("hello [MASKED:name]");
    noPlanted(content);
    // the recording of `echo <planted>` names its command masked too (the header is stored)
    const echo = (await execRecords())[2]!;
    const echoCast = await readFile(
      path.join(t.dir, `${echo.auditID}-${echo.annotations?.["custos.dev/session-recording"]}`),
      "utf8",
    );
    const header = JSON.parse(echoCast.split("\n")[0]!);
    expect(header.custos.command).toEqual(["echo", "[MASKED:name]"]);
    noPlanted(echoCast);
  });

  it("a required recording that cannot be kept closes the session: nothing unrecorded reaches the agent", async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(sim.kubeconfig());
    const small = await startTestGateway(new Upstream(kc, { timeoutMs: 10_000 }), {
      config: policyWithDetector(),
      maskerFactory: (c) => createMasker(c, { pseudonymKey: new Uint8Array(32).fill(3) }),
      limits: { maxRecordingBytes: 400 },
    });
    try {
      const lines = Array.from({ length: 40 }, (_, i) => `line ${String(i).padStart(2, "0")} of the session`);
      const r = await kubectl(await small.kubeconfig(AGENT_TOKEN), ["exec", "-i", "web-0", "--", "cat"], {
        input: `${lines.join("\n")}\n`,
      });
      // the recording limit is hit long before the end: the rest never reaches kubectl
      expect(r.stdout).not.toContain(lines.at(-1));
      const execRecords = async () =>
        (await small.records()).filter(
          (x) => x.objectRef?.subresource === "exec" && x.custos.type === "call",
        );
      for (let i = 0; i < 50 && (await execRecords()).length < 1; i++)
        await new Promise((res) => setTimeout(res, 50));
      const rec = (await execRecords())[0]!;
      expect(rec.annotations?.["custos.dev/session-recording-error"]).toBe("MASK_RECORDING_FAILED");
      expect(rec.annotations?.["custos.dev/session-recording"]).toBeUndefined();
    } finally {
      await small.close();
    }
  });

  it("an exec session whose opening record cannot be written never reaches the API server", async () => {
    // a sink that takes call records but refuses the session-opened one (disk full just then)
    const flaky = refusingSink((r) => r.custos.type === "session");
    const kept = () =>
      flaky.accepted.map(
        (r) => `${r.custos.type}:${r.objectRef?.subresource ?? ""}:${r.responseStatus.code}`,
      );
    const kc = new k8s.KubeConfig();
    kc.loadFromString(sim.kubeconfig());
    const upstream = new Upstream(kc, { timeoutMs: 10_000 });
    // opening the upstream WebSocket would already run the command: count every attempt
    let wsAttempts = 0;
    const wsOptions = upstream.wsOptions.bind(upstream);
    upstream.wsOptions = () => {
      wsAttempts++;
      return wsOptions();
    };
    const g = await startTestGateway(upstream, { config: policyWithDetector(), sink: flaky });
    try {
      const x = await kubectl(await g.kubeconfig(AGENT_TOKEN), ["exec", "web-0", "--", "ls", "-l", "/"]);
      expect(x.code).not.toBe(0);
      expect(x.stdout).toBe("");
      expect(wsAttempts).toBe(0);
      // the refusal itself is the call's one record
      expect(kept()).toContain("call:exec:503");
    } finally {
      await g.close();
    }
  });

  it("denials name the rule; bad tokens are 401", async () => {
    const s = await kubectl(agentKc, ["get", "secret", "db"]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("Forbidden");
    expect(s.stderr).toContain("no-secrets");
    expect(s.stderr).toContain("ask the platform team");
    const ex = await kubectl(await t.kubeconfig(NOBODY_TOKEN), ["exec", "web-0", "--", "ls"]);
    expect(ex.code).not.toBe(0);
    expect(ex.stderr).toContain("default-deny");
    const bad = await kubectl(await t.kubeconfig("not-a-valid-token"), ["get", "pods"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Unauthorized|logged in/);
  });

  it("a refused WebSocket upgrade keeps its reason through kubectl's SPDY fallback", async () => {
    const e = await kubectl(agentKc, ["exec", "web-0", "-c", "nope", "--", "ls"]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain("container nope is not valid");
    expect(e.stderr).not.toContain("kubectl 1.30 or later");
    // kubectl 1.32 tunnels SPDY in WebSocket for port-forward; the simulator serves v4 channels only,
    // so its refusal (not a generic one) must reach the user
    const pf = await kubectl(agentKc, ["port-forward", "pod/web-0", "0:80"], { timeoutMs: 10_000 });
    expect(pf.code).toBe(1);
    expect(pf.stderr).toContain("WebSocket upgrade failed");
  });

  it("purpose from the kubeconfig server URL path", async () => {
    const kc = await t.kubeconfig(AGENT_TOKEN, { serverSuffix: "/purpose/incident-42" });
    const r = await kubectl(kc, ["get", "pod", "web-1", "-o", "name"]);
    expect(r.stdout.trim()).toBe("pod/web-1");
    const rec = (await t.records()).filter((x) => x.objectRef?.name === "web-1").pop()!;
    expect(rec.custos.purpose).toBe("incident-42");
  });
});

describe("@kubernetes/client-node through the gateway", () => {
  const client = async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(agentKc);
    return kc;
  };
  it("list, read, log", async () => {
    const kc = await client();
    const api = kc.makeApiClient(k8s.CoreV1Api);
    const list = await api.listNamespacedPod({ namespace: "default" });
    expect(list.items.length).toBeGreaterThanOrEqual(4);
    const pod = await api.readNamespacedPod({ name: "web-0", namespace: "default" });
    expect(pod.spec?.containers[0]?.env?.[0]?.value).toBe("[MASKED:name]");
    const log = await api.readNamespacedPodLog({ name: "web-0", namespace: "default" });
    expect(log).toContain("[MASKED:name]");
    noPlanted(log);
    await expect(api.readNamespacedSecret({ name: "db", namespace: "default" })).rejects.toMatchObject({
      code: 403,
    });
  });

  it("Exec over WebSocket", async () => {
    const kc = await client();
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => {
      text += c.toString();
    });
    const status = await new Promise<k8s.V1Status>((resolve, reject) => {
      new k8s.Exec(kc)
        .exec("default", "web-0", "main", ["ls", "-l", "/"], out, null, null, false, (s) => resolve(s))
        .catch(reject);
    });
    expect(status.status).toBe("Success");
    expect(text).toBe("total 0\nowner [MASKED:name]\n");
  });

  it("Watch gets events as they happen", async () => {
    const kc = await client();
    const seen: string[] = [];
    const ctl = await new k8s.Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      {},
      (type, obj: k8s.V1Pod) => {
        seen.push(`${type}:${obj.metadata?.name}`);
      },
      () => {},
    );
    sim.load([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web-10", namespace: "default" },
        spec: { containers: [{ name: "main", image: "x" }] },
      },
    ]);
    const deadline = Date.now() + 5000;
    while (!seen.includes("ADDED:web-10") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    ctl.abort();
    expect(seen).toContain("ADDED:web-0");
    expect(seen).toContain("ADDED:web-10");
  });

  it("PortForward (v4 channels): bytes relayed and counted", async () => {
    const kc = await client();
    const input = new PassThrough();
    const output = new PassThrough();
    let got = "";
    output.on("data", (c: Buffer) => {
      got += c.toString();
    });
    const ws = (await new k8s.PortForward(kc, true).portForward(
      "default",
      "web-0",
      [80],
      output,
      null,
      input,
    )) as unknown as { close(): void };
    input.write("ping\n");
    const deadline = Date.now() + 5000;
    while (!got.includes("ping") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    ws.close();
    expect(got).toContain("ping");
    const pf = async () => (await t.records()).filter((r) => r.objectRef?.subresource === "portforward");
    for (let i = 0; i < 50 && (await pf()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const rec = (await pf()).pop()!;
    expect(rec.custos.ruleId).toBe("agents-exec");
    expect(rec.custos.bytes!.in).toBeGreaterThan(0);
    expect(rec.custos.bytes!.out).toBeGreaterThan(0);
  });
});

describe("exec over v4.channel.k8s.io", () => {
  it("relays and masks stdout with the older channel protocol", async () => {
    const { default: WebSocket } = await import("ws");
    const u = new URL(gw.url);
    const ws = new WebSocket(
      `wss://${u.host}/api/v1/namespaces/default/pods/web-0/exec?command=ls&command=-l&command=%2F&container=main&stdout=true&stderr=true`,
      ["v4.channel.k8s.io"],
      { ca: gw.caPem, headers: { authorization: `Bearer ${AGENT_TOKEN}` } },
    );
    const frames: { ch: number; text: string }[] = [];
    ws.on("message", (d: Buffer) => frames.push({ ch: d[0]!, text: d.subarray(1).toString() }));
    await new Promise<void>((resolve, reject) => {
      ws.on("close", () => resolve());
      ws.on("error", reject);
    });
    expect(ws.protocol).toBe("v4.channel.k8s.io");
    const stdout = frames
      .filter((f) => f.ch === 1)
      .map((f) => f.text)
      .join("");
    expect(stdout).toBe("total 0\nowner [MASKED:name]\n");
    expect(JSON.parse(frames.find((f) => f.ch === 3)!.text).status).toBe("Success");
  });
});

describe("SPDY upgrades", () => {
  it("are refused with a Status telling the user to use kubectl >= 1.30", async () => {
    const u = new URL(gw.url);
    const reply = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: gw.caPem }, () => {
        s.write(
          `POST /api/v1/namespaces/default/pods/web-0/exec?command=ls&stdout=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${AGENT_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
        );
      });
      let buf = "";
      s.on("data", (c: Buffer) => {
        buf += c.toString();
      });
      s.on("end", () => resolve(buf));
      s.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1.1 400/);
    expect(reply).toContain("kubectl 1.30 or later");
  });
});
