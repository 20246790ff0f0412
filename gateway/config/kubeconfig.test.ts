import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { agentKubeconfig } from "./kubeconfig.ts";

describe("agentKubeconfig", () => {
  it("loads with client-node; purpose contexts use the /purpose/<id> server path", () => {
    const text = agentKubeconfig({
      server: "https://127.0.0.1:8443/",
      caPem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
      contexts: [
        { name: "ci", token: "t1", purpose: "incident-42", namespace: "phi-a" },
        { name: "admin", token: "t2" },
      ],
    });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    expect(kc.getCurrentContext()).toBe("ci");
    expect(kc.getCurrentCluster()?.server).toBe("https://127.0.0.1:8443/purpose/incident-42");
    expect(kc.getCurrentUser()?.token).toBe("t1");
    kc.setCurrentContext("admin");
    expect(kc.getCurrentCluster()?.server).toBe("https://127.0.0.1:8443");
  });
});

describe("example gateway config", () => {
  it("is valid", async () => {
    const { readFile } = await import("node:fs/promises");
    const { parse } = await import("yaml");
    const { parseGatewayFileConfig } = await import("./file.ts");
    const file = new URL("./example-gateway.yaml", import.meta.url).pathname;
    const c = parseGatewayFileConfig(parse(await readFile(file, "utf8")), file);
    expect(c.listen).toBe("0.0.0.0:8443");
    expect(c.auth.oidc[0]?.issuer).toBe("https://token.actions.githubusercontent.com");
    expect(c.policy.endsWith("gateway/config/policy/compiled.json")).toBe(true);
  });
});
