/**
 * Published false-positive behaviour: the default HIPAA Safe Harbor detectors (scope
 * "everywhere") leave Kubernetes-shaped non-PHI values alone — resourceVersions, uids,
 * metadata and status timestamps, image digests and tags, container ids, pod/host/cluster IPs
 * (unless a mask lists the `ip` detector), ports, generations, continue tokens, API URLs,
 * quantities, log timestamps.
 */
import { describe, expect, it } from "vitest";
import { createMasker } from "../gateway/masking/index.ts";
import type { Json } from "../sdk/schema/config.ts";
import { ctx, makeConfig } from "./masking-fixtures.ts";

const m = createMasker(makeConfig({ masks: [] }), { pseudonymKey: new Uint8Array(32) });

const kubePod: Json = {
  kind: "Pod",
  apiVersion: "v1",
  metadata: {
    name: "api-7d9f8b6c5-x2x9z",
    generateName: "api-7d9f8b6c5-",
    namespace: "phi-a",
    uid: "4f1c2a6e-1234-4b1e-9a3d-0c2d5e6f7a8b",
    resourceVersion: "123456789",
    generation: 3,
    creationTimestamp: "2024-03-12T10:00:00Z",
    labels: {
      app: "api",
      "pod-template-hash": "7d9f8b6c5",
      version: "2024.03.12",
      "controller-revision-hash": "api-5b6c7d8e9f",
    },
    annotations: {
      "kubernetes.io/psp": "restricted",
      "prometheus.io/port": "9090",
      "checksum/config": "3f2a5c1e9b8d7f6a5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2",
      "deployment.kubernetes.io/revision": "17",
      "kubectl.kubernetes.io/restartedAt": "2024-03-12T10:00:00+00:00",
      "iam.gke.io/gcp-service-account": "api@my-project-123456.iam.gserviceaccount.com",
      docs: "https://kubernetes.io/docs/concepts/workloads/pods/",
    },
    ownerReferences: [
      {
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: "api-7d9f8b6c5",
        uid: "9e8d7c6b-5a4f-3e2d-1c0b-9a8f7e6d5c4b",
        controller: true,
      },
    ],
    managedFields: [
      {
        manager: "kube-controller-manager",
        operation: "Update",
        apiVersion: "v1",
        time: "2024-03-12T10:00:00Z",
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:metadata": {
            "f:generateName": {},
            "f:labels": { ".": {}, "f:app": {}, "f:pod-template-hash": {} },
          },
          "f:spec": {
            "f:containers": {
              'k:{"name":"api"}': {
                ".": {},
                "f:ports": {
                  'k:{"containerPort":8080,"protocol":"TCP"}': { ".": {}, "f:containerPort": {} },
                },
                "f:env": { 'k:{"name":"MODE"}': { ".": {}, "f:value": {} } },
              },
            },
          },
        },
      },
      {
        // the kubelet's status: the managedFields name pod IPs, conditions and times in their keys
        manager: "kubelet",
        operation: "Update",
        apiVersion: "v1",
        time: "2024-03-12T10:00:05Z",
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:status": {
            "f:conditions": { 'k:{"type":"Ready"}': { ".": {}, "f:lastTransitionTime": {} } },
            "f:podIPs": { ".": {}, 'k:{"ip":"10.244.1.5"}': { ".": {}, "f:ip": {} } },
            "f:hostIPs": { 'k:{"ip":"192.168.1.20"}': { ".": {} } },
            "f:startTime": {},
          },
        },
        subresource: "status",
      },
    ],
  },
  spec: {
    containers: [
      {
        name: "api",
        image:
          "registry.example.com:5000/clinic/api:2024.03.12-1a2b3c4@sha256:5551234567890123456789012345678901234567890123456789012345678901",
        args: [
          "--port=8080",
          "--metrics-addr=0.0.0.0:9090",
          "--timeout=30s",
          "--max-body=1048576",
          "--kube-api=https://kubernetes.default.svc:443/api/v1",
        ],
        ports: [
          { containerPort: 8080, protocol: "TCP" },
          { containerPort: 9090, name: "metrics" },
        ],
        env: [
          { name: "KUBERNETES_SERVICE_HOST", value: "10.96.0.1" },
          { name: "GOMAXPROCS", value: "2" },
          { name: "BUILD", value: "20240312.1" },
          { name: "SENTRY_RELEASE", value: "api@1.24.3" },
          { name: "UPSTREAM", value: "http://api.phi-a.svc.cluster.local:8080/v1/patients/1234567" },
        ],
        resources: {
          limits: { cpu: "1500m", memory: "1073741824" },
          requests: { cpu: "250m", memory: "512Mi" },
        },
      },
    ],
    nodeName: "ip-10-0-12-34.ec2.internal",
    securityContext: { runAsUser: 1000, fsGroup: 2000 },
  },
  status: {
    phase: "Running",
    podIP: "10.244.1.23",
    podIPs: [{ ip: "10.244.1.23" }, { ip: "fd00:10:244:1::17" }],
    hostIP: "192.168.10.4",
    startTime: "2024-03-12T10:00:01Z",
    qosClass: "Burstable",
    conditions: [
      { type: "Ready", status: "True", lastProbeTime: null, lastTransitionTime: "2024-03-12T10:00:05Z" },
    ],
    containerStatuses: [
      {
        name: "api",
        restartCount: 4,
        image: "registry.example.com:5000/clinic/api:2024.03.12-1a2b3c4",
        imageID:
          "registry.example.com:5000/clinic/api@sha256:1234567890123456789012345678901234567890123456789012345678901234",
        containerID: "containerd://5551234567abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        state: { running: { startedAt: "2024-03-12T10:00:04Z" } },
        lastState: {
          terminated: {
            exitCode: 137,
            reason: "OOMKilled",
            startedAt: "2024-03-11T09:00:00Z",
            finishedAt: "2024-03-12T09:59:59Z",
          },
        },
      },
    ],
  },
};

