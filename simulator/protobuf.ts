/**
 * Just enough of Kubernetes' protobuf encoding to read the bodies kubectl sends as protobuf:
 * the SelfSubjectAccessReview/SelfSubjectRulesReview of `auth can-i`, and the objects of
 * `kubectl create namespace|configmap|secret|serviceaccount|role|rolebinding|clusterrole|
 * clusterrolebinding|deployment|service` (magic "k8s\0", then a runtime.Unknown envelope:
 * 1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType). Field numbers
 * come from k8s.io/api's generated.proto files. Replies are JSON, which kubectl accepts
 * because its Accept lists it.
 */
import { errors, type JsonObject } from "./errors.ts";

export const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Fields = Map<number, Array<Buffer | number>>;

function readVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7;
    if (shift > 63) throw new Error("varint too long");
  }
}

function parse(buf: Buffer): Fields {
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let value: Buffer | number;
    if (wire === 0) {
      [value, pos] = readVarint(buf, pos);
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      if (p2 + len > buf.length) throw new Error("truncated field");
      value = buf.subarray(p2, p2 + len);
      pos = p2 + len;
    } else if (wire === 1) {
      value = 0;
      pos += 8;
    } else if (wire === 5) {
      value = 0;
      pos += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(value);
    out.set(field, list);
  }
  return out;
}

function bytes(f: Fields, n: number): Buffer | undefined {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? v : undefined;
}

function str(f: Fields, n: number): string {
  return bytes(f, n)?.toString("utf8") ?? "";
}

/** Decode a protobuf-encoded SelfSubjectAccessReview or SelfSubjectRulesReview into its JSON shape. */
export function decodeReview(body: Buffer): JsonObject {
  try {
    if (!body.subarray(0, 4).equals(PROTOBUF_MAGIC)) throw new Error("missing k8s\\0 magic");
    const unknown = parse(body.subarray(4));
    const typeMeta = parse(bytes(unknown, 1) ?? Buffer.alloc(0));
    const apiVersion = str(typeMeta, 1);
    const kind = str(typeMeta, 2);
    const raw = parse(bytes(unknown, 2) ?? Buffer.alloc(0));
    const spec = parse(bytes(raw, 2) ?? Buffer.alloc(0));
    if (kind === "SelfSubjectAccessReview") {
      const out: JsonObject = {};
      const ra = bytes(spec, 1);
      if (ra) {
        const r = parse(ra);
        out.resourceAttributes = {
          namespace: str(r, 1),
          verb: str(r, 2),
          group: str(r, 3),
          version: str(r, 4),
          resource: str(r, 5),
          subresource: str(r, 6),
          name: str(r, 7),
        };
      }
      const na = bytes(spec, 2);
      if (na) {
        const r = parse(na);
        out.nonResourceAttributes = { path: str(r, 1), verb: str(r, 2) };
      }
      return { apiVersion, kind, metadata: {}, spec: out };
    }
    if (kind === "SelfSubjectRulesReview")
      return { apiVersion, kind, metadata: {}, spec: { namespace: str(spec, 1) } };
    if (kind === "SelfSubjectReview") return { apiVersion, kind, metadata: {} };
    throw new Error(`kind ${JSON.stringify(kind)} is not decoded`);
  } catch (e) {
    throw errors.unsupportedMediaType(
      `application/vnd.kubernetes.protobuf (${e instanceof Error ? e.message : String(e)})`,
    );
  }
}

// ---- schema-driven decoding of the kinds `kubectl create <generator>` sends ----

type FieldType =
  | "string"
  | "int"
  | "bool"
  | "bytes"
  | "time"
  | "intOrString"
  | { msg: () => Schema }
  | { map: "string" | "bytes" };
interface FieldDef {
  name: string;
  type: FieldType;
  repeated?: boolean;
}
type Schema = Record<number, FieldDef>;

const f = (name: string, type: FieldType, repeated = false): FieldDef =>
  repeated ? { name, type, repeated } : { name, type };
const m = (s: () => Schema): FieldType => ({ msg: s });

