/**
 * The built-in Kubernetes resources a policy can name, with their kinds and the
 * `kubernetes-types` declarations of their objects. Resource names are a literal union so
 * that a typo is a TypeScript error; custom resources go through `customResource()`.
 */
import type * as admissionregistrationV1 from "kubernetes-types/admissionregistration/v1.js";
import type * as apiextensionsV1 from "kubernetes-types/apiextensions/v1.js";
import type * as appsV1 from "kubernetes-types/apps/v1.js";
import type * as authenticationV1 from "kubernetes-types/authentication/v1.js";
import type * as autoscalingV1 from "kubernetes-types/autoscaling/v1.js";
import type * as autoscalingV2 from "kubernetes-types/autoscaling/v2.js";
import type * as batchV1 from "kubernetes-types/batch/v1.js";
import type * as coreV1 from "kubernetes-types/core/v1.js";
import type * as networkingV1 from "kubernetes-types/networking/v1.js";
import type * as policyV1 from "kubernetes-types/policy/v1.js";
import type * as rbacV1 from "kubernetes-types/rbac/v1.js";
import type * as storageV1 from "kubernetes-types/storage/v1.js";

export interface ResourceInfo {
  group: string;
  kind: string;
  namespaced: boolean;
  /** `module#Type` in kubernetes-types (the analyser reaches the same types through KindTypes) */
  type: string;
  subresources: readonly string[];
}

