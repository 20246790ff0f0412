/**
 * Server-side printing (meta.k8s.io/v1 Table), with the columns kube-apiserver's printers
 * use for the common kinds (pkg/printers/internalversion) and Name/Age for any other kind.
 */
import type { Json, JsonObject } from "./errors.ts";
import { isObject } from "./patch.ts";
import type { PrinterColumn, ResourceDef } from "./resources.ts";

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = "None" | "Metadata" | "Object";

type Cell = string | number | boolean;
interface Column {
  name: string;
  type?: string;
  format?: string;
  priority?: number;
  description?: string;
  cell: (o: JsonObject, now: Date) => Cell;
}

const NAME_DESC =
  "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC =
  "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.floor(hours / 24) % 365;
    return dy === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${dy}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function get(o: Json | undefined, ...path: string[]): Json | undefined {
  let cur = o;
  for (const p of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}
const str = (v: Json | undefined, dflt = "<none>"): string =>
  v === undefined || v === null || v === "" ? dflt : String(v);
const list = (v: Json | undefined): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : []);
const count = (v: Json | undefined): number => (isObject(v) ? Object.keys(v).length : 0);

function age(key: string, ...path: string[]): Column {
  return {
    name: key,
    cell: (o, now) => {
      const t = get(o, ...path);
      return typeof t === "string" ? humanDuration(now.getTime() - Date.parse(t)) : "<unknown>";
    },
    description: AGE_DESC,
  };
}

const NAME: Column = {
  name: "Name",
  format: "name",
  description: NAME_DESC,
  cell: (o) => str(get(o, "metadata", "name"), ""),
};
const AGE = age("Age", "metadata", "creationTimestamp");

function podStatus(o: JsonObject): string {
  if (get(o, "metadata", "deletionTimestamp")) return "Terminating";
  const reason = get(o, "status", "reason");
  if (typeof reason === "string" && reason) return reason;
  for (const c of list(get(o, "status", "containerStatuses"))) {
    const waiting = get(c, "state", "waiting", "reason");
    if (typeof waiting === "string" && waiting) return waiting;
    const term = get(c, "state", "terminated", "reason");
    if (typeof term === "string" && term) return term;
  }
  return str(get(o, "status", "phase"), "Unknown");
}

