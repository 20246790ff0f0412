/**
 * Shared fixtures for the masking tests and bench/masking.ts: a config with the default
 * HIPAA Safe Harbor detectors and typical masks, request contexts, and synthetic patients
 * (generated, never real) planted into Kubernetes-shaped objects.
 */
import type { Detector, GatewayConfig, Json, Mask } from "../sdk/schema/config.ts";
import { hipaaSafeHarbor } from "../sdk/detectors/index.ts";
import type { MaskContext, RequestInfo } from "../gateway/ports.ts";

const src = { file: "policy.ts", line: 1, column: 1 };

export function detectors(): Detector[] {
  return hipaaSafeHarbor().map((d) => ({ ...d, source: src }));
}

export function baseMasks(): Mask[] {
  return [
    {
      id: "phi-pod-env",
      match: { resources: ["pods"], phi: true },
      fields: [
        {
          path: "spec.containers[*].env[*].value",
          segments: ["spec", "containers", "*", "env", "*", "value"],
          strategy: { kind: "redact" },
          label: "env",
        },
      ],
      detectors: [],
      source: src,
    },
    {
      id: "patient-labels",
      match: { resources: ["pods", "configmaps"], labels: { "custos.dev/patient": "true" } },
      fields: [
        {
          path: "metadata.annotations.patient-name",
          segments: ["metadata", "annotations", "patient-name"],
          strategy: { kind: "pseudonymize" },
          label: "name",
        },
        {
          path: "data.patient",
          segments: ["data", "patient"],
          strategy: { kind: "drop" },
          label: "patient",
        },
      ],
      detectors: [],
      source: src,
    },
    {
      id: "phi-secrets",
      match: { resources: ["secrets"], phi: true },
      fields: [
        {
          path: "data.ssn",
          segments: ["data", "ssn"],
          strategy: { kind: "partial", keepFirst: 0, keepLast: 4 },
          label: "ssn",
          base64: true,
        },
        {
          path: "data.mrn",
          segments: ["data", "mrn"],
          strategy: { kind: "drop" },
          label: "mrn",
          base64: true,
        },
      ],
      detectors: [],
      source: src,
    },
    {
      id: "phi-logs",
      match: { resources: ["pods/log", "pods/exec", "pods/attach"], phi: true },
      fields: [],
      detectors: ["ip"],
      source: src,
    },
    {
      id: "patients-crd",
      match: { apiGroups: ["clinic.example.com"], resources: ["patients"] },
      fields: [
        { path: "spec.name", segments: ["spec", "name"], strategy: { kind: "pseudonymize" }, label: "name" },
        { path: "spec.mrn", segments: ["spec", "mrn"], strategy: { kind: "redact" }, label: "mrn" },
      ],
      detectors: [],
      source: src,
    },
  ];
}

/** a compiled mask that redacts one field (a dotted path, no wildcards) of what `match` picks */
export function redactFieldMask(id: string, match: Mask["match"], path: string, label: string): Mask {
  return {
    id,
    match,
    fields: [{ path, segments: path.split("."), strategy: { kind: "redact" }, label }],
    detectors: [],
    source: src,
  };
}

export function makeConfig(over: Partial<GatewayConfig> = {}): GatewayConfig {
  return {
    schemaVersion: "custos.dev/v1alpha1",
    policyHash: `sha256:${"ab".repeat(32)}`,
    name: "masking-test",
    defaultDecision: "deny",
    phiNamespaces: ["phi-*"],
    identities: {},
    purposes: {},
    approvalGroups: {},
    rules: [],
    masks: baseMasks(),
    detectors: detectors(),
    ...over,
  };
}

export function request(over: Partial<RequestInfo> = {}): RequestInfo {
  return {
    isResourceRequest: true,
    path: "/api/v1/namespaces/phi-a/pods",
    verb: "get",
    apiPrefix: "api",
    apiGroup: "",
    apiVersion: "v1",
    namespace: "phi-a",
    resource: "pods",
    subresource: "",
    name: "",
    query: {},
    ...over,
  };
}

export function ctx(over: Partial<RequestInfo> = {}): MaskContext {
  return { request: request(over), identity: { subject: "agent", groups: [], claims: {}, source: "oidc" } };
}

// ---- synthetic identifiers ---------------------------------------------------------------------
/** a deterministic PRNG so the bench and tests are reproducible */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad = (n: number, w: number) => String(n).padStart(w, "0");

export interface Patient {
  ssn: string;
  mrn: string;
  phone: string;
  email: string;
  dob: string;
  name: string;
}

