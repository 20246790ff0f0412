/**
 * A strict decoder for the Kubernetes protobuf request bodies kubectl's typed generators send
 * (`kubectl create namespace|configmap|secret|serviceaccount|role|clusterrole|rolebinding|
 * clusterrolebinding|deployment|service|job|cronjob`): the envelope (magic `k8s\0` +
 * runtime.Unknown{1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType},
 * k8s.io/apimachinery/pkg/runtime/generated.proto) and the message schemas of those kinds
 * (field numbers from k8s.io/api's generated.proto: core/v1, apps/v1, batch/v1, rbac/v1),
 * decoded into the JSON a JSON client would have sent.
 *
 * Fail closed: a kind, a field number or a non-zero value the schema does not know is refused
 * (ProtobufUnsupportedError), never skipped, so the policy always sees everything that would be
 * forwarded. Fields gogo-protobuf always emits but that the schema does not model (status,
 * resources, strategy, ...) are accepted only while every value inside is zero.
 *
 * Shared by the gateway and the simulator (this module imports nothing from either).
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export const PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf";
export const K8S_MAGIC = Uint8Array.from([0x6b, 0x38, 0x73, 0x00]);

/** The bytes are not valid protobuf / not a Kubernetes envelope. */
export class ProtobufMalformedError extends Error {
  readonly code = "PROTOBUF_MALFORMED";
  readonly data: { path: string };
  constructor(problem: string, path = "") {
    super(`protobuf: ${problem}${path ? ` at ${path}` : ""}`);
    this.data = { path };
  }
}

/** Valid protobuf, but a kind or field this decoder does not read: the body must not be forwarded. */
export class ProtobufUnsupportedError extends Error {
  readonly code = "PROTOBUF_UNSUPPORTED";
  readonly data: { kind: string; path: string };
  constructor(problem: string, kind: string, path = "") {
    super(`protobuf: ${problem}${path ? ` at ${path}` : ""}`);
    this.data = { kind, path };
  }
}

// ---------------------------------------------------------------- wire format

export interface WireField {
  no: number;
  wire: 0 | 2;
  varint?: bigint;
  bytes?: Uint8Array;
}

function readVarint(buf: Uint8Array, pos: number, path: string): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new ProtobufMalformedError("truncated varint", path);
    const b = buf[pos++] as number;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result & 0xffff_ffff_ffff_ffffn, pos];
    shift += 7n;
  }
  throw new ProtobufMalformedError("varint longer than 10 bytes", path);
}

/** Split one message into its fields (varint and length-delimited only: Kubernetes uses no others). */
export function readFields(buf: Uint8Array, path = ""): WireField[] {
  const out: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos, path);
    pos = p1;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0 || no > 536_870_911) throw new ProtobufMalformedError(`invalid field number ${no}`, path);
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos, path);
      pos = p2;
      out.push({ no, wire: 0, varint: v });
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos, path);
      if (BigInt(p2) + len > BigInt(buf.length))
        throw new ProtobufMalformedError(`field ${no} runs past the end of the message`, path);
      const n = Number(len);
      out.push({ no, wire: 2, bytes: buf.subarray(p2, p2 + n) });
      pos = p2 + n;
    } else
      throw new ProtobufMalformedError(
        `field ${no} has wire type ${wire}, which Kubernetes does not use`,
        path,
      );
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
function text(b: Uint8Array, path: string): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new ProtobufMalformedError("invalid UTF-8 in a string field", path);
  }
}

/** int64/int32 varints are two's complement over 64 bits; refuse what a JSON number cannot hold exactly */
function toInt(v: bigint, path: string): number {
  const s = v >= 1n << 63n ? v - (1n << 64n) : v;
  if (s > BigInt(Number.MAX_SAFE_INTEGER) || s < BigInt(Number.MIN_SAFE_INTEGER))
    throw new ProtobufMalformedError("integer beyond 2^53", path);
  return Number(s);
}

function base64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

// ---------------------------------------------------------------- schemas

export type FieldType =
  | "string"
  | "int"
  | "bool"
  | "bytes"
  | "time"
  | "intOrString"
  | "quantity"
  /** always emitted by gogo-protobuf but not modelled: accepted only while all zero, never output */
  | "zero"
  | { msg: () => Schema }
  | { map: "string" | "bytes" };

export interface FieldDef {
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** a pointer field in Go (`*int32`, `*bool`): present means set, even when zero */
  ptr?: boolean;
}
export type Schema = Record<number, FieldDef>;