const COLUMNS: Record<string, Column[]> = {
  "/pods": [
    NAME,
    {
      name: "Ready",
      description: "The aggregate readiness state of this pod for accepting traffic.",
      cell: (o) => {
        const cs = list(get(o, "status", "containerStatuses"));
        const total = list(get(o, "spec", "containers")).length;
        return `${cs.filter((c) => c.ready === true).length}/${total}`;
      },
    },
    { name: "Status", description: "The aggregate status of the containers in this pod.", cell: podStatus },
    {
      name: "Restarts",
      description:
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
      cell: (o) =>
        String(
          list(get(o, "status", "containerStatuses")).reduce((n, c) => n + Number(c.restartCount ?? 0), 0),
        ),
    },
    AGE,
    {
      name: "IP",
      priority: 1,
      description: "podIP address allocated to the pod.",
      cell: (o) => str(get(o, "status", "podIP")),
    },
    {
      name: "Node",
      priority: 1,
      description: "NodeName indicates in which node this pod is scheduled.",
      cell: (o) => str(get(o, "spec", "nodeName")),
    },
    {
      name: "Nominated Node",
      priority: 1,
      description: "nominatedNodeName is set when this pod preempts other pods on the node.",
      cell: (o) => str(get(o, "status", "nominatedNodeName")),
    },
    {
      name: "Readiness Gates",
      priority: 1,
      description: "If specified, all readiness gates will be evaluated for pod readiness.",
      cell: () => "<none>",
    },
  ],
  "/namespaces": [
    NAME,
    {
      name: "Status",
      description: "The status of the namespace",
      cell: (o) => str(get(o, "status", "phase"), "Active"),
    },
    AGE,
  ],
  "/configmaps": [
    NAME,
    {
      name: "Data",
      type: "integer",
      description: "Data contains the configuration data.",
      cell: (o) => count(get(o, "data")) + count(get(o, "binaryData")),
    },
    AGE,
  ],
  "/secrets": [
    NAME,
    {
      name: "Type",
      description: "Used to facilitate programmatic handling of secret data.",
      cell: (o) => str(get(o, "type"), "Opaque"),
    },
    {
      name: "Data",
      type: "integer",
      description: "Data contains the secret data.",
      cell: (o) => count(get(o, "data")),
    },
    AGE,
  ],
  "/serviceaccounts": [
    NAME,
    {
      name: "Secrets",
      type: "integer",
      description:
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
      cell: (o) => list(get(o, "secrets")).length,
    },
    AGE,
  ],
  "/services": [
    NAME,
    {
      name: "Type",
      description: "type determines how the Service is exposed.",
      cell: (o) => str(get(o, "spec", "type"), "ClusterIP"),
    },
    {
      name: "Cluster-IP",
      description: "clusterIP is the IP address of the service.",
      cell: (o) => str(get(o, "spec", "clusterIP"), "None"),
    },
    {
      name: "External-IP",
      description:
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
      cell: () => "<none>",
    },
    {
      name: "Port(s)",
      description: "The list of ports that are exposed by this service.",
      cell: (o) => {
        const ps = list(get(o, "spec", "ports")).map(
          (p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ""}/${str(p.protocol, "TCP")}`,
        );
        return ps.length > 0 ? ps.join(",") : "<none>";
      },
    },
    AGE,
    {
      name: "Selector",
      priority: 1,
      description: "Route service traffic to pods with label keys and values matching this selector.",
      cell: (o) => {
        const s = get(o, "spec", "selector");
        return isObject(s)
          ? Object.entries(s)
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(",")
          : "<none>";
      },
    },
  ],
  "/nodes": [
    NAME,
    {
      name: "Status",
      description: "The status of the node",
      cell: (o) =>
        list(get(o, "status", "conditions")).find((c) => c.type === "Ready")?.status === "True"
          ? "Ready"
          : "NotReady",
    },
    {
      name: "Roles",
      description: "The roles of the node",
      cell: (o) => {
        const labels = get(o, "metadata", "labels");
        const roles = isObject(labels)
          ? Object.keys(labels)
              .filter((k) => k.startsWith("node-role.kubernetes.io/"))
              .map((k) => k.slice(24))
          : [];
        return roles.length > 0 ? roles.join(",") : "<none>";
      },
    },
    AGE,
    {
      name: "Version",
      description: "Kubelet Version reported by the node.",
      cell: (o) => str(get(o, "status", "nodeInfo", "kubeletVersion"), ""),
    },
  ],
  "/events": [
    {
      name: "Last Seen",
      description: "Time when this Event was last seen",
      cell: (o, now) => {
        const t = get(o, "lastTimestamp") ?? get(o, "eventTime") ?? get(o, "metadata", "creationTimestamp");
        return typeof t === "string" ? humanDuration(now.getTime() - Date.parse(t)) : "<unknown>";
      },
    },
    {
      name: "Type",
      description: "Type of this event (Normal, Warning), new types could be added in the future.",
      cell: (o) => str(get(o, "type"), "Normal"),
    },
    {
      name: "Reason",
      description: "Reason is why the action was taken. It is human-readable.",
      cell: (o) => str(get(o, "reason"), ""),
    },
    {
      name: "Object",
      description: "The object that this event is about. Mapped to Event.involvedObject",
      cell: (o) =>
        `${str(get(o, "involvedObject", "kind"), "").toLowerCase()}/${str(get(o, "involvedObject", "name"), "")}`,
    },
    {
      name: "Message",
      description: "A human-readable description of the status of this operation.",
      cell: (o) => str(get(o, "message"), ""),
    },
  ],
  "apps/deployments": [
    NAME,
    {
      name: "Ready",
      description: "Number of the pod with ready state",
      cell: (o) =>
        `${Number(get(o, "status", "readyReplicas") ?? 0)}/${Number(get(o, "spec", "replicas") ?? 1)}`,
    },
    {
      name: "Up-to-date",
      type: "integer",
      description:
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
      cell: (o) => Number(get(o, "status", "updatedReplicas") ?? 0),
    },
    {
      name: "Available",
      type: "integer",
      description:
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
      cell: (o) => Number(get(o, "status", "availableReplicas") ?? 0),
    },
    AGE,
  ],
  "apps/replicasets": [
    NAME,
    {
      name: "Desired",
      type: "integer",
      description: "Replicas is the number of desired replicas.",
      cell: (o) => Number(get(o, "spec", "replicas") ?? 1),
    },
    {
      name: "Current",
      type: "integer",
      description: "Replicas is the most recently observed number of replicas.",
      cell: (o) => Number(get(o, "status", "replicas") ?? 0),
    },
    {
      name: "Ready",
      type: "integer",
      description: "The number of ready replicas for this replica set.",
      cell: (o) => Number(get(o, "status", "readyReplicas") ?? 0),
    },
    AGE,
  ],
  "apps/statefulsets": [
    NAME,
    {
      name: "Ready",
      description: "Number of the pod with ready state",
      cell: (o) =>
        `${Number(get(o, "status", "readyReplicas") ?? 0)}/${Number(get(o, "spec", "replicas") ?? 1)}`,
    },
    AGE,
  ],
  "/persistentvolumes": [
    NAME,
    {
      name: "Capacity",
      description: "capacity is the description of the persistent volume's resources and capacity.",
      cell: (o) => str(get(o, "spec", "capacity", "storage"), ""),
    },
    {
      name: "Access Modes",
      description: "accessModes contains all ways the volume can be mounted.",
      cell: (o) => accessModes(get(o, "spec", "accessModes")),
    },
    {
      name: "Reclaim Policy",
      description:
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
      cell: (o) => str(get(o, "spec", "persistentVolumeReclaimPolicy"), ""),
    },
    {
      name: "Status",
      description: "phase indicates if a volume is available, bound to a claim, or released by a claim.",
      cell: (o) => str(get(o, "status", "phase"), ""),
    },
    {
      name: "Claim",
      description:
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
      cell: (o) =>
        get(o, "spec", "claimRef")
          ? `${str(get(o, "spec", "claimRef", "namespace"), "")}/${str(get(o, "spec", "claimRef", "name"), "")}`
          : "",
    },
    {
      name: "StorageClass",
      description: "storageClassName is the name of StorageClass to which this persistent volume belongs.",
      cell: (o) => str(get(o, "spec", "storageClassName"), ""),
    },
    {
      name: "VolumeAttributesClass",
      description: "Name of VolumeAttributesClass to which this persistent volume belongs.",
      cell: () => "<unset>",
    },
    {
      name: "Reason",
      description: "reason is a brief CamelCase string that describes any failure.",
      cell: (o) => str(get(o, "status", "reason"), ""),
    },
    AGE,
  ],
  "/persistentvolumeclaims": [
    NAME,
    {
      name: "Status",
      description: "phase represents the current phase of PersistentVolumeClaim.",
      cell: (o) => str(get(o, "status", "phase"), ""),
    },
    {
      name: "Volume",
      description: "volumeName is the binding reference to the PersistentVolume backing this claim.",
      cell: (o) => str(get(o, "spec", "volumeName"), ""),
    },
    {
      name: "Capacity",
      description: "capacity represents the actual resources of the underlying volume.",
      cell: (o) => str(get(o, "status", "capacity", "storage"), ""),
    },
    {
      name: "Access Modes",
      description: "accessModes contains the desired access modes the volume should have.",
      cell: (o) => accessModes(get(o, "status", "accessModes")),
    },
    {
      name: "StorageClass",
      description: "storageClassName is the name of the StorageClass required by the claim.",
      cell: (o) => str(get(o, "spec", "storageClassName"), ""),
    },
    {
      name: "VolumeAttributesClass",
      description:
        "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
      cell: () => "<unset>",
    },
    AGE,
  ],
  "rbac.authorization.k8s.io/rolebindings": bindingColumns(),
  "rbac.authorization.k8s.io/clusterrolebindings": bindingColumns(),
  "rbac.authorization.k8s.io/roles": [
    NAME,
    {
      ...age("Created At", "metadata", "creationTimestamp"),
      type: "date",
      cell: (o) => str(get(o, "metadata", "creationTimestamp"), ""),
    },
  ],
  "rbac.authorization.k8s.io/clusterroles": [
    NAME,
    {
      ...age("Created At", "metadata", "creationTimestamp"),
      type: "date",
      cell: (o) => str(get(o, "metadata", "creationTimestamp"), ""),
    },
  ],
};

function accessModes(v: Json | undefined): string {
  const short: Record<string, string> = {
    ReadWriteOnce: "RWO",
    ReadOnlyMany: "ROX",
    ReadWriteMany: "RWX",
    ReadWriteOncePod: "RWOP",
  };
  return Array.isArray(v) ? v.map((m) => short[String(m)] ?? String(m)).join(",") : "";
}

function bindingColumns(): Column[] {
  const subjects = (kind: string) => (o: JsonObject) =>
    list(get(o, "subjects"))
      .filter((s) => s.kind === kind)
      .map((s) =>
        kind === "ServiceAccount" ? `${str(s.namespace, "")}/${str(s.name, "")}` : str(s.name, ""),
      )
      .join(", ");
  return [
    NAME,
    {
      name: "Role",
      description: "RoleRef references the role being bound",
      cell: (o) => `${str(get(o, "roleRef", "kind"), "")}/${str(get(o, "roleRef", "name"), "")}`,
    },
    AGE,
    { name: "Users", priority: 1, description: "Users in the roleBinding", cell: subjects("User") },
    { name: "Groups", priority: 1, description: "Groups in the roleBinding", cell: subjects("Group") },
    {
      name: "ServiceAccounts",
      priority: 1,
      description: "ServiceAccounts in the roleBinding",
      cell: subjects("ServiceAccount"),
    },
  ];
}

/**
 * A printer column's simple JSONPath (`.spec.patientName`, `.status.conditions[0].type`), as
 * kube-apiserver's custom resource table convertor reads it; undefined when it finds nothing.
 */
function jsonPath(o: JsonObject, path: string): Json | undefined {
  const segs = path
    .replace(/^\{?\.?/, "")
    .replace(/\}$/, "")
    .split(/\.|\[(\d+)\]/)
    .filter((x) => x !== undefined && x !== "");
  let cur: Json | undefined = o;
  for (const s of segs) {
    if (Array.isArray(cur) && /^\d+$/.test(s)) cur = cur[Number(s)];
    else if (isObject(cur)) cur = cur[s];
    else return undefined;
  }
  return cur;
}

/** apiextensions-apiserver's tableconvertor: a string column prints its value, others keep their type */
function printerColumn(c: PrinterColumn): Column {
  return {
    name: c.name,
    type: c.type,
    format: c.format ?? "",
    priority: c.priority ?? 0,
    description: c.description ?? "",
    cell: (o, now) => {
      const v = jsonPath(o, c.jsonPath);
      if (v === undefined || v === null) return null as unknown as Cell;
      if (c.type === "date")
        return typeof v === "string" && !Number.isNaN(Date.parse(v))
          ? humanDuration(now.getTime() - Date.parse(v))
          : "<invalid>";
      if (c.type === "string") return typeof v === "object" ? JSON.stringify(v) : String(v);
      if (c.type === "integer" && typeof v === "number") return Math.trunc(v);
      return v as Cell;
    },
  };
}

function columnsFor(def: ResourceDef): Column[] {
  if (def.printerColumns) return [NAME, ...def.printerColumns.map(printerColumn)];
  const key = `${def.group === "events.k8s.io" ? "" : def.group}/${def.resource}`;
  return COLUMNS[key] ?? [NAME, AGE];
}

export function columnDefinitions(def: ResourceDef): ColumnDefinition[] {
  return columnsFor(def).map((c) => ({
    name: c.name,
    type: c.type ?? "string",
    format: c.format ?? "",
    description: c.description ?? "",
    priority: c.priority ?? 0,
  }));
}

/**
 * A row's object as kube-apiserver's asTable writes it: None, null (TableRow.object is a
 * RawExtension, which encodes an absent object as null); Metadata, a PartialObjectMetadata in
 * the Table's own version; Object, the object.
 */
export function rowObject(o: JsonObject, include: IncludeObject, tableVersion = "v1"): JsonObject | null {
  if (include === "None") return null;
  if (include === "Object") return o;
  return {
    kind: "PartialObjectMetadata",
    apiVersion: `meta.k8s.io/${tableVersion}`,
    metadata: (o.metadata ?? {}) as JsonObject,
  };
}

/**
 * A Table of `items` (storage-shaped objects). `rowsFrom` lets events.k8s.io rows print from
 * the core shape. Column definitions are left out when `noHeaders` (watch events after the first).
 */
export function toTable(
  def: ResourceDef,
  items: Array<{ printed: JsonObject; returned: JsonObject }>,
  listMeta: JsonObject,
  opts: { include: IncludeObject; now: Date; noHeaders?: boolean; version?: string },
): JsonObject {
  const cols = columnsFor(def);
  const version = opts.version ?? "v1";
  return {
    kind: "Table",
    apiVersion: `meta.k8s.io/${version}`,
    metadata: listMeta,
    columnDefinitions: opts.noHeaders ? [] : (columnDefinitions(def) as unknown as Json[]),
    rows: items.map(({ printed, returned }) => {
      const row: JsonObject = { cells: cols.map((c) => c.cell(printed, opts.now)) };
      row.object = rowObject(returned, opts.include, version);
      return row;
    }),
  };
}