export function patient(r: () => number, i: number): Patient {
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  return {
    ssn: `${pad(int(1, 665), 3)}-${pad(int(1, 99), 2)}-${pad(int(1, 9999), 4)}`,
    mrn: String(int(10_000_000, 99_999_999)),
    phone: `(${int(2, 9)}${pad(int(0, 99), 2)}) ${int(2, 9)}${pad(int(0, 99), 2)}-${pad(int(0, 9999), 4)}`,
    email: `patient.${i}.${int(100, 999)}@mail.example.org`,
    dob: `${int(1930, 2010)}-${pad(int(1, 12), 2)}-${pad(int(1, 28), 2)}`,
    name: `Patient Number${i}`,
  };
}

/** A realistic pod (~10 KB) in a PHI namespace with planted identifiers in env and annotations. */
export function pod(i: number, p: Patient, ns = "phi-a", opts: { envCount?: number } = {}): Json {
  const env: Json[] = [];
  for (let e = 0; e < (opts.envCount ?? 24); e++)
    env.push({ name: `SETTING_${e}`, value: `value-${e}-${i}` });
  env.push({ name: "PATIENT_SSN", value: p.ssn });
  const spec = {
    containers: [
      {
        name: "app",
        image: `registry.example.com/clinic/app:1.${i % 20}.3@sha256:${"0123456789abcdef".repeat(4)}`,
        ports: [{ containerPort: 8080, protocol: "TCP" }],
        env,
        resources: { limits: { cpu: "500m", memory: "256Mi" }, requests: { cpu: "100m", memory: "128Mi" } },
        volumeMounts: [
          {
            name: "kube-api-access",
            mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            readOnly: true,
          },
        ],
      },
    ],
    nodeName: `node-${i % 7}`,
    serviceAccountName: "default",
    restartPolicy: "Always",
  };
  return {
    metadata: {
      name: `intake-${i}`,
      namespace: ns,
      uid: `4f1c2a6e-${pad(i % 10000, 4)}-4b1e-9a3d-0c2d5e6f7a8b`,
      resourceVersion: String(100000 + i),
      creationTimestamp: "2024-03-12T10:00:00Z",
      generation: 1,
      labels: {
        app: "intake",
        "pod-template-hash": "7d9f8b6c5",
        "custos.dev/patient": i % 2 === 0 ? "true" : "false",
      },
      annotations: {
        "clinic.example.com/note": `Seen by Dr. Who. Patient SSN ${p.ssn}, MRN: ${p.mrn}, phone ${p.phone}, email ${p.email}, DOB ${p.dob}.`,
        "patient-name": p.name,
        "kubectl.kubernetes.io/last-applied-configuration": `${JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: `intake-${i}`, namespace: ns, annotations: { "clinic.example.com/note": `MRN: ${p.mrn}` } }, spec })}\n`,
      },
      managedFields: [
        {
          manager: "kubectl-client-side-apply",
          operation: "Update",
          apiVersion: "v1",
          time: "2024-03-12T10:00:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": { "f:annotations": { ".": {}, "f:clinic.example.com/note": {} } },
            "f:spec": { "f:containers": { 'k:{"name":"app"}': { ".": {}, "f:env": {} } } },
          },
        },
      ],
    },
    spec,
    status: {
      phase: "Running",
      podIP: `10.244.${i % 250}.${(i * 7) % 250}`,
      hostIP: `192.168.1.${i % 250}`,
      startTime: "2024-03-12T10:00:01Z",
      conditions: [
        { type: "Ready", status: "True", lastProbeTime: null, lastTransitionTime: "2024-03-12T10:00:05Z" },
      ],
      containerStatuses: [
        {
          name: "app",
          ready: true,
          restartCount: 0,
          image: `registry.example.com/clinic/app:1.${i % 20}.3`,
          imageID: `registry.example.com/clinic/app@sha256:${"fedcba9876543210".repeat(4)}`,
          containerID: `containerd://${"a1b2c3d4e5f60718".repeat(4)}`,
          state: { running: { startedAt: "2024-03-12T10:00:04Z" } },
        },
      ],
    },
  };
}

export function podList(n: number, seed = 1, ns = "phi-a"): { list: Json; patients: Patient[] } {
  const r = rng(seed);
  const items: Json[] = [];
  const patients: Patient[] = [];
  for (let i = 0; i < n; i++) {
    const p = patient(r, i);
    patients.push(p);
    items.push(pod(i, p, ns));
  }
  return {
    list: { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "999999" }, items },
    patients,
  };
}

// ---- cluster-shaped objects (no planted data beyond what a real cluster carries) ------------------