const f = (name: string, type: FieldType, o: { repeated?: boolean; ptr?: boolean } = {}): FieldDef => ({
  name,
  type,
  ...o,
});
const m = (s: () => Schema): FieldType => ({ msg: s });
const rep = { repeated: true } as const;
const ptr = { ptr: true } as const;

const OwnerReference: Schema = {
  1: f("kind", "string"),
  3: f("name", "string"),
  4: f("uid", "string"),
  5: f("apiVersion", "string"),
  6: f("controller", "bool", ptr),
  7: f("blockOwnerDeletion", "bool", ptr),
};
const ObjectMeta: Schema = {
  1: f("name", "string"),
  2: f("generateName", "string"),
  3: f("namespace", "string"),
  4: f("selfLink", "string"),
  5: f("uid", "string"),
  6: f("resourceVersion", "string"),
  7: f("generation", "int"),
  8: f("creationTimestamp", "time"),
  9: f("deletionTimestamp", "time"),
  10: f("deletionGracePeriodSeconds", "int", ptr),
  11: f("labels", { map: "string" }),
  12: f("annotations", { map: "string" }),
  13: f(
    "ownerReferences",
    m(() => OwnerReference),
    rep,
  ),
  14: f("finalizers", "string", rep),
};
const LabelSelectorRequirement: Schema = {
  1: f("key", "string"),
  2: f("operator", "string"),
  3: f("values", "string", rep),
};
const LabelSelector: Schema = {
  1: f("matchLabels", { map: "string" }),
  2: f(
    "matchExpressions",
    m(() => LabelSelectorRequirement),
    rep,
  ),
};
const EnvVar: Schema = { 1: f("name", "string"), 2: f("value", "string") };
const ContainerPort: Schema = {
  1: f("name", "string"),
  2: f("hostPort", "int"),
  3: f("containerPort", "int"),
  4: f("protocol", "string"),
  5: f("hostIP", "string"),
};
const Capabilities: Schema = { 1: f("add", "string", rep), 2: f("drop", "string", rep) };
const SecurityContext: Schema = {
  1: f(
    "capabilities",
    m(() => Capabilities),
  ),
  2: f("privileged", "bool", ptr),
  4: f("runAsUser", "int", ptr),
  5: f("runAsNonRoot", "bool", ptr),
  6: f("readOnlyRootFilesystem", "bool", ptr),
  7: f("allowPrivilegeEscalation", "bool", ptr),
  8: f("runAsGroup", "int", ptr),
};
const ResourceRequirements: Schema = {
  1: f("limits", { map: "string" }),
  2: f("requests", { map: "string" }),
};
const Container: Schema = {
  1: f("name", "string"),
  2: f("image", "string"),
  3: f("command", "string", rep),
  4: f("args", "string", rep),
  5: f("workingDir", "string"),
  6: f(
    "ports",
    m(() => ContainerPort),
    rep,
  ),
  7: f(
    "env",
    m(() => EnvVar),
    rep,
  ),
  8: f(
    "resources",
    m(() => ResourceRequirements),
  ),
  13: f("terminationMessagePath", "string"),
  14: f("imagePullPolicy", "string"),
  15: f(
    "securityContext",
    m(() => SecurityContext),
  ),
  16: f("stdin", "bool"),
  17: f("stdinOnce", "bool"),
  18: f("tty", "bool"),
  20: f("terminationMessagePolicy", "string"),
};
const PodSpec: Schema = {
  2: f(
    "containers",
    m(() => Container),
    rep,
  ),
  3: f("restartPolicy", "string"),
  4: f("terminationGracePeriodSeconds", "int", ptr),
  5: f("activeDeadlineSeconds", "int", ptr),
  6: f("dnsPolicy", "string"),
  7: f("nodeSelector", { map: "string" }),
  8: f("serviceAccountName", "string"),
  9: f("serviceAccount", "string"),
  10: f("nodeName", "string"),
  11: f("hostNetwork", "bool"),
  12: f("hostPID", "bool"),
  13: f("hostIPC", "bool"),
  16: f("hostname", "string"),
  17: f("subdomain", "string"),
  19: f("schedulerName", "string"),
  20: f(
    "initContainers",
    m(() => Container),
    rep,
  ),
  21: f("automountServiceAccountToken", "bool", ptr),
  24: f("priorityClassName", "string"),
};
const PodTemplateSpec: Schema = {
  1: f(
    "metadata",
    m(() => ObjectMeta),
  ),
  2: f(
    "spec",
    m(() => PodSpec),
  ),
};
const PolicyRule: Schema = {
  1: f("verbs", "string", rep),
  2: f("apiGroups", "string", rep),
  3: f("resources", "string", rep),
  4: f("resourceNames", "string", rep),
  5: f("nonResourceURLs", "string", rep),
};
const Subject: Schema = {
  1: f("kind", "string"),
  2: f("apiGroup", "string"),
  3: f("name", "string"),
  4: f("namespace", "string"),
};
const RoleRef: Schema = { 1: f("apiGroup", "string"), 2: f("kind", "string"), 3: f("name", "string") };
const ServicePort: Schema = {
  1: f("name", "string"),
  2: f("protocol", "string"),
  3: f("port", "int"),
  4: f("targetPort", "intOrString"),
  5: f("nodePort", "int"),
  6: f("appProtocol", "string", ptr),
};
const ServiceSpec: Schema = {
  1: f(
    "ports",
    m(() => ServicePort),
    rep,
  ),
  2: f("selector", { map: "string" }),
  3: f("clusterIP", "string"),
  4: f("type", "string"),
  5: f("externalIPs", "string", rep),
  7: f("sessionAffinity", "string"),
  8: f("loadBalancerIP", "string"),
  10: f("externalName", "string"),
  11: f("externalTrafficPolicy", "string"),
  12: f("healthCheckNodePort", "int"),
  13: f("publishNotReadyAddresses", "bool"),
  18: f("clusterIPs", "string", rep),
};
const JobSpec: Schema = {
  1: f("parallelism", "int", ptr),
  2: f("completions", "int", ptr),
  3: f("activeDeadlineSeconds", "int", ptr),
  4: f(
    "selector",
    m(() => LabelSelector),
  ),
  5: f("manualSelector", "bool", ptr),
  6: f(
    "template",
    m(() => PodTemplateSpec),
  ),
  7: f("backoffLimit", "int", ptr),
  8: f("ttlSecondsAfterFinished", "int", ptr),
  9: f("completionMode", "string", ptr),
  10: f("suspend", "bool", ptr),
};
const meta = {
  1: f(
    "metadata",
    m(() => ObjectMeta),
  ),
};
const status = { 3: f("status", "zero") };