/** Built-in resources (plural names, RBAC form) and what they hold. */
export const RESOURCES = {
  pods: {
    group: "",
    kind: "Pod",
    namespaced: true,
    type: "core/v1#Pod",
    subresources: [
      "exec",
      "attach",
      "portforward",
      "log",
      "proxy",
      "status",
      "ephemeralcontainers",
      "eviction",
      "binding",
      "resize",
    ],
  },
  configmaps: { group: "", kind: "ConfigMap", namespaced: true, type: "core/v1#ConfigMap", subresources: [] },
  secrets: { group: "", kind: "Secret", namespaced: true, type: "core/v1#Secret", subresources: [] },
  services: {
    group: "",
    kind: "Service",
    namespaced: true,
    type: "core/v1#Service",
    subresources: ["proxy", "status"],
  },
  endpoints: { group: "", kind: "Endpoints", namespaced: true, type: "core/v1#Endpoints", subresources: [] },
  events: { group: "", kind: "Event", namespaced: true, type: "core/v1#Event", subresources: [] },
  namespaces: {
    group: "",
    kind: "Namespace",
    namespaced: false,
    type: "core/v1#Namespace",
    subresources: ["status", "finalize"],
  },
  nodes: {
    group: "",
    kind: "Node",
    namespaced: false,
    type: "core/v1#Node",
    subresources: ["proxy", "status"],
  },
  persistentvolumes: {
    group: "",
    kind: "PersistentVolume",
    namespaced: false,
    type: "core/v1#PersistentVolume",
    subresources: ["status"],
  },
  persistentvolumeclaims: {
    group: "",
    kind: "PersistentVolumeClaim",
    namespaced: true,
    type: "core/v1#PersistentVolumeClaim",
    subresources: ["status"],
  },
  serviceaccounts: {
    group: "",
    kind: "ServiceAccount",
    namespaced: true,
    type: "core/v1#ServiceAccount",
    subresources: ["token"],
  },
  replicationcontrollers: {
    group: "",
    kind: "ReplicationController",
    namespaced: true,
    type: "core/v1#ReplicationController",
    subresources: ["scale", "status"],
  },
  limitranges: {
    group: "",
    kind: "LimitRange",
    namespaced: true,
    type: "core/v1#LimitRange",
    subresources: [],
  },
  resourcequotas: {
    group: "",
    kind: "ResourceQuota",
    namespaced: true,
    type: "core/v1#ResourceQuota",
    subresources: ["status"],
  },
  podtemplates: {
    group: "",
    kind: "PodTemplate",
    namespaced: true,
    type: "core/v1#PodTemplate",
    subresources: [],
  },
  deployments: {
    group: "apps",
    kind: "Deployment",
    namespaced: true,
    type: "apps/v1#Deployment",
    subresources: ["scale", "status"],
  },
  statefulsets: {
    group: "apps",
    kind: "StatefulSet",
    namespaced: true,
    type: "apps/v1#StatefulSet",
    subresources: ["scale", "status"],
  },
  daemonsets: {
    group: "apps",
    kind: "DaemonSet",
    namespaced: true,
    type: "apps/v1#DaemonSet",
    subresources: ["status"],
  },
  replicasets: {
    group: "apps",
    kind: "ReplicaSet",
    namespaced: true,
    type: "apps/v1#ReplicaSet",
    subresources: ["scale", "status"],
  },
  controllerrevisions: {
    group: "apps",
    kind: "ControllerRevision",
    namespaced: true,
    type: "apps/v1#ControllerRevision",
    subresources: [],
  },
  jobs: { group: "batch", kind: "Job", namespaced: true, type: "batch/v1#Job", subresources: ["status"] },
  cronjobs: {
    group: "batch",
    kind: "CronJob",
    namespaced: true,
    type: "batch/v1#CronJob",
    subresources: ["status"],
  },
  horizontalpodautoscalers: {
    group: "autoscaling",
    kind: "HorizontalPodAutoscaler",
    namespaced: true,
    type: "autoscaling/v2#HorizontalPodAutoscaler",
    subresources: ["status"],
  },
  ingresses: {
    group: "networking.k8s.io",
    kind: "Ingress",
    namespaced: true,
    type: "networking/v1#Ingress",
    subresources: ["status"],
  },
  networkpolicies: {
    group: "networking.k8s.io",
    kind: "NetworkPolicy",
    namespaced: true,
    type: "networking/v1#NetworkPolicy",
    subresources: [],
  },
  ingressclasses: {
    group: "networking.k8s.io",
    kind: "IngressClass",
    namespaced: false,
    type: "networking/v1#IngressClass",
    subresources: [],
  },
  poddisruptionbudgets: {
    group: "policy",
    kind: "PodDisruptionBudget",
    namespaced: true,
    type: "policy/v1#PodDisruptionBudget",
    subresources: ["status"],
  },
  roles: {
    group: "rbac.authorization.k8s.io",
    kind: "Role",
    namespaced: true,
    type: "rbac/v1#Role",
    subresources: [],
  },
  rolebindings: {
    group: "rbac.authorization.k8s.io",
    kind: "RoleBinding",
    namespaced: true,
    type: "rbac/v1#RoleBinding",
    subresources: [],
  },
  clusterroles: {
    group: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    namespaced: false,
    type: "rbac/v1#ClusterRole",
    subresources: [],
  },
  clusterrolebindings: {
    group: "rbac.authorization.k8s.io",
    kind: "ClusterRoleBinding",
    namespaced: false,
    type: "rbac/v1#ClusterRoleBinding",
    subresources: [],
  },
  storageclasses: {
    group: "storage.k8s.io",
    kind: "StorageClass",
    namespaced: false,
    type: "storage/v1#StorageClass",
    subresources: [],
  },
  customresourcedefinitions: {
    group: "apiextensions.k8s.io",
    kind: "CustomResourceDefinition",
    namespaced: false,
    type: "apiextensions/v1#CustomResourceDefinition",
    subresources: ["status"],
  },
  mutatingwebhookconfigurations: {
    group: "admissionregistration.k8s.io",
    kind: "MutatingWebhookConfiguration",
    namespaced: false,
    type: "admissionregistration/v1#MutatingWebhookConfiguration",
    subresources: [],
  },
  validatingwebhookconfigurations: {
    group: "admissionregistration.k8s.io",
    kind: "ValidatingWebhookConfiguration",
    namespaced: false,
    type: "admissionregistration/v1#ValidatingWebhookConfiguration",
    subresources: [],
  },
  selfsubjectaccessreviews: {
    group: "authorization.k8s.io",
    kind: "SelfSubjectAccessReview",
    namespaced: false,
    type: "",
    subresources: [],
  },
  selfsubjectrulesreviews: {
    group: "authorization.k8s.io",
    kind: "SelfSubjectRulesReview",
    namespaced: false,
    type: "",
    subresources: [],
  },
  selfsubjectreviews: {
    group: "authentication.k8s.io",
    kind: "SelfSubjectReview",
    namespaced: false,
    type: "",
    subresources: [],
  },
} as const satisfies Record<string, ResourceInfo>;