/**
 * A Pod as the API server returns it for a Deployment's replica (field order, managedFields of
 * the controller manager and the kubelet, projected service-account volume, probes, status):
 * ~5 KB, no last-applied-configuration (pods made by a ReplicaSet carry none), three env vars.
 */
export function clusterPod(i: number, ns: string): Json {
  const hash = "5d8f7c9b4d";
  const name = `api-${hash}-${((i * 2654435761) >>> 0).toString(36).slice(0, 5)}`;
  const uid = `${((i * 7919) >>> 0).toString(16).padStart(8, "0")}-3f2a-4c1d-9b8e-${((i * 104729) >>> 0).toString(16).padStart(12, "0")}`;
  // replicas made over time (a scale-up, a rollout), each stamped with its own second
  const t = new Date(1759392871000 + (i % 4000) * 15000).toISOString().replace(".000Z", "Z");
  const ip = `10.244.${i % 250}.${(i * 7) % 250}`;
  return {
    metadata: {
      name,
      generateName: `api-${hash}-`,
      namespace: ns,
      uid,
      resourceVersion: String(4810000 + i),
      creationTimestamp: t,
      labels: { app: "api", "app.kubernetes.io/part-of": "intake", "pod-template-hash": hash },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `api-${hash}`,
          uid: "b7a1c2d3-0000-4e5f-8a9b-0c1d2e3f4a5b",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: t,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:generateName": {},
              "f:labels": {
                ".": {},
                "f:app": {},
                "f:app.kubernetes.io/part-of": {},
                "f:pod-template-hash": {},
              },
              "f:ownerReferences": { ".": {}, 'k:{"uid":"b7a1c2d3-0000-4e5f-8a9b-0c1d2e3f4a5b"}': {} },
            },
            "f:spec": {
              "f:containers": {
                'k:{"name":"api"}': {
                  ".": {},
                  "f:env": {
                    ".": {},
                    'k:{"name":"LOG_LEVEL"}': { ".": {}, "f:name": {}, "f:value": {} },
                    'k:{"name":"DB_HOST"}': { ".": {}, "f:name": {}, "f:value": {} },
                  },
                  "f:image": {},
                  "f:imagePullPolicy": {},
                  "f:name": {},
                  "f:ports": {
                    ".": {},
                    'k:{"containerPort":8080,"protocol":"TCP"}': {
                      ".": {},
                      "f:containerPort": {},
                      "f:name": {},
                      "f:protocol": {},
                    },
                  },
                  "f:readinessProbe": {
                    ".": {},
                    "f:httpGet": { ".": {}, "f:path": {}, "f:port": {}, "f:scheme": {} },
                    "f:periodSeconds": {},
                  },
                  "f:resources": {
                    ".": {},
                    "f:limits": { ".": {}, "f:memory": {} },
                    "f:requests": { ".": {}, "f:cpu": {}, "f:memory": {} },
                  },
                },
              },
              "f:dnsPolicy": {},
              "f:enableServiceLinks": {},
              "f:restartPolicy": {},
              "f:schedulerName": {},
              "f:securityContext": {},
              "f:terminationGracePeriodSeconds": {},
            },
          },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time: t,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:status": {
              "f:conditions": {
                'k:{"type":"ContainersReady"}': {
                  ".": {},
                  "f:lastProbeTime": {},
                  "f:lastTransitionTime": {},
                  "f:status": {},
                  "f:type": {},
                },
                'k:{"type":"Ready"}': {
                  ".": {},
                  "f:lastProbeTime": {},
                  "f:lastTransitionTime": {},
                  "f:status": {},
                  "f:type": {},
                },
              },
              "f:containerStatuses": {},
              "f:hostIP": {},
              "f:hostIPs": {},
              "f:phase": {},
              "f:podIP": {},
              "f:podIPs": { ".": {}, [`k:{"ip":"${ip}"}`]: { ".": {}, "f:ip": {} } },
              "f:startTime": {},
            },
          },
          subresource: "status",
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: "kube-api-access-x7k2p",
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
              {
                downwardAPI: {
                  items: [
                    { path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } },
                  ],
                },
              },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: "api",
          image: "registry.example.com/clinic/api:2.14.1",
          ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
          env: [
            { name: "LOG_LEVEL", value: "info" },
            { name: "DB_HOST", value: "postgres.clinic.svc.cluster.local" },
            { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
          ],
          resources: { limits: { memory: "512Mi" }, requests: { cpu: "250m", memory: "256Mi" } },
          volumeMounts: [
            {
              name: "kube-api-access-x7k2p",
              readOnly: true,
              mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            },
          ],
          readinessProbe: {
            httpGet: { path: "/healthz", port: 8080, scheme: "HTTP" },
            timeoutSeconds: 1,
            periodSeconds: 10,
            successThreshold: 1,
            failureThreshold: 3,
          },
          terminationMessagePath: "/dev/termination-log",
          terminationMessagePolicy: "File",
          imagePullPolicy: "IfNotPresent",
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "default",
      serviceAccount: "default",
      nodeName: `worker-${i % 12}`,
      securityContext: {},
      schedulerName: "default-scheduler",
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
    },
    status: {
      phase: "Running",
      conditions: [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
      ].map((type) => ({ type, status: "True", lastProbeTime: null, lastTransitionTime: t })),
      hostIP: `10.0.3.${i % 250}`,
      hostIPs: [{ ip: `10.0.3.${i % 250}` }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: t,
      containerStatuses: [
        {
          name: "api",
          state: { running: { startedAt: t } },
          lastState: {},
          ready: true,
          restartCount: 0,
          image: "registry.example.com/clinic/api:2.14.1",
          imageID: `registry.example.com/clinic/api@sha256:${"9f86d081884c7d65".repeat(4)}`,
          containerID: `containerd://${((i * 2654435761) >>> 0).toString(16).padStart(8, "0").repeat(8)}`,
          started: true,
        },
      ],
      qosClass: "Burstable",
    },
  };
}

