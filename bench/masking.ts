/**
 * Masking throughput and memory.
 *   node --import tsx bench/masking.ts            (or: npm run bench -- masking)
 *
 * - large list: a PodList of 5,700 pods (~50 MB: env, annotations with planted identifiers,
 *   last-applied, managedFields) -> JSON.parse + maskJson + JSON.stringify, beside the
 *   JSON.parse + JSON.stringify baseline. Wall time and CPU time of this process (the machine
 *   may be shared: CPU time is the fairer figure).
 * - end to end as maskBuffered does it (response bytes in -> masked bytes out), interleaved
 *   A/B/C passes (MASK_BENCH_PASSES, default 9; median and min of CPU time): the text masker
 *   (maskJsonBytes: bytes in, bytes out), the object path (parse + maskJson + stringify) and parse + stringify only.
 * - cluster-shaped lists, ~50 MB each, as a real API server returns them: a PodList of Deployment
 *   replicas (managedFields, status, three env vars, no last-applied) and an EventList (one event
 *   in twenty names an MRN); end to end, text masker beside the object path and parse+stringify,
 *   interleaved (the list above is a stress case: every pod carries 60 masked env vars, planted
 *   identifiers and a last-applied copy of its spec). Each is measured in a child process that
 *   holds only that list, as a gateway process would.
 * - watch streams: the stress pods, and 5,000 of the cluster-shaped pods (also as Go escapes JSON:
 *   \u0026, \u003c, \u003e; each in a child process that holds only its stream), as WatchEvent JSON lines
 *   (kind first in the object, as the API server writes them) in 64 KiB chunks of bytes through
 *   watchStream(), as the gateway relays them (bytes in, bytes out); the baseline decodes, parses,
 *   re-serialises and encodes each line.
 * - logs / exec: 20 MB of log lines (lines mode) and of exec output (chunks of 1-4 KiB).
 * - typical get: one pod (~10 KB): added milliseconds (median, p99) of masking.
 * - peak RSS: child processes mask the 50 MB list from its bytes to masked bytes, with the text
 *   masker and with the object path (and a baseline child only parses and serialises it);
 *   `process.resourceUsage().maxRSS`.
 * Prints a JSON summary line, then a table.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { fileURLToPath } from "node:url";
import { createMasker } from "../gateway/masking/index.ts";
import type { Json } from "../sdk/schema/config.ts";
import { clusterEvent, clusterPod, ctx, makeConfig, patient, pod, rng } from "../test/masking-fixtures.ts";

const PODS = Number(process.env.MASK_BENCH_PODS ?? 5700); // ~50 MB of JSON
const ENV = Number(process.env.MASK_BENCH_ENV ?? 60);
const KEY = new Uint8Array(32).fill(3);

function bigList(): Json {
  const r = rng(7);
  const items: Json[] = [];
  for (let i = 0; i < PODS; i++)
    items.push(pod(i, patient(r, i), i % 3 === 0 ? "default" : "phi-a", { envCount: ENV }));
  return { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "999" }, items };
}

interface Timing {
  wallMs: number;
  cpuMs: number;
}

function time(f: () => void): Timing {
  const c = process.cpuUsage();
  const t = performance.now();
  f();
  const wallMs = performance.now() - t;
  const d = process.cpuUsage(c);
  return { wallMs, cpuMs: (d.user + d.system) / 1000 };
}

function best(n: number, f: () => void): Timing {
  let b: Timing | null = null;
  for (let i = 0; i < n; i++) {
    const t = time(f);
    if (b === null || t.cpuMs < b.cpuMs) b = t;
  }
  return b!;
}

const mbps = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

// ---- child mode: peak RSS --------------------------------------------------------------------
const child = process.argv.find((a) => a.startsWith("--child="))?.slice(8);
if (child !== undefined) {
  // as maskBuffered does it: the body's bytes -> masked bytes
  const file = process.argv[process.argv.indexOf(`--child=${child}`) + 1]!;
  const body = readFileSync(file);
  const masker = createMasker(makeConfig(), { pseudonymKey: KEY });
  const c = ctx({ verb: "list", namespace: "" });
  let out: Buffer;
  if (child === "text") out = masker.maskJsonBytes(body, c).body;
  else {
    const v = JSON.parse(body.toString("utf8")) as Json;
    out = Buffer.from(JSON.stringify(child === "mask" ? masker.maskJson(v, c).value : v));
  }
  process.stdout.write(
    JSON.stringify({ maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024), outBytes: out.length }),
  );
  process.exit(0);
}

// ---- child mode: one cluster-shaped list, in a process that holds nothing else ---------------
// (as a gateway process would: the 50 MB stress list and its parsed copies in the main process
// would otherwise make every collection in the measured passes slower)
const PASSES = Number(process.env.MASK_BENCH_PASSES ?? 9);
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const min = (xs: number[]) => Math.min(...xs);
const CLUSTER_MB = Number(process.env.MASK_BENCH_CLUSTER_MB ?? 50);
interface ClusterResult {
  mb: number;
  items: number;
  textMBps_cpu_median: number;
  textMBps_cpu_best: number;
  objectMBps_cpu_median: number;
  baselineMBps_cpu_median: number;
  textOverBaseline: number;
  masked: Record<string, number>;
  /** the text masker alone in its process, pass after pass (as a gateway masking lists runs) */
  textAloneMBps_cpu_median: number;
  textAloneMBps_cpu_best: number;
}
const clusterArg = process.argv.find((a) => a.startsWith("--cluster="))?.slice("--cluster=".length);
if (clusterArg !== undefined) {
  const [clusterChild, variant] = clusterArg.split(":") as [string, "mixed" | "alone"];
  const events = clusterChild === "events";
  const each = events ? 1330 : 5030;
  const n = Math.round((CLUSTER_MB * 1e6) / each);
  const make = events ? clusterEvent : clusterPod;
  const items = Array.from({ length: n }, (_, i) => make(i, i % 3 === 0 ? "default" : "phi-a"));
  const body = Buffer.from(
    JSON.stringify({
      kind: events ? "EventList" : "PodList",
      apiVersion: "v1",
      metadata: { resourceVersion: "4899999" },
      items,
    }),
  );
  items.length = 0;
  const c = events
    ? ctx({ verb: "list", namespace: "", resource: "events" })
    : ctx({ verb: "list", namespace: "" });
  const masker = createMasker(makeConfig(), { pseudonymKey: KEY });
  // The three maskers must agree. Checked in a function of its own, so that the masked text and
  // the parsed list are garbage before the measured passes: the process then holds what a
  // gateway masking this list holds (the body), and no collection pays for a parsed copy of it.
  const counts = ((): Record<string, number> => {
    const t = masker.maskJsonText(body.toString("utf8"), c);
    const o = masker.maskJson(JSON.parse(body.toString("utf8")) as Json, c);
    if (JSON.stringify(JSON.parse(t.text)) !== JSON.stringify(o.value))
      throw new Error(`bench: maskJsonText and maskJson disagree on the cluster ${clusterChild} list`);
    if (!masker.maskJsonBytes(body, c).body.equals(Buffer.from(t.text)))
      throw new Error(`bench: maskJsonBytes and maskJsonText disagree on the cluster ${clusterChild} list`);
    return t.summary.counts;
  })();
  const b = body.length;
  if (variant === "alone") {
    const alone: number[] = [];
    for (let i = 0; i <= PASSES; i++) {
      const ms = time(() => masker.maskJsonBytes(body, c).body).cpuMs;
      if (i > 0) alone.push(ms); // (the first pass warms up)
    }
    process.stdout.write(
      JSON.stringify({
        textAloneMBps_cpu_median: mbps(b, med(alone)),
        textAloneMBps_cpu_best: mbps(b, min(alone)),
      }),
    );
    process.exit(0);
  }
  const r = { text: [] as number[], object: [] as number[], baseline: [] as number[] };
  for (let i = 0; i < PASSES; i++) {
    r.text.push(time(() => masker.maskJsonBytes(body, c).body).cpuMs);
    r.object.push(
      time(() => Buffer.from(JSON.stringify(masker.maskJson(JSON.parse(body.toString("utf8")), c).value)))
        .cpuMs,
    );
    r.baseline.push(time(() => Buffer.from(JSON.stringify(JSON.parse(body.toString("utf8"))))).cpuMs);
  }
  const out: Omit<ClusterResult, "textAloneMBps_cpu_median" | "textAloneMBps_cpu_best"> = {
    mb: Math.round(b / 1e5) / 10,
    items: n,
    textMBps_cpu_median: mbps(b, med(r.text)),
    textMBps_cpu_best: mbps(b, min(r.text)),
    objectMBps_cpu_median: mbps(b, med(r.object)),
    baselineMBps_cpu_median: mbps(b, med(r.baseline)),
    textOverBaseline: Math.round((med(r.baseline) / med(r.text)) * 100) / 100,
    masked: counts,
  };
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

function measureClusterChild(name: "pods" | "events"): ClusterResult {
  const run = (variant: string) => {
    const c = spawnSync(
      process.execPath,
      ["--import", "tsx", fileURLToPath(import.meta.url), `--cluster=${name}:${variant}`],
      { encoding: "utf8", maxBuffer: 1 << 20 },
    );
    if (c.status !== 0) throw new Error(`cluster child ${name}:${variant} failed: ${c.stderr}`);
    return JSON.parse(c.stdout) as object;
  };
  return { ...run("mixed"), ...run("alone") } as ClusterResult;
}

// ---- watch streams ------------------------------------------------------------------------------
// events as the API server writes them (type, then the object with its kind first), in 64 KiB
// chunks through watchStream(); the cluster-shaped streams are measured in a child process that
// holds only the stream, as a gateway relaying a watch would (not the 50 MB list above)
interface WatchResult {
  bytes: number;
  masked: Timing;
  base: Timing;
}
function watchOf(objs: Json[]): string {
  return objs
    .map(
      (o) =>
        `${JSON.stringify({ type: "MODIFIED", object: { kind: "Pod", apiVersion: "v1", ...(o as object) } })}\n`,
    )
    .join("");
}
function watchRun(masker: ReturnType<typeof createMasker>, body: string, runs = 3): WatchResult {
  // bytes in, bytes out, as the gateway relays a watch: 64 KiB chunks of the UTF-8 stream
  const bytes = Buffer.from(body);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  let outBytes = 0;
  const sink = (b: Buffer) => {
    outBytes += b.length;
  };
  const masked = best(runs, () => {
    const w = masker.watchStream(ctx({ verb: "watch" }));
    for (const c of chunks) w.push(c, sink);
    w.end(sink);
  });
  // the same stream decoded, each line parsed, re-serialised and encoded
  const base = best(runs, () => {
    const dec = new StringDecoder("utf8");
    let buf = "";
    for (const c of chunks) {
      buf += dec.write(c);
      let nl = buf.indexOf("\n");
      while (nl !== -1) {
        outBytes += Buffer.from(JSON.stringify(JSON.parse(buf.slice(0, nl)))).length;
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    }
  });
  if (outBytes === 0) throw new Error("bench: the watch stream produced nothing");
  return { bytes: Buffer.byteLength(body), masked, base };
}
/**
 * 5,000 cluster-shaped pod events; `go`: as Go's encoding/json writes them (kube-apiserver):
 * &, <, > escaped as \u0026, \u003c, \u003e, each pod with one env value holding a URL with a query
 */
function clusterWatch(go: boolean): string {
  const pods = Array.from({ length: 5000 }, (_, i) => {
    const o = clusterPod(i, i % 3 === 0 ? "default" : "phi-a") as {
      spec: { containers: { env?: { name: string; value: string }[] }[] };
    };
    if (go) {
      const c0 = o.spec.containers[0]!;
      c0.env = [...(c0.env ?? []), { name: "CALLBACK", value: `https://cb.example/x?a=${i}&b=2` }];
    }
    return o as unknown as Json;
  });
  const body = watchOf(pods);
  return go ? body.replaceAll("&", "\\u0026").replaceAll("<", "\\u003c").replaceAll(">", "\\u003e") : body;
}
const watchArg = process.argv.find((a) => a.startsWith("--watch="))?.slice("--watch=".length);
if (watchArg !== undefined) {
  const m = createMasker(makeConfig(), { pseudonymKey: KEY });
  process.stdout.write(JSON.stringify(watchRun(m, clusterWatch(watchArg === "go"), 5)));
  process.exit(0);
}
function measureWatchChild(name: "cluster" | "go"): WatchResult {
  const c = spawnSync(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), `--watch=${name}`],
    {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    },
  );
  if (c.status !== 0) throw new Error(`watch child ${name} failed: ${c.stderr}`);
  return JSON.parse(c.stdout) as WatchResult;
}