describe("false positives: Kubernetes values survive the default detectors", () => {
  it("a realistic pod comes out identical (same object)", () => {
    const r = m.maskJson(kubePod, ctx());
    expect(JSON.stringify(r.value)).toBe(JSON.stringify(kubePod));
    expect(r.value).toBe(kubePod);
    expect(r.summary.rules).toEqual([]);
  });

  it("lists, tables and services keep resourceVersions, continue tokens, cluster IPs and ports", () => {
    const list = {
      kind: "ServiceList",
      apiVersion: "v1",
      metadata: {
        resourceVersion: "987654321",
        continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTg3NjU0MzIxLCJzdGFydCI6ImFwaVx1MDAwMCJ9",
        remainingItemCount: 12,
      },
      items: [
        {
          metadata: {
            name: "api",
            namespace: "phi-a",
            uid: "0b2c3d4e-5f60-7182-9304-a5b6c7d8e9f0",
            resourceVersion: "4455667",
            creationTimestamp: "2023-11-02T08:09:10Z",
          },
          spec: {
            clusterIP: "10.96.123.45",
            clusterIPs: ["10.96.123.45"],
            ports: [{ port: 443, targetPort: 8443, nodePort: 30443, protocol: "TCP" }],
            type: "NodePort",
          },
          status: { loadBalancer: { ingress: [{ ip: "203.0.113.10" }] } },
        },
      ],
    };
    expect(m.maskJson(list, ctx({ resource: "services", verb: "list" })).value).toBe(list);
    const table = {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: { resourceVersion: "987654321" },
      columnDefinitions: [
        { name: "Name" },
        { name: "Ready" },
        { name: "Status" },
        { name: "Restarts" },
        { name: "Age" },
        { name: "IP" },
        { name: "Node" },
      ],
      rows: [
        {
          cells: [
            "api-7d9f8b6c5-x2x9z",
            "1/1",
            "Running",
            "4 (2d3h ago)",
            "45d",
            "10.244.1.23",
            "ip-10-0-12-34.ec2.internal",
          ],
          object: {
            kind: "PartialObjectMetadata",
            apiVersion: "meta.k8s.io/v1",
            metadata: { name: "api", namespace: "phi-a", creationTimestamp: "2024-03-12T10:00:00Z" },
          },
        },
      ],
    };
    expect(m.maskJson(table, ctx()).value).toBe(table);
  });

  it("log lines with timestamps, durations, versions, ports, hashes and API URLs pass unchanged", () => {
    const lines = [
      "2024-03-12T10:00:00.123456Z INFO server listening on 0.0.0.0:8080 (pid 4242)\n",
      "I0312 10:00:00.123456       1 controller.go:123] Reconciled default/api-7d9f8b6c5 in 12.345ms resourceVersion=123456789\n",
      "GET /api/v1/namespaces/phi-a/pods?limit=500&resourceVersion=123456789 200 1.234567ms\n",
      "pulled image sha256:1234567890123456789012345678901234567890123456789012345678901234 version v1.28.3 build 20240312\n",
      "2024-03-12 10:00:00,123 WARN retry 3/5 after 1500ms trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7\n",
      "uid=1000(app) gid=1000(app) groups=1000(app)\n",
    ];
    const t = m.textStream(ctx({ subresource: "log" }));
    let out = "";
    for (const l of lines) out += t.push(l);
    out += t.end();
    expect(out).toBe(lines.join(""));
  });

  it("a Node (nodeInfo, addresses, image lists) and a kube-root-ca ConfigMap come out identical", () => {
    const node = {
      kind: "Node",
      apiVersion: "v1",
      metadata: {
        name: "ip-10-0-12-34.ec2.internal",
        uid: "7c1f0c2e-9a8b-4c3d-8e7f-6a5b4c3d2e1f",
        resourceVersion: "88123456",
        labels: {
          "kubernetes.io/hostname": "ip-10-0-12-34",
          "topology.kubernetes.io/zone": "us-east-1a",
          "node.kubernetes.io/instance-type": "m5.2xlarge",
        },
      },
      spec: { podCIDR: "10.244.1.0/24", providerID: "aws:///us-east-1a/i-0abc123def4567890" },
      status: {
        capacity: { cpu: "8", memory: "32475852Ki", pods: "110", "ephemeral-storage": "104845292Ki" },
        addresses: [
          { type: "InternalIP", address: "10.0.12.34" },
          { type: "Hostname", address: "ip-10-0-12-34.ec2.internal" },
        ],
        nodeInfo: {
          machineID: "ec2a1b2c3d4e5f60718293a4b5c6d7e8",
          systemUUID: "EC2A1B2C-3D4E-5F60-7182-93A4B5C6D7E8",
          bootID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
          kernelVersion: "5.10.210-201.852.amzn2.x86_64",
          osImage: "Amazon Linux 2",
          containerRuntimeVersion: "containerd://1.7.11",
          kubeletVersion: "v1.30.1-eks-e564799",
          architecture: "amd64",
        },
        images: [
          {
            names: [
              "registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097",
              "registry.k8s.io/pause:3.9",
            ],
            sizeBytes: 321520,
          },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      },
    };
    expect(m.maskJson(node, ctx({ resource: "nodes", namespace: "" })).value).toBe(node);
    const pem = `-----BEGIN CERTIFICATE-----\n${"MIIC/jCCAeagAwIBAgIBADANBgkqhkiG9w0BAQsFADAVMRMwEQYDVQQDEwprdWJl".repeat(8)}\n-----END CERTIFICATE-----\n`;
    const ca = {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { name: "kube-root-ca.crt", namespace: "phi-a" },
      data: { "ca.crt": pem },
    };
    expect(m.maskJson(ca, ctx({ resource: "configmaps" })).value).toBe(ca);
  });

  it("pod IPs are masked only when a mask lists the ip detector", () => {
    const withIp = createMasker(
      makeConfig({
        masks: [
          {
            id: "ips",
            match: { resources: ["pods"], phi: true },
            fields: [],
            detectors: ["ip"],
            source: { file: "p", line: 1, column: 1 },
          },
        ],
      }),
      { pseudonymKey: new Uint8Array(32) },
    );
    const out = withIp.maskJson(kubePod, ctx()).value as {
      status: { podIP: string; hostIP: string };
      metadata: { uid: string };
    };
    expect(out.status.podIP).toBe("[MASKED:ip]");
    expect(out.status.hostIP).toBe("[MASKED:ip]");
    expect(out.metadata.uid).toBe("4f1c2a6e-1234-4b1e-9a3d-0c2d5e6f7a8b");
  });

  it("the detectors still catch the real thing in free text", () => {
    const cm = {
      kind: "ConfigMap",
      metadata: { name: "c", namespace: "x" },
      data: {
        a: "SSN 123-45-6789 / MRN# 00123456 / Member ID: XZQ123456789 / Acct no. 4455667788",
        b: "call (617) 555-0123, fax: 617-555-0124, mail jane.roe@example.org",
        c: "born March 12, 1984; seen 03/12/2024; DOB 1984-03-12",
        d: "lives at 221 Baker Street, Springfield, IL 62704; ZIP: 02139",
        e: "portal https://mychart.clinic.example.org/patients/1234567?view=summary",
        f: "card 4111 1111 1111 1111, VIN 1HGCM82633A004352, Driver's License: D1234567, Serial No: SN-00412345",
      },
    };
    const out = JSON.stringify(m.maskJson(cm, ctx({ resource: "configmaps", namespace: "x" })).value);
    for (const v of [
      "123-45-6789",
      "00123456",
      "XZQ123456789",
      "4455667788",
      "555-0123",
      "555-0124",
      "jane.roe",
      "March 12",
      "03/12/2024",
      "1984-03-12",
      "221 Baker",
      "62704",
      "02139",
      "mychart",
      "4111",
      "1HGCM82633A004352",
      "D1234567",
      "SN-00412345",
    ]) {
      expect(out).not.toContain(v);
    }
    expect(out).toContain("MRN# [MASKED:mrn]");
    expect(out).toContain("fax: [MASKED:fax]");
  });

  it("invalid candidates are left alone (validators)", () => {
    const cm = {
      kind: "ConfigMap",
      metadata: { name: "c", namespace: "x" },
      data: { a: "000-12-3456 666-12-3456 123-00-4567 2024-02-30 13/45/2024 4111 1111 1111 1112" },
    };
    expect(m.maskJson(cm, ctx({ resource: "configmaps", namespace: "x" })).value).toBe(cm);
  });
});