const EVENT_MESSAGES = [
  (pod: string, i: number) => `Successfully assigned phi-a/${pod} to worker-${i % 12}`,
  () => 'Container image "registry.example.com/clinic/api:2.14.1" already present on machine',
  () => "Created container api",
  () => "Started container api",
  () => "Readiness probe failed: HTTP probe failed with statuscode: 503",
  (_: string, i: number) => `Back-off restarting failed container api in pod (attempt ${i % 9})`,
];

/**
 * An Event as the API server writes it (metadata first, then involvedObject; list items carry no
 * kind): one in twenty is an application's event whose message names a patient's MRN.
 */
export function clusterEvent(i: number, ns: string): Json {
  const pod = `api-5d8f7c9b4d-${((i * 2654435761) >>> 0).toString(36).slice(0, 5)}`;
  // the API server names an event `<object>.<UnixNano in hex>` and stamps it with its second
  const at = 1759392871000 + i * 1370;
  const t = new Date(at - (at % 1000)).toISOString().replace(".000Z", "Z");
  const app = i % 20 === 7;
  return {
    metadata: {
      name: `${pod}.${(BigInt(at) * 1000000n + BigInt((i * 40503) % 1000000)).toString(16)}`,
      namespace: ns,
      uid: `${((i * 7919) >>> 0).toString(16).padStart(8, "0")}-77aa-4c1d-9b8e-${((i * 104729) >>> 0).toString(16).padStart(12, "0")}`,
      resourceVersion: String(5810000 + i),
      creationTimestamp: t,
      managedFields: [
        {
          manager: app ? "intake-controller" : "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time: t,
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:count": {},
            "f:firstTimestamp": {},
            "f:involvedObject": {},
            "f:lastTimestamp": {},
            "f:message": {},
            "f:reason": {},
            "f:reportingComponent": {},
            "f:reportingInstance": {},
            "f:source": { "f:component": {}, "f:host": {} },
            "f:type": {},
          },
        },
      ],
    },
    involvedObject: {
      kind: "Pod",
      namespace: ns,
      name: pod,
      uid: `${((i * 31) >>> 0).toString(16).padStart(8, "0")}-3f2a-4c1d-9b8e-0c1d2e3f4a5b`,
      apiVersion: "v1",
      resourceVersion: String(4810000 + i),
      fieldPath: "spec.containers{api}",
    },
    reason: app
      ? "IntakeProcessed"
      : ["Scheduled", "Pulled", "Created", "Started", "Unhealthy", "BackOff"][i % 6]!,
    message: app
      ? `Processed intake for MRN: ${String(10_000_000 + ((i * 7919) % 89_999_999))}`
      : EVENT_MESSAGES[i % EVENT_MESSAGES.length]!(pod, i),
    source: { component: app ? "intake-controller" : "kubelet", host: `worker-${i % 12}` },
    firstTimestamp: t,
    lastTimestamp: t,
    count: 1 + (i % 4),
    type: i % 6 >= 4 ? "Warning" : "Normal",
    eventTime: null,
    reportingComponent: app ? "intake-controller" : "kubelet",
    reportingInstance: `worker-${i % 12}`,
  };
}