/** The kinds this decoder reads, by `apiVersion/kind`. */
export const KIND_SCHEMAS: Readonly<Record<string, Schema>> = {
  "v1/Namespace": {
    ...meta,
    2: f(
      "spec",
      m(() => ({ 1: f("finalizers", "string", rep) })),
    ),
    ...status,
  },
  "v1/ConfigMap": {
    ...meta,
    2: f("data", { map: "string" }),
    3: f("binaryData", { map: "bytes" }),
    4: f("immutable", "bool", ptr),
  },
  "v1/Secret": {
    ...meta,
    2: f("data", { map: "bytes" }),
    3: f("type", "string"),
    4: f("stringData", { map: "string" }),
    5: f("immutable", "bool", ptr),
  },
  "v1/ServiceAccount": {
    ...meta,
    3: f(
      "imagePullSecrets",
      m(() => ({ 1: f("name", "string") })),
      rep,
    ),
    4: f("automountServiceAccountToken", "bool", ptr),
  },
  "v1/Service": {
    ...meta,
    2: f(
      "spec",
      m(() => ServiceSpec),
    ),
    ...status,
  },
  "v1/Pod": {
    ...meta,
    2: f(
      "spec",
      m(() => PodSpec),
    ),
    ...status,
  },
  "apps/v1/Deployment": {
    ...meta,
    2: f(
      "spec",
      m(() => ({
        1: f("replicas", "int", ptr),
        2: f(
          "selector",
          m(() => LabelSelector),
        ),
        3: f(
          "template",
          m(() => PodTemplateSpec),
        ),
        4: f("strategy", "zero"),
        5: f("minReadySeconds", "int"),
        6: f("revisionHistoryLimit", "int", ptr),
        7: f("paused", "bool"),
        9: f("progressDeadlineSeconds", "int", ptr),
      })),
    ),
    ...status,
  },
  "batch/v1/Job": {
    ...meta,
    2: f(
      "spec",
      m(() => JobSpec),
    ),
    ...status,
  },
  "batch/v1/CronJob": {
    ...meta,
    2: f(
      "spec",
      m(() => ({
        1: f("schedule", "string"),
        2: f("startingDeadlineSeconds", "int", ptr),
        3: f("concurrencyPolicy", "string"),
        4: f("suspend", "bool", ptr),
        5: f(
          "jobTemplate",
          m(() => ({
            1: f(
              "metadata",
              m(() => ObjectMeta),
            ),
            2: f(
              "spec",
              m(() => JobSpec),
            ),
          })),
        ),
        6: f("successfulJobsHistoryLimit", "int", ptr),
        7: f("failedJobsHistoryLimit", "int", ptr),
        8: f("timeZone", "string", ptr),
      })),
    ),
    ...status,
  },
  "rbac.authorization.k8s.io/v1/Role": {
    ...meta,
    2: f(
      "rules",
      m(() => PolicyRule),
      rep,
    ),
  },
  "rbac.authorization.k8s.io/v1/ClusterRole": {
    ...meta,
    2: f(
      "rules",
      m(() => PolicyRule),
      rep,
    ),
  },
  "rbac.authorization.k8s.io/v1/RoleBinding": {
    ...meta,
    2: f(
      "subjects",
      m(() => Subject),
      rep,
    ),
    3: f(
      "roleRef",
      m(() => RoleRef),
    ),
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    ...meta,
    2: f(
      "subjects",
      m(() => Subject),
      rep,
    ),
    3: f(
      "roleRef",
      m(() => RoleRef),
    ),
  },
};

