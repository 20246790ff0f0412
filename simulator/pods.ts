/**
 * What a seeded Pod "runs": its log lines, its exec table and its port-forward targets,
 * declared by annotations (documented in simulator/README.md):
 *
 *   sim.custos.dev/logs                 lines (one per line) for every container without its own
 *   sim.custos.dev/logs.<container>     lines for one container
 *   sim.custos.dev/logs-follow[.<c>]    lines streamed one per interval to `follow=true` readers
 *   sim.custos.dev/logs-previous[.<c>]  the previous (terminated) container's lines (`previous=true`)
 *   sim.custos.dev/exec[.<c>]           JSON: {"<command line>": {"stdout","stderr","exitCode"}}
 *   sim.custos.dev/ports                JSON: {"<port>": "echo" | {"http": "<body>"}}
 */
import type { Json, JsonObject } from "./errors.ts";
import { errors } from "./errors.ts";
import { isObject } from "./patch.ts";

export const ANNOTATION_PREFIX = "sim.custos.dev/";
export const ANN = {
  logs: `${ANNOTATION_PREFIX}logs`,
  logsFollow: `${ANNOTATION_PREFIX}logs-follow`,
  logsPrevious: `${ANNOTATION_PREFIX}logs-previous`,
  exec: `${ANNOTATION_PREFIX}exec`,
  ports: `${ANNOTATION_PREFIX}ports`,
} as const;

export interface ExecResult {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
}

export interface LogLine {
  time: Date;
  text: string;
}

function annotations(pod: JsonObject): Record<string, string> {
  const m = pod.metadata;
  const a = isObject(m) ? m.annotations : undefined;
  const out: Record<string, string> = {};
  if (isObject(a)) for (const [k, v] of Object.entries(a)) if (typeof v === "string") out[k] = v;
  return out;
}

function forContainer(pod: JsonObject, base: string, container: string): string | undefined {
  const a = annotations(pod);
  return a[`${base}.${container}`] ?? a[base];
}

export function splitLines(text: string | undefined): string[] {
  if (text === undefined || text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function containerNames(pod: JsonObject): string[] {
  const spec = pod.spec;
  const cs = isObject(spec) && Array.isArray(spec.containers) ? spec.containers : [];
  return cs.filter(isObject).map((c) => String(c.name));
}

export function podName(pod: JsonObject): string {
  return String((pod.metadata as JsonObject).name);
}

/** The container a request names, or the pod's only/default one; 400 like kube-apiserver otherwise. */
export function resolveContainer(pod: JsonObject, requested: string | undefined): string {
  const names = containerNames(pod);
  if (requested) {
    if (!names.includes(requested))
      throw errors.badRequest(`container ${requested} is not valid for pod ${podName(pod)}`);
    return requested;
  }
  const dflt = annotations(pod)["kubectl.kubernetes.io/default-container"];
  if (dflt && names.includes(dflt)) return dflt;
  if (names.length === 1) return names[0]!;
  throw errors.badRequest(
    `a container name must be specified for pod ${podName(pod)}, choose one of: [${names.join(" ")}]`,
  );
}

export function seededLogLines(pod: JsonObject, container: string, previous: boolean): string[] | undefined {
  const text = forContainer(pod, previous ? ANN.logsPrevious : ANN.logs, container);
  if (previous && text === undefined) return undefined;
  return splitLines(text);
}

export function followLines(pod: JsonObject, container: string): string[] {
  return splitLines(forContainer(pod, ANN.logsFollow, container));
}

export function execTable(pod: JsonObject, container: string): Record<string, ExecResult> {
  const raw = forContainer(pod, ANN.exec, container);
  if (!raw) return {};
  try {
    const parsed = JSON.parse(raw) as Json;
    if (!isObject(parsed)) return {};
    const out: Record<string, ExecResult> = {};
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v === "string") out[k] = { stdout: v };
      else if (isObject(v)) {
        const r: ExecResult = {};
        if (typeof v.stdout === "string") r.stdout = v.stdout;
        if (typeof v.stderr === "string") r.stderr = v.stderr;
        if (typeof v.exitCode === "number") r.exitCode = v.exitCode;
        out[k] = r;
      }
    }
    return out;
  } catch {
    return {};
  }
}

export type PortTarget = { mode: "echo" } | { mode: "http"; body: string };

export function portTarget(pod: JsonObject, port: number): PortTarget | undefined {
  const raw = annotations(pod)[ANN.ports];
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as Json;
      const v = isObject(parsed) ? parsed[String(port)] : undefined;
      if (v === "echo") return { mode: "echo" };
      if (isObject(v) && typeof v.http === "string") return { mode: "http", body: v.http };
    } catch {
      // fall through to the container ports
    }
  }
  const spec = pod.spec;
  const cs = isObject(spec) && Array.isArray(spec.containers) ? spec.containers.filter(isObject) : [];
  const declared = cs.some(
    (c) => Array.isArray(c.ports) && c.ports.some((p) => isObject(p) && p.containerPort === port),
  );
  return declared ? { mode: "echo" } : undefined;
}

export function containerEnv(pod: JsonObject, container: string): Array<[string, string]> {
  const spec = pod.spec;
  const cs = isObject(spec) && Array.isArray(spec.containers) ? spec.containers.filter(isObject) : [];
  const c = cs.find((x) => x.name === container);
  const env = c && Array.isArray(c.env) ? c.env.filter(isObject) : [];
  const out: Array<[string, string]> = [["HOSTNAME", podName(pod)]];
  for (const e of env)
    if (typeof e.name === "string") out.push([e.name, typeof e.value === "string" ? e.value : ""]);
  out.push(["PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], ["HOME", "/root"]);
  return out;
}

/** A log stream's lines for one container of one pod instance (keyed by uid). */
export class LogBook {
  private readonly lines = new Map<string, LogLine[]>();
  private readonly followers = new Map<string, Set<(l: LogLine) => void>>();

  private key(uid: string, container: string): string {
    return `${uid}/${container}`;
  }

  /** The container's lines, seeded from the pod's annotations on first use (one second apart, from creation). */
  read(pod: JsonObject, container: string): LogLine[] {
    const uid = String((pod.metadata as JsonObject).uid);
    const k = this.key(uid, container);
    let l = this.lines.get(k);
    if (!l) {
      const created = Date.parse(String((pod.metadata as JsonObject).creationTimestamp ?? "")) || 0;
      l = (seededLogLines(pod, container, false) ?? []).map((text, i) => ({
        time: new Date(created + i * 1000),
        text,
      }));
      this.lines.set(k, l);
    }
    return l;
  }

  append(pod: JsonObject, container: string, text: string, time: Date): void {
    const lines = this.read(pod, container);
    const uid = String((pod.metadata as JsonObject).uid);
    for (const t of splitLines(text.endsWith("\n") ? text : `${text}\n`)) {
      const line = { time, text: t };
      lines.push(line);
      for (const f of this.followers.get(this.key(uid, container)) ?? []) f(line);
    }
  }

  follow(pod: JsonObject, container: string, fn: (l: LogLine) => void): () => void {
    const k = this.key(String((pod.metadata as JsonObject).uid), container);
    let set = this.followers.get(k);
    if (!set) {
      set = new Set();
      this.followers.set(k, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }
}

/** RFC 3339 with nanoseconds, the way the kubelet prefixes `timestamps=true` lines. */
export function nanoTimestamp(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}
