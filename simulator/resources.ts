/**
 * The API resources the simulator serves: one table of built-ins (group, version, plural,
 * kind, scope, verbs, short names, subresources, as kube-apiserver 1.32 advertises them) plus
 * kinds registered at run time for seeded objects of any other apiVersion/kind, so every kind
 * goes through the same generic storage.
 */

export interface SubresourceDef {
  name: string;
  kind: string;
  group?: string;
  version?: string;
  verbs: string[];
}

export interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  subresources: SubresourceDef[];
  /** storage key shared by resources that are the same objects in another group (events) */
  storage: string;
  /** a custom resource's additionalPrinterColumns (its CRD's, for this version) */
  printerColumns?: PrinterColumn[];
}

/** apiextensions.k8s.io/v1 CustomResourceColumnDefinition */
export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

const CRUD = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CREATE_ONLY = ["create"];
const STATUS: SubresourceDef = { name: "status", kind: "", verbs: ["get", "patch", "update"] };

function def(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  extra: Partial<Omit<ResourceDef, "group" | "version" | "resource" | "kind" | "namespaced">> = {},
): ResourceDef {
  const subresources = (extra.subresources ?? []).map((s) => ({ ...s, kind: s.kind || kind }));
  return {
    group,
    version,
    resource,
    kind,
    singular: extra.singular ?? kind.toLowerCase(),
    namespaced,
    verbs: extra.verbs ?? CRUD,
    ...(extra.shortNames ? { shortNames: extra.shortNames } : {}),
    ...(extra.categories ? { categories: extra.categories } : {}),
    subresources,
    storage: extra.storage ?? `${group}/${resource}`,
  };
}

const scale: SubresourceDef = {
  name: "scale",
  kind: "Scale",
  group: "autoscaling",
  version: "v1",
  verbs: ["get", "patch", "update"],
};

