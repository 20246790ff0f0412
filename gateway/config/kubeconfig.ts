/**
 * Kubeconfigs for agents: the gateway's URL (optionally with a `/purpose/<id>` path prefix),
 * its CA embedded as `certificate-authority-data`, and the agent's own bearer token. Never the
 * upstream credential.
 */
import { stringify as stringifyYaml } from "yaml";

export interface AgentContext {
  /** context (and cluster/user entry) name */
  name: string;
  /** the agent's bearer token (token-file token, OIDC token, or a custos login token) */
  token: string;
  /** declare this purpose on every call through the server URL path */
  purpose?: string;
  namespace?: string;
}

export function agentKubeconfig(o: {
  server: string;
  caPem: string;
  contexts: AgentContext[];
  current?: string;
}): string {
  const base = o.server.replace(/\/+$/, "");
  const clusters = new Map<string, { name: string; cluster: Record<string, string> }>();
  const users: { name: string; user: { token: string } }[] = [];
  const contexts: { name: string; context: Record<string, string> }[] = [];
  for (const c of o.contexts) {
    const server = c.purpose ? `${base}/purpose/${encodeURIComponent(c.purpose)}` : base;
    const clusterName = c.purpose ? `custos-${c.purpose}` : "custos";
    clusters.set(clusterName, {
      name: clusterName,
      cluster: { server, "certificate-authority-data": Buffer.from(o.caPem).toString("base64") },
    });
    users.push({ name: c.name, user: { token: c.token } });
    const context: Record<string, string> = { cluster: clusterName, user: c.name };
    if (c.namespace) context.namespace = c.namespace;
    contexts.push({ name: c.name, context });
  }
  return stringifyYaml({
    apiVersion: "v1",
    kind: "Config",
    clusters: [...clusters.values()],
    users,
    contexts,
    "current-context": o.current ?? o.contexts[0]?.name ?? "",
  });
}
