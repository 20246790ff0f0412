/**
 * The HIPAA baseline: a starting policy for clusters that hold PHI.
 *
 * - Minimum necessary (45 CFR 164.502(b)): CI agents read only what a rollout needs, and in PHI
 *   namespaces only with a declared purpose.
 * - Purpose of use (164.506): every call into a PHI namespace declares treatment, payment,
 *   operations or incident-response.
 * - Access control (164.312(a)(1)): agents never delete namespaces or read Secrets; node,
 *   service and pod proxies are closed; RBAC changes, PersistentVolumes and exec/attach/
 *   port-forward into PHI pods need signed approvals.
 * - De-identification (164.514(b)(2)): ConfigMap and Secret data, container env values
 *   (pods, workload and cron job templates, and the copies Kubernetes keeps: StatefulSet and
 *   DaemonSet revisions, PodTemplates), last-applied-configuration, logs, exec streams and
 *   events are masked by field rules and the Safe Harbor detectors.
 * - Audit controls (164.312(b)): every decision names its rule; the gateway records it.
 *
 * Identities (groups the gateway's identity stage puts on callers; override with `identities`):
 *   ci-agents        CI jobs and autonomous agents
 *   operators        on-call engineers and their scripts
 *   platform-admins  cluster administrators
 *
 * @example
 * import { hipaaBaseline } from "../templates/hipaa/baseline.ts";
 * export default hipaaBaseline({
 *   reviewers: [{ githubId: 583231, login: "octocat", keys: ["ssh-ed25519 AAAA... octocat"] }],
 * });
 */
import {
  ALL_VERBS,
  allow,
  annotation,
  approvalGroup,
  type Duration,
  deny,
  detectors,
  drop,
  field,
  hipaa,
  type IdentitySpec,
  identities,
  type MaskStrategy,
  mask,
  type PolicyDef,
  policy,
  purposes,
  READ,
  type Reviewer,
  redact,
  requireApproval,
  WRITE,
} from "custos";

export interface HipaaBaselineOptions {
  /** reviewers of the "phi-approvers" group (GitHub numeric id, login, ed25519 public keys) */
  reviewers: readonly Reviewer[];
  /** policy name; default "hipaa-baseline" */
  name?: string;
  /** namespace globs that hold PHI; default ["phi-*"] */
  phiNamespaces?: readonly string[];
  /** who counts as which role; defaults: groups ci-agents, operators, platform-admins */
  identities?: { ciAgents?: IdentitySpec; operators?: IdentitySpec; admins?: IdentitySpec };
  /** approvals: how many reviewers (default 1), grant lifetime (default "1h"), hold the call open (default false) */
  approvals?: { count?: number; ttl?: Duration; wait?: Duration | false };
  /** how detectors mask what they find; default redact */
  detectorStrategy?: MaskStrategy;
  /** extra annotation keys that hold patient identifiers (masked with the detector strategy) */
  phiAnnotations?: readonly string[];
}