const OwnerReference: Schema = {
  1: f("kind", "string"),
  3: f("name", "string"),
  4: f("uid", "string"),
  5: f("apiVersion", "string"),
  6: f("controller", "bool"),
  7: f("blockOwnerDeletion", "bool"),
};
const ObjectMeta: Schema = {
  1: f("name", "string"),
  2: f("generateName", "string"),
  3: f("namespace", "string"),
  5: f("uid", "string"),
  6: f("resourceVersion", "string"),
  7: f("generation", "int"),
  11: f("labels", { map: "string" }),
  12: f("annotations", { map: "string" }),
  13: f(
    "ownerReferences",
    m(() => OwnerReference),
    true,
  ),
  14: f("finalizers", "string", true),
};
const LabelSelector: Schema = {
  1: f("matchLabels", { map: "string" }),
  2: f(
    "matchExpressions",
    m(() => ({ 1: f("key", "string"), 2: f("operator", "string"), 3: f("values", "string", true) })),
    true,
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
const Container: Schema = {
  1: f("name", "string"),
  2: f("image", "string"),
  3: f("command", "string", true),
  4: f("args", "string", true),
  5: f("workingDir", "string"),
  6: f(
    "ports",
    m(() => ContainerPort),
    true,
  ),
  7: f(
    "env",
    m(() => EnvVar),
    true,
  ),
  13: f("terminationMessagePath", "string"),
  14: f("imagePullPolicy", "string"),
  16: f("stdin", "bool"),
  17: f("stdinOnce", "bool"),
  18: f("tty", "bool"),
  20: f("terminationMessagePolicy", "string"),
};
const PodSpec: Schema = {
  2: f(
    "containers",
    m(() => Container),
    true,
  ),
  3: f("restartPolicy", "string"),
  4: f("terminationGracePeriodSeconds", "int"),
  6: f("dnsPolicy", "string"),
  7: f("nodeSelector", { map: "string" }),
  8: f("serviceAccountName", "string"),
  10: f("nodeName", "string"),
  16: f("hostname", "string"),
  19: f("schedulerName", "string"),
  20: f(
    "initContainers",
    m(() => Container),
    true,
  ),
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
  1: f("verbs", "string", true),
  2: f("apiGroups", "string", true),
  3: f("resources", "string", true),
  4: f("resourceNames", "string", true),
  5: f("nonResourceURLs", "string", true),
};
const Subject: Schema = {
  1: f("kind", "string"),
  2: f("apiGroup", "string"),
  3: f("name", "string"),
  4: f("namespace", "string"),
};
const RoleRef: Schema = { 1: f("apiGroup", "string"), 2: f("kind", "string"), 3: f("name", "string") };
const meta1 = {
  1: f(
    "metadata",
    m(() => ObjectMeta),
  ),
};

const KINDS: Record<string, Schema> = {
  "v1/Namespace": {
    ...meta1,
    2: f(
      "spec",
      m(() => ({ 1: f("finalizers", "string", true) })),
    ),
  },
  "v1/ConfigMap": {
    ...meta1,
    2: f("data", { map: "string" }),
    3: f("binaryData", { map: "bytes" }),
    4: f("immutable", "bool"),
  },
  "v1/Secret": {
    ...meta1,
    2: f("data", { map: "bytes" }),
    3: f("type", "string"),
    4: f("stringData", { map: "string" }),
    5: f("immutable", "bool"),
  },
  "v1/ServiceAccount": {
    ...meta1,
    3: f(
      "imagePullSecrets",
      m(() => ({ 1: f("name", "string") })),
      true,
    ),
    4: f("automountServiceAccountToken", "bool"),
  },
  "v1/Service": {
    ...meta1,
    2: f(
      "spec",
      m(() => ({
        1: f(
          "ports",
          m(() => ({
            1: f("name", "string"),
            2: f("protocol", "string"),
            3: f("port", "int"),
            4: f("targetPort", "intOrString"),
            5: f("nodePort", "int"),
          })),
          true,
        ),
        2: f("selector", { map: "string" }),
        3: f("clusterIP", "string"),
        4: f("type", "string"),
        10: f("externalName", "string"),
      })),
    ),
  },
  "v1/Pod": {
    ...meta1,
    2: f(
      "spec",
      m(() => PodSpec),
    ),
  },
  "apps/v1/Deployment": {
    ...meta1,
    2: f(
      "spec",
      m(() => ({
        1: f("replicas", "int"),
        2: f(
          "selector",
          m(() => LabelSelector),
        ),
        3: f(
          "template",
          m(() => PodTemplateSpec),
        ),
        5: f("minReadySeconds", "int"),
        6: f("revisionHistoryLimit", "int"),
        9: f("progressDeadlineSeconds", "int"),
      })),
    ),
  },
  "rbac.authorization.k8s.io/v1/Role": {
    ...meta1,
    2: f(
      "rules",
      m(() => PolicyRule),
      true,
    ),
  },
  "rbac.authorization.k8s.io/v1/ClusterRole": {
    ...meta1,
    2: f(
      "rules",
      m(() => PolicyRule),
      true,
    ),
  },
  "rbac.authorization.k8s.io/v1/RoleBinding": {
    ...meta1,
    2: f(
      "subjects",
      m(() => Subject),
      true,
    ),
    3: f(
      "roleRef",
      m(() => RoleRef),
    ),
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    ...meta1,
    2: f(
      "subjects",
      m(() => Subject),
      true,
    ),
    3: f(
      "roleRef",
      m(() => RoleRef),
    ),
  },
};

function isEmpty(v: unknown): boolean {
  return (
    v === "" ||
    v === 0 ||
    v === false ||
    v === undefined ||
    (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)
  );
}

function decodeWith(buf: Buffer, schema: Schema): JsonObject {
  const fields = parse(buf);
  const out: JsonObject = {};
  for (const [num, values] of fields) {
    const def = schema[num];
    if (!def) continue;
    const decoded = values.map((v) => decodeValue(v, def.type)).filter((v) => v !== undefined);
    if (typeof def.type === "object" && "map" in def.type) {
      const map: JsonObject = {};
      for (const entry of decoded) Object.assign(map, entry as JsonObject);
      if (Object.keys(map).length > 0) out[def.name] = map;
    } else if (def.repeated) {
      if (decoded.length > 0) out[def.name] = decoded as JsonObject[];
    } else if (decoded.length > 0 && !isEmpty(decoded[decoded.length - 1])) {
      out[def.name] = decoded[decoded.length - 1] as JsonObject;
    }
  }
  return out;
}

function decodeValue(v: Buffer | number, type: FieldType): unknown {
  if (typeof v === "number") return type === "bool" ? v !== 0 : v;
  switch (type) {
    case "string":
      return v.toString("utf8");
    case "bytes":
      return v.toString("base64");
    case "int":
    case "bool":
      return undefined;
    case "time": {
      const t = parse(v);
      const secs = t.get(1)?.[0];
      return typeof secs === "number"
        ? new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, "Z")
        : undefined;
    }
    case "intOrString": {
      const t = parse(v);
      return t.get(1)?.[0] === 1 ? str(t, 3) : (t.get(2)?.[0] ?? 0);
    }
    default:
      if ("msg" in type) return decodeWith(v, type.msg());
      {
        const entry = parse(v);
        const key = str(entry, 1);
        const val = bytes(entry, 2) ?? Buffer.alloc(0);
        return { [key]: type.map === "bytes" ? val.toString("base64") : val.toString("utf8") };
      }
  }
}

/** Decode a protobuf-encoded object of one of the kinds kubectl's generators create; 415 for any other. */
export function decodeObject(body: Buffer): JsonObject {
  let kindKey = "";
  try {
    if (!body.subarray(0, 4).equals(PROTOBUF_MAGIC)) throw new Error("missing k8s\\0 magic");
    const unknown = parse(body.subarray(4));
    const typeMeta = parse(bytes(unknown, 1) ?? Buffer.alloc(0));
    const apiVersion = str(typeMeta, 1);
    const kind = str(typeMeta, 2);
    kindKey = `${apiVersion}/${kind}`;
    const schema = KINDS[kindKey];
    if (!schema) throw new Error(`${kindKey} is not one of the kinds the simulator decodes from protobuf`);
    return { apiVersion, kind, ...decodeWith(bytes(unknown, 2) ?? Buffer.alloc(0), schema) };
  } catch (e) {
    throw errors.unsupportedMediaType(
      `application/vnd.kubernetes.protobuf (${e instanceof Error ? e.message : String(e)}; send JSON instead)`,
    );
  }
}
