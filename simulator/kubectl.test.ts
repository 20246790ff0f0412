/**
 * Real kubectl 1.32 against the simulator (seeded with the demo seed). Each kubectl run
 * gets the same temporary kubeconfig and discovery cache directory.
 */
import { execFile, spawn } from "node:child_process";
import { connect } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSeed, type Simulator, startSimulator } from "./index.ts";
import { DEMO_SEED_PATH, PLANTED } from "./seed/planted.ts";

let sim: Simulator;
let dir: string;
let kubeconfig: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubectl(
  args: string[],
  opts: { input?: string; kubeconfigPath?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      "kubectl",
      ["--kubeconfig", opts.kubeconfigPath ?? kubeconfig, "--cache-dir", join(dir, "cache"), ...args],
      { timeout: 20_000, env: { ...process.env, ...opts.env } },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Start kubectl, resolve once its stdout matches, then kill it. */
function kubectlUntil(
  args: string[],
  until: RegExp,
  onStarted?: (out: () => string) => void | Promise<void>,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args]);
    let out = "";
    let started = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`kubectl ${args.join(" ")} never printed ${until}; got:\n${out}`));
    }, 15_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!started) {
        started = true;
        void onStarted?.(() => out);
      }
      if (until.test(out)) {
        clearTimeout(timer);
        child.kill("SIGTERM");
        resolve(out);
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "custos-sim-kubectl-"));
  const seed = loadSeed(await readFile(DEMO_SEED_PATH, "utf8"));
  sim = await startSimulator({ seed, logIntervalMs: 50, deletionDelayMs: 200 });
  kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, sim.kubeconfig());
  // warm the discovery cache once
  await kubectl(["api-resources"]);
});

afterAll(async () => {
  await sim?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("kubectl get", () => {
  it("prints the server-side table for pods", async () => {
    const r = await kubectl(["get", "pods", "-n", "phi-clinic"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\n/);
    expect(r.stdout).toMatch(/intake-worker-0\s+2\/2\s+Running\s+1\s+/);
    expect(r.stdout.trim().split("\n")).toHaveLength(5);
  });

  it("prints -o json lists and -o yaml objects", async () => {
    const json = await kubectl(["get", "configmaps", "-n", "phi-clinic", "-o", "json"]);
    const list = JSON.parse(json.stdout) as {
      items: Array<{ metadata: { name: string; resourceVersion: string } }>;
    };
    expect(list.items.map((i) => i.metadata.name).sort()).toEqual(["clinic-settings", "patient-index"]);
    expect(Number(list.items[0]!.metadata.resourceVersion)).toBeGreaterThan(1000);
    const yaml = await kubectl(["get", "pod", "web-0", "-o", "yaml"]);
    expect(yaml.stdout).toContain("name: web-0");
    expect(yaml.stdout).toContain("phase: Running");
  });

  it("pages with --chunk-size=1 through continue tokens", async () => {
    const before = sim.requests.length;
    const r = await kubectl(["get", "pods", "-n", "phi-clinic", "--chunk-size=1", "-o", "name"]);
    expect(r.stdout.trim().split("\n").sort()).toEqual([
      "pod/ehr-api-7d9f8b6c5-p9m3z",
      "pod/ehr-api-7d9f8b6c5-x2k4q",
      "pod/intake-worker-0",
      "pod/records-db-0",
    ]);
    const pages = sim.requests
      .slice(before)
      .filter((q) => q.url.startsWith("/api/v1/namespaces/phi-clinic/pods?"));
    expect(pages).toHaveLength(4);
    expect(pages.filter((q) => q.url.includes("continue=")).length).toBe(3);
  });

  it("watches with -w and prints new rows as they happen", async () => {
    const out = await kubectlUntil(["get", "pods", "-n", "default", "-w"], /watched-pod.*\n/, async () => {
      sim.load([
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "watched-pod", namespace: "default" },
          spec: { containers: [{ name: "c", image: "busybox" }] },
        },
      ]);
    });
    expect(out, out).toMatch(/^NAME\s+READY\s+STATUS/);
    expect(out, out).toMatch(/watched-pod\s+1\/1\s+Running/);
  });

  it("lists across namespaces and kinds (get all -A)", async () => {
    const r = await kubectl(["get", "all", "-A"]);
    expect(r.stdout).toContain("deployment.apps/ehr-api");
    expect(r.stdout).toContain("statefulset.apps/records-db");
    expect(r.stdout).toContain("service/ehr-api");
  });

  it("rejects a wrong token with 401", async () => {
    const bad = join(dir, "bad-kubeconfig");
    await writeFile(bad, sim.kubeconfig().replace(sim.token, "not-the-token"));
    const r = await kubectl(["get", "pods"], { kubeconfigPath: bad });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unauthorized|must be logged in/);
  });
});