// ---- main ------------------------------------------------------------------------------------
const masker = createMasker(makeConfig(), { pseudonymKey: KEY });
const listCtx = ctx({ verb: "list", namespace: "" });
const list = bigList();
const text = JSON.stringify(list);
const bytes = Buffer.byteLength(text);

const parseT = best(3, () => JSON.parse(text));
const parsed = JSON.parse(text) as Json;
// first pass: the detector result cache (detect.ts) is empty, as for a gateway's first list
const maskCold = time(() => masker.maskJson(parsed, listCtx));
const maskT = best(3, () => masker.maskJson(parsed, listCtx));
const masked = masker.maskJson(parsed, listCtx);
const stringifyBase = best(3, () => JSON.stringify(parsed));
const stringifyMasked = best(3, () => JSON.stringify(masked.value));
const listBaseline = {
  wallMs: parseT.wallMs + stringifyBase.wallMs,
  cpuMs: parseT.cpuMs + stringifyBase.cpuMs,
};
const listTotal = {
  wallMs: parseT.wallMs + maskT.wallMs + stringifyMasked.wallMs,
  cpuMs: parseT.cpuMs + maskT.cpuMs + stringifyMasked.cpuMs,
};

// same list, only field masks (no detectors): what the walk itself costs
const fieldsOnly = createMasker(
  makeConfig({ detectors: [], masks: makeConfig().masks.map((m) => ({ ...m, detectors: [] })) }),
  { pseudonymKey: KEY },
);
const fieldsOnlyT = best(3, () => fieldsOnly.maskJson(parsed, listCtx));

