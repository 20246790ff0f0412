/**
 * Simulator throughput, for reading the gateway's benchmarks (the simulator is their
 * upstream): a small GET (one pod) and a 500-item pod list, over HTTPS/1.1 keep-alive, one
 * request at a time and 8 in flight. Run: node --import tsx simulator/bench.ts
 */
import { Agent, request } from "node:https";
import { startSimulator } from "./index.ts";

const N_PODS = 500;

function pod(i: number): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `pod-${String(i).padStart(4, "0")}`,
      namespace: "bench",
      labels: { app: "bench", shard: String(i % 10) },
    },
    spec: {
      containers: [
        {
          name: "main",
          image: "nginx:1.27",
          env: [{ name: "A", value: "b" }],
          ports: [{ containerPort: 80 }],
        },
      ],
    },
  };
}

async function main(): Promise<void> {
  const sim = await startSimulator({ seed: Array.from({ length: N_PODS }, (_, i) => pod(i)) });
  const agent = new Agent({ keepAlive: true, ca: sim.caPem, maxSockets: 16 });
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = request(
        `${sim.url}${path}`,
        { agent, headers: { authorization: `Bearer ${sim.token}`, accept: "application/json" } },
        (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve(Number(process.hrtime.bigint() - t0) / 1e6));
        },
      );
      req.on("error", reject);
      req.end();
    });
  const run = async (name: string, path: string, total: number, concurrency: number) => {
    for (let i = 0; i < 20; i++) await get(path);
    const lat: number[] = [];
    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          next++;
          lat.push(await get(path));
        }
      }),
    );
    const secs = (Date.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p: number) => Number(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2));
    return {
      name,
      concurrency,
      requests: lat.length,
      rps: Math.round(lat.length / secs),
      p50ms: q(0.5),
      p99ms: q(0.99),
    };
  };
  const results = [
    await run("get 1 pod", "/api/v1/namespaces/bench/pods/pod-0001", 2000, 1),
    await run("get 1 pod", "/api/v1/namespaces/bench/pods/pod-0001", 4000, 8),
    await run("list 500 pods", "/api/v1/namespaces/bench/pods", 200, 1),
    await run("list 500 pods", "/api/v1/namespaces/bench/pods", 400, 8),
  ];
  agent.destroy();
  await sim.stop();
  process.stdout.write(`${JSON.stringify({ node: process.version, results })}\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.name.padEnd(14)} c=${String(r.concurrency).padEnd(2)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50ms} ms  p99 ${r.p99ms} ms\n`,
    );
  }
}

await main();