describe("kubectl logs and exec", () => {
  it("reads logs with --tail, --timestamps, -c and --previous", async () => {
    const all = await kubectl(["logs", "-n", "phi-clinic", "ehr-api-7d9f8b6c5-x2k4q"]);
    expect(all.stdout.trim().split("\n")).toHaveLength(5);
    expect(all.stdout).toContain(PLANTED.emails[1]);
    const tail = await kubectl([
      "logs",
      "-n",
      "phi-clinic",
      "ehr-api-7d9f8b6c5-x2k4q",
      "--tail=1",
      "--timestamps",
    ]);
    expect(tail.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z .*7 Sample Court.*\n$/);
    const side = await kubectl(["logs", "-n", "phi-clinic", "intake-worker-0", "-c", "log-shipper"]);
    expect(side.stdout).toBe("shipper: forwarded 2 lines\n");
    const prev = await kubectl(["logs", "-n", "phi-clinic", "intake-worker-0", "--previous"]);
    expect(prev.stdout).toContain("404 Notfound Avenue");
    const none = await kubectl(["logs", "-n", "phi-clinic", "records-db-0", "--previous"]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain("previous terminated container");
  });

  it("follows logs with -f: seeded follow lines and lines appended at run time", async () => {
    const out = await kubectlUntil(
      ["logs", "-f", "-n", "phi-clinic", "ehr-api-7d9f8b6c5-x2k4q"],
      /appended at run time/,
      async (got) => {
        for (let i = 0; i < 100 && !got().includes("billing export failed"); i++)
          await new Promise((r) => setTimeout(r, 20));
        sim.appendLog("phi-clinic", "ehr-api-7d9f8b6c5-x2k4q", "api", "appended at run time");
      },
    );
    expect(out).toContain("ehr-api starting");
    expect(out).toContain("health check ok");
    expect(out.indexOf("billing export failed")).toBeLessThan(out.indexOf("appended at run time"));
  });

  it("attaches to a pod and streams what its main process writes", async () => {
    const before = sim.requests.length;
    const running = kubectlUntil(["attach", "web-0"], /written after attach/);
    // attach prints nothing until the process writes: wait for the upgrade, then write
    for (
      let i = 0;
      i < 500 && !sim.requests.slice(before).some((r) => r.url.includes("/attach") && r.status === 101);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    sim.appendLog("default", "web-0", "main", "written after attach");
    const out = await running;
    expect(out).toContain("written after attach");
  });

  it("answers auth whoami (protobuf SelfSubjectReview)", async () => {
    const r = await kubectl(["auth", "whoami"]);
    expect(r.stdout).toMatch(/Username\s+system:admin/);
  });

  it("execs commands from the seeded exec table, with exit codes", async () => {
    const r = await kubectl([
      "exec",
      "-n",
      "phi-clinic",
      "ehr-api-7d9f8b6c5-x2k4q",
      "--",
      "cat",
      "/data/patients.csv",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(PLANTED.ssns[0]);
    const fail = await kubectl([
      "exec",
      "-n",
      "phi-clinic",
      "ehr-api-7d9f8b6c5-x2k4q",
      "--",
      "cat",
      "/nonexistent",
    ]);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toContain("No such file or directory");
    const env = await kubectl(["exec", "-n", "phi-clinic", "ehr-api-7d9f8b6c5-x2k4q", "--", "env"]);
    expect(env.stdout).toContain(`SAMPLE_PATIENT_SSN=${PLANTED.ssns[0]}`);
  });

  it("execs over SPDY/3.1 when WebSockets are off (kubectl's fallback), stdin and exit codes included", async () => {
    const env = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" };
    const before = sim.requests.length;
    const cat = await kubectl(["exec", "-i", "web-0", "--", "cat"], { input: "over spdy\n", env });
    expect(cat.stdout).toBe("over spdy\n");
    expect(cat.code).toBe(0);
    const fail = await kubectl(
      ["exec", "-n", "phi-clinic", "ehr-api-7d9f8b6c5-x2k4q", "--", "cat", "/nonexistent"],
      { env },
    );
    expect(fail.code).toBe(1);
    const upgrades = sim.requests.slice(before).filter((r) => r.url.includes("/exec?"));
    expect(upgrades.map((r) => `${r.method} ${r.upgrade} ${r.status}`)).toEqual([
      "POST SPDY/3.1 101",
      "POST SPDY/3.1 101",
    ]);
  });

  it("streams stdin with exec -i (cat) and runs a non-tty shell", async () => {
    const cat = await kubectl(["exec", "-i", "web-0", "--", "cat"], {
      input: "hello from stdin\nsecond line\n",
    });
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe("hello from stdin\nsecond line\n");
    const sh = await kubectl(["exec", "-i", "web-0", "--", "sh"], { input: "echo one\nhostname\nexit 4\n" });
    expect(sh.stdout).toBe("one\nweb-0\n");
    expect(sh.code).toBe(4);
  });
});

/** Run `kubectl port-forward <target> :<port>`, hand the local port to `use`, then stop kubectl. */
async function portForward<T>(
  target: string,
  port: number,
  env: Record<string, string>,
  use: (local: number) => Promise<T>,
): Promise<T> {
  const child = spawn(
    "kubectl",
    [
      "--kubeconfig",
      kubeconfig,
      "--cache-dir",
      join(dir, "cache"),
      "port-forward",
      "-n",
      "phi-clinic",
      target,
      `:${port}`,
    ],
    {
      env: { ...process.env, ...env },
    },
  );
  try {
    const local = await new Promise<number>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`port-forward did not start: ${out}`)), 10_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
    });
    return await use(local);
  } finally {
    child.kill("SIGTERM");
  }
}