// end to end as maskBuffered does it, interleaved: text masker, object path, parse+stringify
const body = Buffer.from(text);
const e2e = {
  text: () => masker.maskJsonBytes(body, listCtx).body,
  object: () =>
    Buffer.from(JSON.stringify(masker.maskJson(JSON.parse(body.toString("utf8")), listCtx).value)),
  baseline: () => Buffer.from(JSON.stringify(JSON.parse(body.toString("utf8")))),
};
const textFieldsOnly = () => fieldsOnly.maskJsonBytes(body, listCtx).body;
const e2eTimes: Record<keyof typeof e2e | "textFieldsOnly", number[]> = {
  text: [],
  object: [],
  baseline: [],
  textFieldsOnly: [],
};
// the text masker's output, checked against the object path once (same value, same summary)
{
  const a = masker.maskJsonText(text, listCtx);
  const b = masker.maskJson(JSON.parse(text) as Json, listCtx);
  if (JSON.stringify(JSON.parse(a.text)) !== JSON.stringify(b.value))
    throw new Error("bench: maskJsonText and maskJson disagree on the list");
  if (JSON.stringify(a.summary) !== JSON.stringify(b.summary))
    throw new Error("bench: maskJsonText and maskJson summaries differ");
}
for (let i = 0; i < PASSES; i++) {
  for (const k of ["text", "object", "baseline"] as const) e2eTimes[k].push(time(e2e[k]).cpuMs);
  e2eTimes.textFieldsOnly.push(time(textFieldsOnly).cpuMs);
}
const textOutBytes = e2e.text().length;

