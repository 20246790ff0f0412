/**
 * What kube-apiserver and the controllers would have filled in, so that objects read back
 * the way they do on a real cluster (a Running pod with ready containers, a Deployment with
 * ready replicas, a Service with a cluster IP). There are no controllers: status is set once
 * at create time when the object arrives without one.
 */
import type { Json, JsonObject } from "./errors.ts";
import { isObject } from "./patch.ts";

export const DEFAULT_NODE = "sim-node-1";

export interface DefaultsContext {
  now: string;
  nextIp: () => string;
  nextClusterIp: () => string;
}

function arr(v: Json | undefined): JsonObject[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function obj(parent: JsonObject, key: string): JsonObject {
  const v = parent[key];
  if (isObject(v)) return v;
  const fresh: JsonObject = {};
  parent[key] = fresh;
  return fresh;
}

type Defaulter = (o: JsonObject, ctx: DefaultsContext) => void;

const defaulters: Record<string, Defaulter> = {
  "v1/Namespace": (o) => {
    const meta = obj(o, "metadata");
    const labels = obj(meta, "labels");
    labels["kubernetes.io/metadata.name"] = String(meta.name);
    const spec = obj(o, "spec");
    spec.finalizers ??= ["kubernetes"];
    const status = obj(o, "status");
    status.phase ??= "Active";
  },
  "v1/Pod": (o, ctx) => {
    const spec = obj(o, "spec");
    spec.nodeName ??= DEFAULT_NODE;
    spec.restartPolicy ??= "Always";
    spec.dnsPolicy ??= "ClusterFirst";
    spec.schedulerName ??= "default-scheduler";
    spec.serviceAccountName ??= "default";
    spec.terminationGracePeriodSeconds ??= 30;
    for (const c of arr(spec.containers)) {
      c.imagePullPolicy ??= "IfNotPresent";
      c.terminationMessagePath ??= "/dev/termination-log";
      c.terminationMessagePolicy ??= "File";
      for (const p of arr(c.ports)) p.protocol ??= "TCP";
    }
    if (isObject(o.status) && Object.keys(o.status).length > 0) return;
    const containers = arr(spec.containers);
    o.status = {
      phase: "Running",
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({
        type,
        status: "True",
        lastProbeTime: null,
        lastTransitionTime: ctx.now,
      })),
      hostIP: "10.0.0.10",
      hostIPs: [{ ip: "10.0.0.10" }],
      podIP: ctx.nextIp(),
      startTime: ctx.now,
      qosClass: "BestEffort",
      containerStatuses: containers.map((c) => ({
        name: c.name ?? "main",
        image: c.image ?? "busybox",
        imageID: `docker.io/library/${String(c.image ?? "busybox").split(":")[0]}@sha256:${"0".repeat(64)}`,
        containerID: `containerd://${"1".repeat(64)}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: ctx.now } },
        lastState: {},
      })),
    };
    const st = o.status as JsonObject;
    st.podIPs = [{ ip: st.podIP as string }];
  },
  "v1/Service": (o, ctx) => {
    const spec = obj(o, "spec");
    spec.type ??= "ClusterIP";
    spec.sessionAffinity ??= "None";
    if (spec.clusterIP === undefined)
      spec.clusterIP = spec.type === "ExternalName" ? null : ctx.nextClusterIp();
    if (typeof spec.clusterIP === "string") spec.clusterIPs ??= [spec.clusterIP];
    for (const p of arr(spec.ports)) {
      p.protocol ??= "TCP";
      p.targetPort ??= p.port ?? 80;
    }
    o.status ??= { loadBalancer: {} };
  },
  "v1/Secret": (o) => {
    o.type ??= "Opaque";
    if (isObject(o.stringData)) {
      const data = obj(o, "data");
      for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString("base64");
      delete o.stringData;
    }
  },
  "v1/Node": (o, ctx) => {
    if (isObject(o.status) && Object.keys(o.status).length > 0) return;
    o.status = {
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: ctx.now,
          lastTransitionTime: ctx.now,
        },
      ],
      addresses: [
        { type: "InternalIP", address: "10.0.0.10" },
        { type: "Hostname", address: String((o.metadata as JsonObject).name) },
      ],
      nodeInfo: {
        kubeletVersion: "v1.32.0",
        kubeProxyVersion: "v1.32.0",
        containerRuntimeVersion: "containerd://1.7.22",
        operatingSystem: "linux",
        architecture: "amd64",
        osImage: "custos simulator",
        kernelVersion: "6.1.0",
        machineID: "",
        systemUUID: "",
        bootID: "",
      },
      capacity: { cpu: "4", memory: "16Gi", pods: "110" },
      allocatable: { cpu: "4", memory: "16Gi", pods: "110" },
    };
  },
  "v1/PersistentVolumeClaim": (o) => {
    const spec = obj(o, "spec");
    o.status ??= spec.volumeName
      ? {
          phase: "Bound",
          accessModes: spec.accessModes ?? [],
          capacity: (spec.resources as JsonObject | undefined)?.requests ?? {},
        }
      : { phase: "Pending" };
  },
  "v1/PersistentVolume": (o) => {
    const spec = obj(o, "spec");
    spec.persistentVolumeReclaimPolicy ??= "Retain";
    o.status ??= { phase: spec.claimRef ? "Bound" : "Available" };
  },
  "v1/Event": (o, ctx) => {
    o.type ??= "Normal";
    o.count ??= 1;
    o.firstTimestamp ??= ctx.now;
    o.lastTimestamp ??= ctx.now;
    o.source ??= { component: "kubelet", host: DEFAULT_NODE };
  },
  "apps/v1/Deployment": (o) => workload(o, true),
  "apps/v1/ReplicaSet": (o) => workload(o, false),
  "apps/v1/StatefulSet": (o) => workload(o, false),
};

function workload(o: JsonObject, deployment: boolean): void {
  const spec = obj(o, "spec");
  spec.replicas ??= 1;
  if (deployment) {
    spec.strategy ??= { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } };
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
  }
  const n = spec.replicas as number;
  if (isObject(o.status) && Object.keys(o.status).length > 0) return;
  o.status = {
    observedGeneration: 1,
    replicas: n,
    readyReplicas: n,
    availableReplicas: n,
    ...(deployment ? { updatedReplicas: n } : { currentReplicas: n, fullyLabeledReplicas: n }),
  };
}

export function applyDefaults(apiVersion: string, kind: string, o: JsonObject, ctx: DefaultsContext): void {
  defaulters[`${apiVersion}/${kind}`]?.(o, ctx);
}
