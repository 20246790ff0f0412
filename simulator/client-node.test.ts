/**
 * Real @kubernetes/client-node 1.4 against the simulator: typed CoreV1Api calls, Log (plain
 * and follow), Exec over WebSocket (v5), Watch, and PortForward (v4 channels).
 */
import { readFile } from "node:fs/promises";
import { PassThrough, Readable, Writable } from "node:stream";
import { CoreV1Api, Exec, KubeConfig, Log, PortForward, Watch } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSeed, type Simulator, startSimulator } from "./index.ts";
import { DEMO_SEED_PATH, PLANTED } from "./seed/planted.ts";

let sim: Simulator;
let kc: KubeConfig;

function sink(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

async function until(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  sim = await startSimulator({ seed: loadSeed(await readFile(DEMO_SEED_PATH, "utf8")), logIntervalMs: 30 });
  kc = new KubeConfig();
  kc.loadFromString(sim.kubeconfig());
});

afterAll(async () => {
  await sim?.stop();
});

describe("@kubernetes/client-node", () => {
  it("lists and reads pods with CoreV1Api", async () => {
    const api = kc.makeApiClient(CoreV1Api);
    const list = await api.listNamespacedPod({ namespace: "phi-clinic", labelSelector: "app=ehr-api" });
    expect(list.items.map((p) => p.metadata?.name).sort()).toEqual([
      "ehr-api-7d9f8b6c5-p9m3z",
      "ehr-api-7d9f8b6c5-x2k4q",
    ]);
    const pod = await api.readNamespacedPod({ namespace: "phi-clinic", name: "intake-worker-0" });
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(["worker", "log-shipper"]);
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(1);
    const page = await api.listNamespacedConfigMap({ namespace: "phi-clinic", limit: 1 });
    expect(page.items).toHaveLength(1);
    expect(page.metadata?._continue).toBeTruthy();
    const rest = await api.listNamespacedConfigMap({
      namespace: "phi-clinic",
      limit: 1,
      _continue: page.metadata!._continue!,
    });
    expect(rest.items[0]?.metadata?.name).not.toBe(page.items[0]?.metadata?.name);
    await expect(api.readNamespacedSecret({ namespace: "phi-clinic", name: "nope" })).rejects.toMatchObject({
      code: 404,
    });
  });

  it("reads logs (readNamespacedPodLog and Log with follow)", async () => {
    const api = kc.makeApiClient(CoreV1Api);
    const text = await api.readNamespacedPodLog({ namespace: "phi-clinic", name: "records-db-0" });
    expect(text).toContain(PLANTED.ssns[2]);
    const out = sink();
    const abort = await new Log(kc).log("phi-clinic", "ehr-api-7d9f8b6c5-x2k4q", "api", out.stream, {
      follow: true,
    });
    await until(() => out.text().includes("billing export failed"));
    sim.appendLog("phi-clinic", "ehr-api-7d9f8b6c5-x2k4q", "api", "late line");
    await until(() => out.text().includes("late line"));
    abort.abort();
  });

  it("execs over WebSocket and reports the exit status", async () => {
    const out = sink();
    const err = sink();
    let status: { status?: string } | undefined;
    await new Exec(kc).exec(
      "phi-clinic",
      "intake-worker-0",
      "worker",
      ["cat", "/var/intake/latest.json"],
      out.stream,
      err.stream,
      null,
      false,
      (s) => {
        status = s;
      },
    );
    await until(() => status !== undefined);
    expect(status?.status).toBe("Success");
    expect(out.text()).toContain(PLANTED.phones[1]);

    const echoed = sink();
    let done = false;
    const stdin = Readable.from(["typed into stdin\n"]);
    await new Exec(kc).exec("default", "web-0", "main", ["cat"], echoed.stream, null, stdin, false, () => {
      done = true;
    });
    await until(() => done);
    expect(echoed.text()).toBe("typed into stdin\n");
  });

  it("watches pods: existing objects as ADDED, then changes", async () => {
    const seen: string[] = [];
    const ctl = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      { allowWatchBookmarks: true },
      (type, obj: { metadata: { name: string } }) => seen.push(`${type} ${obj.metadata.name}`),
      () => {},
    );
    await until(() => seen.includes("ADDED web-0"));
    sim.load([
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "watch-me", namespace: "default" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      },
    ]);
    const pods = sim.registry.byResource("", "v1", "pods")!;
    sim.store.delete(pods, "default", "watch-me");
    await until(() => seen.includes("DELETED watch-me"));
    expect(seen.indexOf("ADDED watch-me")).toBeLessThan(seen.indexOf("DELETED watch-me"));
    ctl.abort();
  });

  it("port-forwards over WebSocket to the seeded HTTP responder", async () => {
    const out = sink();
    const input = new PassThrough();
    const ws = (await new PortForward(kc).portForward(
      "phi-clinic",
      "ehr-api-7d9f8b6c5-x2k4q",
      [8080],
      out.stream,
      null,
      input,
    )) as { close: () => void };
    input.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await until(() => out.text().includes("Jane Roe-Synthetic"));
    expect(out.text()).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    ws.close();
  });
});

describe("@kubernetes/client-node with a tty", () => {
  it("runs an interactive shell over exec with tty=true (terminal echo, prompt, exit code)", async () => {
    const out = sink();
    const stdin = new PassThrough();
    let status: { status?: string; details?: { causes?: Array<{ message?: string }> } } | undefined;
    await new Exec(kc).exec("default", "web-0", "main", ["sh"], out.stream, null, stdin, true, (s) => {
      status = s;
    });
    stdin.write("echo hi\r");
    await until(() => out.text().includes("hi\r\n/ # "));
    stdin.write("exit 3\r");
    await until(() => status !== undefined);
    expect(out.text()).toContain("echo hi\r\nhi\r\n");
    expect(status?.status).toBe("Failure");
    expect(status?.details?.causes?.[0]?.message).toBe("3");
  });
});
