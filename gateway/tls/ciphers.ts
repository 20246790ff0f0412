/**
 * The cipher preference of the gateway's listener. Node's default order puts
 * TLS_AES_256_GCM_SHA384 first; Go's crypto/tls — kube-apiserver, and so what kubectl and
 * client-go get from a cluster — puts TLS_AES_128_GCM_SHA256 first on CPUs with AES
 * instructions. The gateway picks by Go's order whatever the client offers (Node's own clients
 * offer AES-256 first): AES-128 does 10 rounds per block where AES-256 does 14, and encrypting
 * a 500-pod list towards the client is a measurable part of the proxy's time
 * (docs/performance.md). Both suites are approved for TLS 1.3 by NIST SP 800-52 Rev. 2; nothing
 * weaker is added — the rest is Node's default list, in Node's order. (Towards the upstream the
 * server chooses, as a Go API server does by its own order.)
 */
import { DEFAULT_CIPHERS } from "node:tls";

const FIRST = "TLS_AES_128_GCM_SHA256";

export const TLS_CIPHERS: string = [FIRST, ...DEFAULT_CIPHERS.split(":").filter((c) => c !== FIRST)].join(
  ":",
);