export function builtinResources(): ResourceDef[] {
  return [
    def("", "v1", "namespaces", "Namespace", false, {
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      shortNames: ["ns"],
      subresources: [{ name: "finalize", kind: "", verbs: ["update"] }, STATUS],
    }),
    def("", "v1", "pods", "Pod", true, {
      shortNames: ["po"],
      categories: ["all"],
      subresources: [
        { name: "attach", kind: "PodAttachOptions", verbs: ["create", "get"] },
        { name: "binding", kind: "Binding", verbs: ["create"] },
        { name: "ephemeralcontainers", kind: "", verbs: ["get", "patch", "update"] },
        { name: "eviction", kind: "Eviction", group: "policy", version: "v1", verbs: ["create"] },
        { name: "exec", kind: "PodExecOptions", verbs: ["create", "get"] },
        { name: "log", kind: "", verbs: ["get"] },
        { name: "portforward", kind: "PodPortForwardOptions", verbs: ["create", "get"] },
        { name: "proxy", kind: "PodProxyOptions", verbs: ["create", "delete", "get", "patch", "update"] },
        STATUS,
      ],
    }),
    def("", "v1", "configmaps", "ConfigMap", true, { shortNames: ["cm"] }),
    def("", "v1", "secrets", "Secret", true),
    def("", "v1", "services", "Service", true, {
      shortNames: ["svc"],
      categories: ["all"],
      subresources: [
        { name: "proxy", kind: "ServiceProxyOptions", verbs: ["create", "delete", "get", "patch", "update"] },
        STATUS,
      ],
    }),
    def("", "v1", "endpoints", "Endpoints", true, { shortNames: ["ep"], singular: "endpoints" }),
    def("", "v1", "events", "Event", true, { shortNames: ["ev"], storage: "events" }),
    def("", "v1", "serviceaccounts", "ServiceAccount", true, {
      shortNames: ["sa"],
      subresources: [
        {
          name: "token",
          kind: "TokenRequest",
          group: "authentication.k8s.io",
          version: "v1",
          verbs: ["create"],
        },
      ],
    }),
    def("", "v1", "persistentvolumes", "PersistentVolume", false, {
      shortNames: ["pv"],
      subresources: [STATUS],
    }),
    def("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, {
      shortNames: ["pvc"],
      subresources: [STATUS],
    }),
    def("", "v1", "nodes", "Node", false, {
      shortNames: ["no"],
      subresources: [
        { name: "proxy", kind: "NodeProxyOptions", verbs: ["create", "delete", "get", "patch", "update"] },
        STATUS,
      ],
    }),
    def("apps", "v1", "deployments", "Deployment", true, {
      shortNames: ["deploy"],
      categories: ["all"],
      subresources: [scale, STATUS],
    }),
    def("apps", "v1", "replicasets", "ReplicaSet", true, {
      shortNames: ["rs"],
      categories: ["all"],
      subresources: [scale, STATUS],
    }),
    def("apps", "v1", "statefulsets", "StatefulSet", true, {
      shortNames: ["sts"],
      categories: ["all"],
      subresources: [scale, STATUS],
    }),
    def("apps", "v1", "daemonsets", "DaemonSet", true, {
      shortNames: ["ds"],
      categories: ["all"],
      subresources: [STATUS],
    }),
    def("batch", "v1", "jobs", "Job", true, { categories: ["all"], subresources: [STATUS] }),
    def("batch", "v1", "cronjobs", "CronJob", true, {
      shortNames: ["cj"],
      categories: ["all"],
      subresources: [STATUS],
    }),
    def("events.k8s.io", "v1", "events", "Event", true, { shortNames: ["ev"], storage: "events" }),
    def("networking.k8s.io", "v1", "ingresses", "Ingress", true, {
      shortNames: ["ing"],
      subresources: [STATUS],
    }),
    def("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, { shortNames: ["netpol"] }),
    def("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, { shortNames: ["sc"] }),
    def("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false),
    def("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false),
    def("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true),
    def("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
    def("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", true, {
      verbs: CREATE_ONLY,
    }),
    def("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, {
      verbs: CREATE_ONLY,
    }),
    def("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, {
      verbs: CREATE_ONLY,
    }),
    def("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", false, {
      verbs: CREATE_ONLY,
    }),
    def("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false, {
      verbs: CREATE_ONLY,
    }),
    def("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, { verbs: CREATE_ONLY }),
  ];
}

/** Resources answered by a handler rather than stored (reviews). */
export function isReview(r: ResourceDef): boolean {
  return r.verbs.length === 1 && r.verbs[0] === "create";
}

/** English plural the way kubectl/controller-gen guess it (good enough for seeded custom kinds). */
export function pluralize(kind: string): string {
  const k = kind.toLowerCase();
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  return `${k}s`;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf("/");
  return i < 0
    ? { group: "", version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export function apiVersionOf(r: { group: string; version: string }): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

export class ResourceRegistry {
  private readonly all: ResourceDef[] = [];

  constructor(defs: ResourceDef[] = builtinResources()) {
    for (const d of defs) this.add(d);
  }

  add(d: ResourceDef): void {
    if (!this.byResource(d.group, d.version, d.resource)) this.all.push(d);
  }

  list(): readonly ResourceDef[] {
    return this.all;
  }

  byResource(group: string, version: string, resource: string): ResourceDef | undefined {
    return this.all.find((d) => d.group === group && d.version === version && d.resource === resource);
  }

  byKind(apiVersion: string, kind: string): ResourceDef | undefined {
    const { group, version } = splitApiVersion(apiVersion);
    return this.all.find((d) => d.group === group && d.version === version && d.kind === kind);
  }

  /** The resource for a seeded object, registering a new kind (namespaced if the object has a namespace). */
  ensureKind(apiVersion: string, kind: string, namespaced: boolean): ResourceDef {
    const found = this.byKind(apiVersion, kind);
    if (found) return found;
    const { group, version } = splitApiVersion(apiVersion);
    const d = def(group, version, pluralize(kind), kind, namespaced, { subresources: [STATUS] });
    this.add(d);
    return d;
  }

  /**
   * The resources a CustomResourceDefinition (apiextensions.k8s.io/v1) defines: one per served
   * version, with its printer columns (kube-apiserver defaults them to Age when none are given).
   */
  addCustomResource(crd: Record<string, unknown>): ResourceDef[] {
    const spec = crd.spec as Record<string, unknown> | undefined;
    const names = spec?.names as Record<string, unknown> | undefined;
    if (!spec || !names || typeof spec.group !== "string" || typeof names.kind !== "string") return [];
    const kind = names.kind;
    const out: ResourceDef[] = [];
    for (const v of Array.isArray(spec.versions) ? spec.versions : []) {
      const ver = v as Record<string, unknown>;
      if (typeof ver.name !== "string" || ver.served === false) continue;
      const cols = Array.isArray(ver.additionalPrinterColumns)
        ? (ver.additionalPrinterColumns as PrinterColumn[])
        : [{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }];
      const extra: Parameters<typeof def>[5] = {
        singular: typeof names.singular === "string" ? names.singular : kind.toLowerCase(),
        subresources: [STATUS],
      };
      if (Array.isArray(names.shortNames)) extra.shortNames = names.shortNames as string[];
      if (Array.isArray(names.categories)) extra.categories = names.categories as string[];
      const d = def(
        spec.group,
        ver.name,
        typeof names.plural === "string" ? names.plural : pluralize(kind),
        kind,
        spec.scope !== "Cluster",
        extra,
      );
      d.printerColumns = cols;
      this.add(d);
      out.push(d);
    }
    return out;
  }

  /** group -> versions, in registration order (core group "" first) */
  groups(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const d of this.all) {
      const vs = m.get(d.group) ?? [];
      if (!vs.includes(d.version)) vs.push(d.version);
      m.set(d.group, vs);
    }
    return m;
  }
}