// cluster-shaped lists: each in its own process (see clusterChild)
const clusterSummary = {
  pods: measureClusterChild("pods"),
  events: measureClusterChild("events"),
};

// watch streams: the stress pods here; the cluster-shaped ones in a child process each
const items = (list as { items: Json[] }).items;
const watchStress = watchRun(masker, watchOf(items));
const watchCluster = measureWatchChild("cluster");
const watchClusterGo = measureWatchChild("go");
const watchBytes = watchStress.bytes;
const watchT = watchStress.masked;
const watchBase = watchStress.base;

// logs and exec
const r = rng(11);
const logLines: string[] = [];
let logLen = 0;
for (let i = 0; logLen < 20e6; i++) {
  const p = patient(r, i);
  const line =
    i % 10 === 0
      ? `2024-03-12T10:00:${String(i % 60).padStart(2, "0")}.123Z INFO intake patient SSN ${p.ssn} MRN: ${p.mrn} phone ${p.phone}\n`
      : `2024-03-12T10:00:${String(i % 60).padStart(2, "0")}.123Z INFO GET /api/v1/items/${i} 200 ${i % 97}ms user-agent=kube-probe/1.30 request_id=${(i * 2654435761).toString(16)}\n`;
  logLines.push(line);
  logLen += line.length;
}
const logBody = logLines.join("");
const logChunks: string[] = [];
for (let i = 0; i < logBody.length; ) {
  const n = 1024 + ((i * 7) % 3072);
  logChunks.push(logBody.slice(i, i + n));
  i += n;
}
const logsT = best(2, () => {
  const t = masker.textStream(ctx({ subresource: "log" }));
  for (const c of logChunks) t.push(c);
  t.end();
});
const execT = best(2, () => {
  const t = masker.textStream(ctx({ subresource: "exec" }));
  for (const c of logChunks) t.push(c);
  t.end();
});