// ---------------------------------------------------------------- decoding

export interface Envelope {
  apiVersion: string;
  kind: string;
  raw: Uint8Array;
  contentType: string;
}

export function hasMagic(body: Uint8Array): boolean {
  return body.length >= 4 && K8S_MAGIC.every((b, i) => body[i] === b);
}

/** The runtime.Unknown envelope. */
export function decodeEnvelope(body: Uint8Array): Envelope {
  if (!hasMagic(body)) throw new ProtobufMalformedError("missing the k8s\\0 envelope magic");
  let apiVersion = "";
  let kind = "";
  let raw: Uint8Array = new Uint8Array();
  let contentType = "";
  for (const fl of readFields(body.subarray(4), "envelope")) {
    if (fl.wire !== 2 || !fl.bytes)
      throw new ProtobufMalformedError(`unexpected varint field ${fl.no}`, "envelope");
    if (fl.no === 1) {
      for (const t of readFields(fl.bytes, "envelope.typeMeta")) {
        if (t.wire !== 2 || !t.bytes || (t.no !== 1 && t.no !== 2))
          throw new ProtobufMalformedError(`unexpected field ${t.no}`, "envelope.typeMeta");
        if (t.no === 1) apiVersion = text(t.bytes, "envelope.typeMeta.apiVersion");
        else kind = text(t.bytes, "envelope.typeMeta.kind");
      }
    } else if (fl.no === 2) raw = fl.bytes;
    else if (fl.no === 3) {
      const enc = text(fl.bytes, "envelope.contentEncoding");
      if (enc !== "")
        throw new ProtobufUnsupportedError(`contentEncoding "${enc}" is not read`, kind, "envelope");
    } else if (fl.no === 4) contentType = text(fl.bytes, "envelope.contentType");
    else throw new ProtobufMalformedError(`unknown envelope field ${fl.no}`, "envelope");
  }
  return { apiVersion, kind, raw, contentType };
}

/** true when every value in a (sub)message is zero: empty strings/bytes, 0 varints, empty messages */
function allZero(b: Uint8Array): boolean {
  if (b.length === 0) return true;
  let fields: WireField[];
  try {
    fields = readFields(b);
  } catch {
    return false;
  }
  return fields.every((x) => (x.wire === 0 ? x.varint === 0n : allZero(x.bytes!)));
}

interface Ctx {
  kind: string;
}