export type KnownResource = keyof typeof RESOURCES;
type SubresourceOf<R extends KnownResource> = (typeof RESOURCES)[R]["subresources"][number];
/** `pods/exec`, `deployments/scale`, ... */
export type KnownSubresource = { [R in KnownResource]: `${R}/${SubresourceOf<R>}` }[KnownResource];
export type AnySubresourceName = { [R in KnownResource]: SubresourceOf<R> }[KnownResource];

declare const customBrand: unique symbol;
/** A custom resource's plural name (and optional subresource), made with `customResource()`. */
export type CustomResource = string & { readonly [customBrand]: true };

/** Anything a rule's or mask's `resources` may list; a typo in a built-in name fails type-checking. */
export type ResourceName =
  | "*"
  | KnownResource
  | KnownSubresource
  | `${KnownResource}/*`
  | `*/${AnySubresourceName}`
  | CustomResource;

/**
 * Name a custom resource (plural, as in its CRD), optionally with a subresource.
 * @example customResource("widgets")            // widgets.example.com objects
 * @example customResource("widgets", "status")  // "widgets/status"
 */
export function customResource(plural: string, subresource?: string): CustomResource {
  return (subresource === undefined ? plural : `${plural}/${subresource}`) as CustomResource;
}

/** The object types of built-in kinds, for typed body predicates (`when("Pod", pod => ...)`). */
export interface KindTypes {
  Pod: coreV1.Pod;
  ConfigMap: coreV1.ConfigMap;
  Secret: coreV1.Secret;
  Service: coreV1.Service;
  Endpoints: coreV1.Endpoints;
  Event: coreV1.Event;
  Namespace: coreV1.Namespace;
  Node: coreV1.Node;
  PersistentVolume: coreV1.PersistentVolume;
  PersistentVolumeClaim: coreV1.PersistentVolumeClaim;
  ServiceAccount: coreV1.ServiceAccount;
  ReplicationController: coreV1.ReplicationController;
  PodTemplate: coreV1.PodTemplate;
  LimitRange: coreV1.LimitRange;
  ResourceQuota: coreV1.ResourceQuota;
  ControllerRevision: appsV1.ControllerRevision;
  IngressClass: networkingV1.IngressClass;
  Deployment: appsV1.Deployment;
  StatefulSet: appsV1.StatefulSet;
  DaemonSet: appsV1.DaemonSet;
  ReplicaSet: appsV1.ReplicaSet;
  Job: batchV1.Job;
  CronJob: batchV1.CronJob;
  HorizontalPodAutoscaler: autoscalingV2.HorizontalPodAutoscaler;
  Ingress: networkingV1.Ingress;
  NetworkPolicy: networkingV1.NetworkPolicy;
  PodDisruptionBudget: policyV1.PodDisruptionBudget;
  Role: rbacV1.Role;
  RoleBinding: rbacV1.RoleBinding;
  ClusterRole: rbacV1.ClusterRole;
  ClusterRoleBinding: rbacV1.ClusterRoleBinding;
  StorageClass: storageV1.StorageClass;
  CustomResourceDefinition: apiextensionsV1.CustomResourceDefinition;
  MutatingWebhookConfiguration: admissionregistrationV1.MutatingWebhookConfiguration;
  ValidatingWebhookConfiguration: admissionregistrationV1.ValidatingWebhookConfiguration;
  // objects that subresources return (deployments/scale, serviceaccounts/token)
  Scale: autoscalingV1.Scale;
  TokenRequest: authenticationV1.TokenRequest;
}
export type KindName = keyof KindTypes;

export function resourceInfo(resource: string): ResourceInfo | undefined {
  return Object.hasOwn(RESOURCES, resource)
    ? (RESOURCES as Record<string, ResourceInfo>)[resource]
    : undefined;
}