function tcpExchange(port: number, send: string, until: (got: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let got = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer through port-forward; got ${JSON.stringify(got)}`));
    }, 8000);
    sock.on("connect", () => sock.write(send));
    sock.on("data", (d: Buffer) => {
      got += d.toString();
      if (until(got)) {
        clearTimeout(timer);
        sock.destroy();
        resolve(got);
      }
    });
    sock.on("error", reject);
  });
}

describe("kubectl port-forward (SPDY/3.1)", () => {
  it("forwards over SPDY tunnelled in a WebSocket (kubectl's default) to the seeded HTTP responder", async () => {
    const body = await portForward("pod/ehr-api-7d9f8b6c5-x2k4q", 8080, {}, (local) =>
      tcpExchange(local, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", (g) => g.includes("}\n")),
    );
    expect(body).toMatch(/^HTTP\/1.1 200 OK/);
    expect(body).toContain(PLANTED.names[0]);
    expect(
      sim.requests.some(
        (r) =>
          r.url.includes("/portforward") &&
          r.headers["sec-websocket-protocol"] !== undefined &&
          r.status === 101,
      ),
    ).toBe(true);
  });

  it("forwards over a direct SPDY/3.1 upgrade to an echo port", async () => {
    const echoed = await portForward(
      "pod/records-db-0",
      5432,
      { KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" },
      (local) => tcpExchange(local, "ping through spdy\n", (g) => g.includes("\n")),
    );
    expect(echoed).toBe("ping through spdy\n");
    expect(
      sim.requests.some((r) => r.method === "POST" && r.url.includes("/portforward") && r.status === 101),
    ).toBe(true);
  });
});

describe("kubectl writes", () => {
  it("applies client-side (create, then strategic merge patch) and server-side", async () => {
    const f = join(dir, "cm.yaml");
    const doc = (extra: string) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: "1"\n${extra}`;
    await writeFile(f, doc(""));
    expect((await kubectl(["apply", "-f", f])).stdout).toContain("configmap/applied created");
    await writeFile(f, doc('  b: "2"\n'));
    const second = await kubectl(["apply", "-f", f]);
    expect(second.stderr).toBe("");
    expect(second.stdout).toContain("configmap/applied configured");
    const cmDef = sim.registry.byResource("", "v1", "configmaps")!;
    let cm = sim.store.get(cmDef, "default", "applied");
    expect(cm.data).toEqual({ a: "1", b: "2" });
    const meta = cm.metadata as {
      annotations: Record<string, string>;
      managedFields: Array<{ manager: string }>;
    };
    expect(JSON.parse(meta.annotations["kubectl.kubernetes.io/last-applied-configuration"]!).data).toEqual({
      a: "1",
      b: "2",
    });
    expect(meta.managedFields.map((m) => m.manager)).toContain("kubectl-client-side-apply");

    await writeFile(f, doc('  c: "3"\n'));
    const ssa = await kubectl(["apply", "--server-side", "--force-conflicts", "-f", f]);
    expect(ssa.stdout).toContain("serverside-applied");
    cm = sim.store.get(cmDef, "default", "applied");
    expect((cm.data as Record<string, string>).c).toBe("3");
    const managers = (cm.metadata as { managedFields: Array<{ manager: string; operation: string }> })
      .managedFields;
    expect(managers).toContainEqual(expect.objectContaining({ manager: "kubectl", operation: "Apply" }));

    const del = await kubectl(["delete", "-f", f]);
    expect(del.stdout).toContain("deleted");
    expect(sim.store.tryGet(cmDef, "default", "applied")).toBeUndefined();
  });

  it("speaks HTTP/2 so that watches end at once (rollout status returns without waiting for the next event)", async () => {
    const f = join(dir, "deploy.yaml");
    await writeFile(
      f,
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rolled\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: rolled}\n  template:\n    metadata:\n      labels: {app: rolled}\n    spec:\n      containers:\n        - {name: main, image: nginx:1}\n",
    );
    await kubectl(["apply", "-f", f]);
    await kubectl(["set", "image", "deployment/rolled", "main=nginx:2"]);
    const t0 = Date.now();
    const r = await kubectl(["rollout", "status", "deployment/rolled", "--timeout=10s"]);
    expect(r.stdout).toContain('deployment "rolled" successfully rolled out');
    expect(Date.now() - t0).toBeLessThan(5000);
    const watch = sim.requests
      .filter((q) => q.url.includes("deployments?") && q.url.includes("watch=true"))
      .at(-1);
    expect(watch?.httpVersion).toBe("2.0");
  });

  it("deletes a pod and waits for it to go (delete --wait watches)", async () => {
    sim.load([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "doomed", namespace: "default" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      },
    ]);
    const before = sim.requests.length;
    const r = await kubectl(["delete", "pod", "doomed"]);
    expect(r.stdout).toContain('pod "doomed" deleted');
    const reqs = sim.requests.slice(before).map((q) => q.url);
    expect(
      reqs.some((u) => u.includes("watch=true") && u.includes("fieldSelector=metadata.name%3Ddoomed")),
    ).toBe(true);
    expect(sim.store.tryGet(sim.registry.byResource("", "v1", "pods")!, "default", "doomed")).toBeUndefined();
  });

  it("creates, reads and deletes a namespace (with its contents)", async () => {
    const f = join(dir, "ns.json");
    await writeFile(
      f,
      JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "scratch" } }),
    );
    expect((await kubectl(["create", "-f", f])).stdout).toContain("namespace/scratch created");
    expect((await kubectl(["get", "ns", "scratch"])).stdout).toMatch(/scratch\s+Active/);
    expect((await kubectl(["get", "sa", "-n", "scratch", "-o", "name"])).stdout.trim()).toBe(
      "serviceaccount/default",
    );
    const del = await kubectl(["delete", "ns", "scratch"]);
    expect(del.stdout).toContain('namespace "scratch" deleted');
    const gone = await kubectl(["get", "ns", "scratch"]);
    expect(gone.stderr).toContain('namespaces "scratch" not found');
    expect(
      sim.store.tryGet(sim.registry.byResource("", "v1", "serviceaccounts")!, "scratch", "default"),
    ).toBeUndefined();
  });

  it("creates objects with kubectl create generators (protobuf request bodies)", async () => {
    expect((await kubectl(["create", "ns", "gen"])).stdout).toContain("namespace/gen created");
    expect(
      (await kubectl(["create", "secret", "generic", "s1", "-n", "gen", "--from-literal=ssn=900-00-0000"]))
        .stdout,
    ).toContain("secret/s1 created");
    expect(
      (await kubectl(["create", "deployment", "d1", "-n", "gen", "--image=nginx", "--port=80"])).stdout,
    ).toContain("deployment.apps/d1 created");
    expect(
      (await kubectl(["create", "rolebinding", "rb1", "-n", "gen", "--clusterrole=view", "--user=alice"]))
        .stdout,
    ).toContain("created");
    const secret = sim.store.get(sim.registry.byResource("", "v1", "secrets")!, "gen", "s1");
    expect(secret.data).toEqual({ ssn: Buffer.from("900-00-0000").toString("base64") });
    const d = sim.store.get(sim.registry.byResource("apps", "v1", "deployments")!, "gen", "d1");
    expect(d.spec).toMatchObject({
      replicas: 1,
      selector: { matchLabels: { app: "d1" } },
      template: { spec: { containers: [{ name: "nginx", image: "nginx", ports: [{ containerPort: 80 }] }] } },
    });
    expect((await kubectl(["scale", "deployment", "d1", "-n", "gen", "--replicas=3"])).stdout).toContain(
      "scaled",
    );
    expect((await kubectl(["get", "deploy", "d1", "-n", "gen"])).stdout).toMatch(/d1\s+3\/3\s+3\s+3/);
  });

  it("describes a pod with its events (protobuf Accept answered with JSON)", async () => {
    const r = await kubectl(["describe", "pod", "-n", "phi-clinic", "ehr-api-7d9f8b6c5-x2k4q"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Events:\s*\n\s+Type\s+Reason/);
    expect(r.stdout).toContain("RecordSyncFailed");
  });

  it("answers auth can-i (protobuf SelfSubjectAccessReview)", async () => {
    const r = await kubectl(["auth", "can-i", "delete", "pods"]);
    expect(r.stdout.trim()).toBe("yes");
  });

  it("reports NotFound and AlreadyExists as kubectl prints them", async () => {
    const nf = await kubectl(["get", "secret", "nope", "-n", "phi-clinic"]);
    expect(nf.stderr.trim()).toBe('Error from server (NotFound): secrets "nope" not found');
    const f = join(dir, "dup.yaml");
    await writeFile(
      f,
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: default\n",
    );
    const dup = await kubectl(["create", "-f", f]);
    expect(dup.stderr).toContain("Error from server (AlreadyExists): error when creating");
    expect(dup.stderr).toContain('configmaps "web-config" already exists');
  });
});