// typical get
const one = JSON.stringify(pod(1, patient(rng(5), 1), "phi-a", { envCount: 24 }));
const getCtx = ctx();
const samples = (f: () => void) => {
  const out: number[] = [];
  for (let i = 0; i < 300; i++) f(); // warm
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    f();
    out.push(performance.now() - t);
  }
  out.sort((a, b) => a - b);
  return { median: out[1000]!, p99: out[1980]! };
};
const getBase = samples(() => JSON.stringify(JSON.parse(one)));
const getMasked = samples(() => JSON.stringify(masker.maskJson(JSON.parse(one) as Json, getCtx).value));
const getText = samples(() => masker.maskJsonText(one, getCtx));

// peak RSS (children)
const dir = mkdtempSync(join(tmpdir(), "custos-bench-"));
const file = join(dir, "list.json");
writeFileSync(file, text);
const self = fileURLToPath(import.meta.url);
const rss = (mode: string) => {
  const c = spawnSync(process.execPath, ["--import", "tsx", self, `--child=${mode}`, file], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (c.status !== 0) throw new Error(`child ${mode} failed: ${c.stderr}`);
  return JSON.parse(c.stdout) as { maxRssMB: number };
};
const rssMask = rss("mask").maxRssMB;
const rssText = rss("text").maxRssMB;
const rssBase = rss("base").maxRssMB;
rmSync(dir, { recursive: true, force: true });

const summary = {
  list: {
    pods: PODS,
    mb: Math.round(bytes / 1e5) / 10,
    parseMs: Math.round(parseT.cpuMs),
    maskMs: Math.round(maskT.cpuMs),
    stringifyMs: Math.round(stringifyMasked.cpuMs),
    totalMBps_cpu: mbps(bytes, listTotal.cpuMs),
    totalMBps_wall: mbps(bytes, listTotal.wallMs),
    baselineMBps_cpu: mbps(bytes, listBaseline.cpuMs),
    maskOnlyMBps_cpu: mbps(bytes, maskT.cpuMs),
    maskOnlyColdMBps_cpu: mbps(bytes, maskCold.cpuMs),
    fieldsOnlyMaskMBps_cpu: mbps(bytes, fieldsOnlyT.cpuMs),
    masked: masked.summary.counts,
  },
  endToEnd: {
    passes: PASSES,
    textMBps_cpu_median: mbps(bytes, med(e2eTimes.text)),
    textMBps_cpu_best: mbps(bytes, min(e2eTimes.text)),
    objectMBps_cpu_median: mbps(bytes, med(e2eTimes.object)),
    objectMBps_cpu_best: mbps(bytes, min(e2eTimes.object)),
    baselineMBps_cpu_median: mbps(bytes, med(e2eTimes.baseline)),
    baselineMBps_cpu_best: mbps(bytes, min(e2eTimes.baseline)),
    textFieldsOnlyMBps_cpu_median: mbps(bytes, med(e2eTimes.textFieldsOnly)),
    textOverObject: Math.round((med(e2eTimes.object) / med(e2eTimes.text)) * 100) / 100,
    textOverBaseline: Math.round((med(e2eTimes.baseline) / med(e2eTimes.text)) * 100) / 100,
    textOutBytes,
  },
  cluster: clusterSummary,
  watch: {
    mb: Math.round(watchBytes / 1e5) / 10,
    events: items.length,
    MBps_cpu: mbps(watchBytes, watchT.cpuMs),
    baselineMBps_cpu: mbps(watchBytes, watchBase.cpuMs),
    clusterMB: Math.round(watchCluster.bytes / 1e5) / 10,
    clusterMBps_cpu: mbps(watchCluster.bytes, watchCluster.masked.cpuMs),
    clusterBaselineMBps_cpu: mbps(watchCluster.bytes, watchCluster.base.cpuMs),
    clusterGoEscapedMBps_cpu: mbps(watchClusterGo.bytes, watchClusterGo.masked.cpuMs),
    clusterGoEscapedBaselineMBps_cpu: mbps(watchClusterGo.bytes, watchClusterGo.base.cpuMs),
  },
  logs: {
    mb: Math.round(logBody.length / 1e5) / 10,
    linesMBps_cpu: mbps(logBody.length, logsT.cpuMs),
    execMBps_cpu: mbps(logBody.length, execT.cpuMs),
  },
  get: {
    podKB: Math.round(one.length / 100) / 10,
    baselineMedianMs: Math.round(getBase.median * 1000) / 1000,
    maskedMedianMs: Math.round(getMasked.median * 1000) / 1000,
    addedMedianMs: Math.round((getMasked.median - getBase.median) * 1000) / 1000,
    addedP99Ms: Math.round((getMasked.p99 - getBase.p99) * 1000) / 1000,
    textAddedMedianMs: Math.round((getText.median - getBase.median) * 1000) / 1000,
    textAddedP99Ms: Math.round((getText.p99 - getBase.p99) * 1000) / 1000,
  },
  peakRss: { listMB: Math.round(bytes / 1e6), maskMB: rssMask, textMB: rssText, baselineMB: rssBase },
};
process.stdout.write(JSON.stringify(summary) + "\n\n");
const rows: [string, string][] = [
  [
    `list ${PODS} pods, ${summary.list.mb} MB: parse+mask+stringify`,
    `${summary.list.totalMBps_cpu} MB/s (cpu), ${summary.list.totalMBps_wall} MB/s (wall)`,
  ],
  ["  baseline parse+stringify", `${summary.list.baselineMBps_cpu} MB/s (cpu)`],
  [
    "  maskJson alone (fields + detectors)",
    `${summary.list.maskOnlyMBps_cpu} MB/s (cpu), ${summary.list.maskMs} ms`,
  ],
  ["  maskJson alone, first pass (cold caches)", `${summary.list.maskOnlyColdMBps_cpu} MB/s (cpu)`],
  ["  maskJson alone (field masks only)", `${summary.list.fieldsOnlyMaskMBps_cpu} MB/s (cpu)`],
  [
    `  end to end, bytes in -> bytes out (median of ${PASSES} interleaved, cpu)`,
    `text masker ${summary.endToEnd.textMBps_cpu_median} MB/s (best ${summary.endToEnd.textMBps_cpu_best}), ` +
      `object path ${summary.endToEnd.objectMBps_cpu_median} (best ${summary.endToEnd.objectMBps_cpu_best}), ` +
      `parse+stringify ${summary.endToEnd.baselineMBps_cpu_median} (best ${summary.endToEnd.baselineMBps_cpu_best})`,
  ],
  [
    "  — ratios (medians)",
    `text/object ${summary.endToEnd.textOverObject}x, text/baseline ${summary.endToEnd.textOverBaseline}x; ` +
      `text masker, field masks only ${summary.endToEnd.textFieldsOnlyMBps_cpu_median} MB/s`,
  ],
  ...Object.entries(summary.cluster).map(([name, c]): [string, string] => [
    `cluster-shaped ${name === "pods" ? "PodList" : "EventList"}, ${c.items} items, ${c.mb} MB, end to end`,
    `text masker ${c.textMBps_cpu_median} MB/s (best ${c.textMBps_cpu_best}; alone in its process ` +
      `${c.textAloneMBps_cpu_median}, best ${c.textAloneMBps_cpu_best}), object path ` +
      `${c.objectMBps_cpu_median}, parse+stringify ${c.baselineMBps_cpu_median}; text/baseline ${c.textOverBaseline}x`,
  ]),
  [
    `watch stream, ${summary.watch.events} stress events`,
    `${summary.watch.MBps_cpu} MB/s (baseline ${summary.watch.baselineMBps_cpu})`,
  ],
  [
    `watch stream, 5000 cluster-shaped pod events, ${summary.watch.clusterMB} MB`,
    `${summary.watch.clusterMBps_cpu} MB/s (baseline ${summary.watch.clusterBaselineMBps_cpu})`,
  ],
  [
    "— the same, escaped as Go writes JSON (\\u0026, \\u003c)",
    `${summary.watch.clusterGoEscapedMBps_cpu} MB/s (baseline ${summary.watch.clusterGoEscapedBaselineMBps_cpu})`,
  ],
  [`logs (lines), ${summary.logs.mb} MB`, `${summary.logs.linesMBps_cpu} MB/s`],
  ["exec (chunks)", `${summary.logs.execMBps_cpu} MB/s`],
  [
    `typical get (${summary.get.podKB} KB pod)`,
    `+${summary.get.addedMedianMs} ms median, +${summary.get.addedP99Ms} ms p99 ` +
      `(text masker: +${summary.get.textAddedMedianMs} ms, +${summary.get.textAddedP99Ms} ms p99)`,
  ],
  [
    `peak RSS, ${summary.peakRss.listMB} MB list`,
    `${rssMask} MB object path, ${rssText} MB text masker, ${rssBase} MB parse+stringify only`,
  ],
];
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