function decodeMessage(buf: Uint8Array, schema: Schema, path: string, ctx: Ctx): JsonObject {
  const out: JsonObject = {};
  const seen = new Set<number>();
  for (const fl of readFields(buf, path)) {
    const def = schema[fl.no];
    const fpath = `${path}${path ? "." : ""}${def?.name ?? `#${fl.no}`}`;
    if (!def) {
      throw new ProtobufUnsupportedError(`field number ${fl.no} is not read by custos`, ctx.kind, fpath);
    }
    const t = def.type;
    const wantVarint = t === "int" || t === "bool";
    if (wantVarint !== (fl.wire === 0))
      throw new ProtobufMalformedError(`wrong wire type ${fl.wire} for ${def.name}`, fpath);
    if (!def.repeated && typeof t !== "object" && seen.has(fl.no) && t !== "zero")
      throw new ProtobufMalformedError(`field ${def.name} appears twice`, fpath);
    seen.add(fl.no);
    if (t === "zero") {
      if (!allZero(fl.bytes!))
        throw new ProtobufUnsupportedError(`${def.name} is set, which custos does not read`, ctx.kind, fpath);
      continue;
    }
    if (typeof t === "object" && "map" in t) {
      const entry = readFields(fl.bytes!, fpath);
      let key = "";
      let val: Uint8Array = new Uint8Array();
      for (const e of entry) {
        if (e.wire !== 2 || (e.no !== 1 && e.no !== 2))
          throw new ProtobufMalformedError(`unexpected map entry field ${e.no}`, fpath);
        if (e.no === 1) key = text(e.bytes!, fpath);
        else val = e.bytes!;
      }
      if (out[def.name] === undefined) out[def.name] = {};
      const obj = out[def.name] as JsonObject;
      if (Object.hasOwn(obj, key)) throw new ProtobufMalformedError(`duplicate map key "${key}"`, fpath);
      // defineProperty: a "__proto__" key is data, never the prototype
      Object.defineProperty(obj, key, {
        value: t.map === "bytes" ? base64(val) : text(val, `${fpath}.${key}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      continue;
    }
    const v = decodeValue(fl, def, fpath, ctx);
    if (def.repeated) {
      if (out[def.name] === undefined) out[def.name] = [];
      (out[def.name] as JsonValue[]).push(v);
      continue;
    }
    if (typeof t === "object" || t === "intOrString") {
      // messages (and IntOrString, a struct in Go) are kept as sent, like Go's JSON keeps structs
      out[def.name] = v;
      continue;
    }
    // scalars: zero values are omitted unless the Go field is a pointer (then present = set)
    const zero = v === "" || v === 0 || v === false || v === null;
    if (zero && !def.ptr) delete out[def.name];
    else out[def.name] = v;
  }
  return out;
}

function decodeValue(fl: WireField, def: FieldDef, path: string, ctx: Ctx): JsonValue {
  const t = def.type;
  if (t === "int") return toInt(fl.varint!, path);
  if (t === "bool") {
    if (fl.varint !== 0n && fl.varint !== 1n) throw new ProtobufMalformedError("bool out of range", path);
    return fl.varint === 1n;
  }
  const b = fl.bytes!;
  switch (t) {
    case "string":
    case "quantity":
      return text(b, path);
    case "bytes":
      return base64(b);
    case "time": {
      let secs = 0;
      for (const x of readFields(b, path)) {
        if (x.wire !== 0 || (x.no !== 1 && x.no !== 2))
          throw new ProtobufMalformedError(`unexpected Time field ${x.no}`, path);
        if (x.no === 1) secs = toInt(x.varint!, path);
      }
      if (secs === 0) return null;
      const d = new Date(secs * 1000);
      if (Number.isNaN(d.getTime())) throw new ProtobufMalformedError("time out of range", path);
      return d.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    case "intOrString": {
      let type = 0;
      let intVal = 0;
      let strVal = "";
      for (const x of readFields(b, path)) {
        if (x.no === 1 && x.wire === 0) type = toInt(x.varint!, path);
        else if (x.no === 2 && x.wire === 0) intVal = toInt(x.varint!, path);
        else if (x.no === 3 && x.wire === 2) strVal = text(x.bytes!, path);
        else throw new ProtobufMalformedError(`unexpected IntOrString field ${x.no}`, path);
      }
      if (type !== 0 && type !== 1) throw new ProtobufMalformedError("IntOrString type out of range", path);
      return type === 1 ? strVal : intVal;
    }
    default:
      if (typeof t === "object" && "msg" in t) return decodeMessage(b, t.msg(), path, ctx);
      throw new ProtobufMalformedError(`unexpected field type for ${def.name}`, path);
  }
}

/**
 * Decode a protobuf request body of one of the kinds in KIND_SCHEMAS into its JSON form
 * (`apiVersion`, `kind`, then the object's fields). Throws ProtobufMalformedError or
 * ProtobufUnsupportedError; never reads past its input.
 */
export function decodeObject(body: Uint8Array): JsonObject {
  const env = decodeEnvelope(body);
  const key = env.apiVersion.includes("/") || env.apiVersion === "v1" ? `${env.apiVersion}/${env.kind}` : "";
  const schema = KIND_SCHEMAS[key];
  if (!schema)
    throw new ProtobufUnsupportedError(
      `${env.apiVersion || "(no apiVersion)"} ${env.kind || "(no kind)"} is not one of the kinds custos decodes from protobuf`,
      env.kind,
    );
  return {
    apiVersion: env.apiVersion,
    kind: env.kind,
    ...decodeMessage(env.raw, schema, "", { kind: env.kind }),
  };
}

/** `apiVersion/kind` keys of the kinds decodeObject reads */
export function decodableKinds(): string[] {
  return Object.keys(KIND_SCHEMAS);
}