/** The HIPAA baseline policy, parametrised. See the module comment for what it enforces. */
export function hipaaBaseline(options: HipaaBaselineOptions): PolicyDef {
  const ids = identities({
    ciAgents: {
      groups: ["ci-agents"],
      description: "CI jobs and autonomous agents",
      ...options.identities?.ciAgents,
    },
    operators: {
      groups: ["operators"],
      description: "on-call engineers and their scripts",
      ...options.identities?.operators,
    },
    admins: {
      groups: ["platform-admins"],
      description: "cluster administrators",
      ...options.identities?.admins,
    },
  });
  const everyone = [ids.ciAgents, ids.operators, ids.admins];
  const humans = [ids.operators, ids.admins];
  const why = purposes({
    treatment: "Treatment of a patient (45 CFR 164.506(c)(1))",
    payment: "Payment for care (45 CFR 164.506(c)(1))",
    operations: "Health care operations: deploys, rollouts, capacity (45 CFR 164.506(c)(1))",
    "incident-response": "Security incident procedures (45 CFR 164.308(a)(6))",
  });
  const approvers = approvalGroup("phi-approvers", {
    description: "reviewers who approve risky operations on clusters holding PHI",
    reviewers: options.reviewers,
  });
  const approval = {
    group: approvers,
    count: options.approvals?.count ?? 1,
    ttl: options.approvals?.ttl ?? "1h",
    use: "once" as const,
    wait: options.approvals?.wait ?? false,
  };
  const safeHarbor = detectors.hipaaSafeHarbor(
    options.detectorStrategy === undefined ? {} : { strategy: options.detectorStrategy },
  );
  // on objects, pod/host/cluster IPs are infrastructure, not PHI: the ip detector (scope
  // "masks") is listed only where a client's address can appear (logs, exec, events)
  const objectDetectors = detectors.hipaaSafeHarbor({
    ...(options.detectorStrategy === undefined ? {} : { strategy: options.detectorStrategy }),
    except: ["ip"],
  });
  const strategy = options.detectorStrategy ?? redact();
  const lastApplied = annotation("kubectl.kubernetes.io/last-applied-configuration", drop());
  const workloadGroups = ["", "apps", "batch"];

  return policy({
    name: options.name ?? "hipaa-baseline",
    phiNamespaces: options.phiNamespaces ?? ["phi-*"],
    identities: ids,
    purposes: why,
    approvalGroups: [approvers],
    detectors: safeHarbor,
    rules: [
      // ---- never ------------------------------------------------------------------------------
      deny("no-namespace-deletion", {
        verbs: ["delete", "deletecollection"],
        resources: ["namespaces"],
        reason:
          "namespaces are never deleted through the gateway: deleting one destroys records that HIPAA requires to be retained",
        remediation: "retire a namespace through the change process with the platform team",
        framework: hipaa("164.310(d)(2)(i)"),
      }),
      deny("no-node-service-pod-proxy", {
        resources: ["nodes/proxy", "services/proxy", "pods/proxy"],
        reason: "API server proxies bypass the gateway's masking and evidence",
        remediation:
          "use kubectl port-forward (which needs approval in PHI namespaces) or the service's own ingress",
        framework: hipaa("164.312(a)(1)"),
      }),
      deny("no-secret-reads-by-agents", {
        who: [ids.ciAgents],
        verbs: READ,
        resources: ["secrets"],
        reason: "CI agents never read Secrets through the API",
        remediation: "mount the Secret into the workload, or use a workload identity",
        framework: hipaa("164.312(a)(1)"),
      }),
      deny("purpose-required-in-phi-namespaces", {
        phi: true,
        purpose: "absent",
        reason: "calls into PHI namespaces must declare a purpose of use",
        remediation:
          "send the Custos-Purpose header (treatment, payment, operations, incident-response), e.g. `custos login --purpose operations`",
        framework: hipaa("164.502(b)"),
      }),
      // ---- only with approval ----------------------------------------------------------------------
      requireApproval("rbac-changes", {
        verbs: ["create", "update", "patch"],
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["roles", "rolebindings", "clusterroles", "clusterrolebindings"],
        approval,
        reason: "RBAC changes widen who can reach PHI",
        remediation: "a reviewer of phi-approvers approves with `custos approve <id>`",
        framework: hipaa("164.308(a)(4)"),
      }),
      requireApproval("persistent-volumes", {
        verbs: WRITE,
        // the status subresource too: a status write (e.g. phase Available) is a change to the volume
        resources: ["persistentvolumes", "persistentvolumes/status"],
        approval,
        reason: "PersistentVolumes hold PHI at rest outside any namespace's controls",
        remediation: "a reviewer of phi-approvers approves with `custos approve <id>`",
        framework: hipaa("164.310(d)(1)"),
      }),
      requireApproval("exec-into-phi-pods", {
        verbs: ["create"],
        resources: ["pods/exec", "pods/attach", "pods/portforward"],
        phi: true,
        approval,
        recordSession: true,
        reason: "interactive access to a PHI workload reaches patient data directly",
        remediation:
          "a reviewer of phi-approvers approves with `custos approve <id>`; the session is recorded",
        framework: hipaa("164.312(b)"),
      }),
      // ---- everyone -----------------------------------------------------------------------------
      allow("api-discovery", {
        who: everyone,
        verbs: ["get"],
        nonResourceURLs: [
          "/api",
          "/api/*",
          "/apis",
          "/apis/*",
          "/openapi/*",
          "/version",
          "/healthz",
          "/livez",
          "/readyz",
        ],
        reason: "API discovery carries no patient data",
      }),
      allow("self-access-reviews", {
        who: everyone,
        verbs: ["create"],
        apiGroups: ["authorization.k8s.io", "authentication.k8s.io"],
        resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"],
        phi: false,
        reason: "callers may ask what they are allowed to do (kubectl auth can-i)",
      }),
      // ---- CI agents: minimum necessary -----------------------------------------------------------
      allow("ci-read-outside-phi", {
        who: [ids.ciAgents],
        verbs: READ,
        apiGroups: workloadGroups,
        resources: [
          "pods",
          "pods/log",
          "deployments",
          "replicasets",
          "statefulsets",
          "daemonsets",
          "jobs",
          "cronjobs",
          "services",
          "endpoints",
          "configmaps",
          "events",
          "namespaces",
        ],
        phi: false,
        reason: "CI reads workload state outside PHI namespaces",
        framework: hipaa("164.502(b)"),
      }),
      allow("ci-deploy-outside-phi", {
        who: [ids.ciAgents],
        verbs: ["create", "update", "patch"],
        apiGroups: workloadGroups,
        resources: ["deployments", "statefulsets", "jobs", "cronjobs", "services", "configmaps"],
        phi: false,
        reason: "CI deploys outside PHI namespaces",
      }),
      allow("ci-read-rollout-state-in-phi", {
        who: [ids.ciAgents],
        verbs: READ,
        apiGroups: workloadGroups,
        resources: ["pods", "pods/log", "deployments", "replicasets", "statefulsets", "jobs", "events"],
        phi: true,
        purpose: [why.operations],
        reason:
          "minimum necessary: CI reads rollout state in PHI namespaces for health care operations, masked",
        framework: hipaa("164.502(b)"),
      }),
      allow("ci-rollout-in-phi", {
        who: [ids.ciAgents],
        verbs: ["patch"],
        apiGroups: ["apps"],
        resources: ["deployments", "statefulsets"],
        phi: true,
        purpose: [why.operations],
        reason: "CI rolls out new images in PHI namespaces for health care operations",
        framework: hipaa("164.502(b)"),
      }),
      // ---- operators ------------------------------------------------------------------------------
      allow("operators-read", {
        who: humans,
        verbs: READ,
        reason: "operators read cluster state; PHI is masked on the way out",
        framework: hipaa("164.308(a)(4)"),
      }),
      allow("operators-exec-outside-phi", {
        who: humans,
        verbs: ["create"],
        resources: ["pods/exec", "pods/attach", "pods/portforward"],
        phi: false,
        recordSession: true,
        reason: "operators debug workloads outside PHI namespaces; sessions are recorded",
      }),
      allow("operators-manage-workloads", {
        who: humans,
        verbs: WRITE,
        apiGroups: ["", "apps", "batch", "autoscaling", "networking.k8s.io", "policy"],
        resources: [
          "pods",
          "pods/eviction",
          "deployments",
          "deployments/scale",
          "statefulsets",
          "statefulsets/scale",
          "daemonsets",
          "replicasets",
          "jobs",
          "cronjobs",
          "services",
          "configmaps",
          "persistentvolumeclaims",
          "horizontalpodautoscalers",
          "ingresses",
          "networkpolicies",
          "poddisruptionbudgets",
        ],
        reason: "operators manage workloads",
      }),
      // ---- admins -----------------------------------------------------------------------------------
      allow("admins-everything-else", {
        who: [ids.admins],
        verbs: ALL_VERBS,
        reason: "administrators manage the cluster; the denials and approvals above still apply",
        framework: hipaa("164.308(a)(3)"),
      }),
    ],
    masks: [
      mask("configmap-data", {
        description: "ConfigMap values in PHI namespaces are redacted",
        resources: ["configmaps"],
        phi: true,
        fields: [
          field("data.*", redact(), { label: "configmap-data" }),
          field("binaryData.*", drop(), { label: "configmap-binary" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("secret-data", {
        description: "Secret values never leave the gateway in clear, in any namespace",
        resources: ["secrets"],
        fields: [
          field("data.*", redact(), { label: "secret-data", base64: true }),
          field("stringData.*", redact(), { label: "secret-data" }),
          lastApplied,
        ],
        framework: hipaa("164.312(a)(1)"),
      }),
      mask("pod-env", {
        description: "container environment values in PHI namespaces",
        resources: ["pods"],
        phi: true,
        fields: [
          field("spec.containers[*].env[*].value", redact(), { label: "env" }),
          field("spec.initContainers[*].env[*].value", redact(), { label: "env" }),
          // `kubectl debug` adds these to a running pod
          field("spec.ephemeralContainers[*].env[*].value", redact(), { label: "env" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("workload-env", {
        description: "pod-template environment values in PHI namespaces",
        apiGroups: ["apps", "batch"],
        resources: ["deployments", "statefulsets", "daemonsets", "replicasets", "jobs"],
        phi: true,
        fields: [
          field("spec.template.spec.containers[*].env[*].value", redact(), { label: "env" }),
          field("spec.template.spec.initContainers[*].env[*].value", redact(), { label: "env" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("revision-env", {
        description:
          "StatefulSet and DaemonSet revisions keep a copy of the pod template (`kubectl rollout history --revision`)",
        apiGroups: ["apps"],
        resources: ["controllerrevisions"],
        phi: true,
        fields: [
          field("data.spec.template.spec.containers[*].env[*].value", redact(), { label: "env" }),
          field("data.spec.template.spec.initContainers[*].env[*].value", redact(), { label: "env" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("podtemplate-env", {
        description: "PodTemplate objects' environment values in PHI namespaces",
        resources: ["podtemplates"],
        phi: true,
        fields: [
          field("template.spec.containers[*].env[*].value", redact(), { label: "env" }),
          field("template.spec.initContainers[*].env[*].value", redact(), { label: "env" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("cronjob-env", {
        description: "cron job template environment values in PHI namespaces",
        apiGroups: ["batch"],
        resources: ["cronjobs"],
        phi: true,
        fields: [
          field("spec.jobTemplate.spec.template.spec.containers[*].env[*].value", redact(), { label: "env" }),
        ],
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("last-applied-and-identifiers", {
        description: "last-applied-configuration repeats every field above; patient annotations are masked",
        resources: ["*"],
        phi: true,
        fields: [lastApplied, ...(options.phiAnnotations ?? []).map((key) => annotation(key, strategy))],
        detectors: objectDetectors,
        framework: hipaa("164.514(b)(2)"),
      }),
      mask("logs-exec-and-events", {
        description: "Safe Harbor identifiers in logs, exec/attach streams and events, everywhere",
        resources: ["pods/log", "pods/exec", "pods/attach", "events"],
        detectors: safeHarbor,
        framework: hipaa("164.514(b)(2)"),
      }),
    ],
  });
}
