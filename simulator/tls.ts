/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, made by shelling out to
 * the `openssl` binary in a temporary directory that is removed at once (ECDSA P-256, valid
 * for 2 days). Keys never touch the repository. One pair is made per process and reused by
 * every simulator it starts, unless the caller passes its own.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export class CertificateGenerationError extends Error {
  readonly code = "SIM_CERT_GENERATION_FAILED";
  readonly data: { step: string };
  constructor(step: string, cause: unknown) {
    super(
      `could not generate the simulator's TLS certificate (openssl ${step} failed: ${cause instanceof Error ? cause.message : String(cause)}); install openssl or pass tls material to startSimulator`,
    );
    this.data = { step };
  }
}

export async function generateTlsMaterial(
  hosts: string[] = ["127.0.0.1", "localhost"],
): Promise<TlsMaterial> {
  const dir = await mkdtemp(join(tmpdir(), "custos-sim-tls-"));
  const f = (n: string) => join(dir, n);
  const step = async (name: string, args: string[]) => {
    try {
      await run("openssl", args, { cwd: dir });
    } catch (e) {
      throw new CertificateGenerationError(name, e);
    }
  };
  try {
    const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
    await writeFile(
      f("ext.cnf"),
      `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
    );
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await step("ca", [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=custos-simulator-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await step("csr", [
      "req",
      ...ec,
      "-keyout",
      f("server.key"),
      "-out",
      f("server.csr"),
      "-subj",
      "/CN=custos-simulator",
    ]);
    await step("sign", [
      "x509",
      "-req",
      "-in",
      f("server.csr"),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-out",
      f("server.crt"),
      "-days",
      "2",
      "-extfile",
      f("ext.cnf"),
    ]);
    const [caPem, certPem, keyPem] = await Promise.all([
      readFile(f("ca.crt"), "utf8"),
      readFile(f("server.crt"), "utf8"),
      readFile(f("server.key"), "utf8"),
    ]);
    return { caPem, certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let shared: Promise<TlsMaterial> | undefined;

/** The per-process throwaway pair (made on first use). */
export function sharedTlsMaterial(): Promise<TlsMaterial> {
  shared ??= generateTlsMaterial().catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}
