/**
 * TLS for the gateway when no certificate is given: on first run a private CA and a server
 * certificate (EC P-256, SANs for localhost, 127.0.0.1, ::1 and configured host names) are
 * generated with the system `openssl` into the state directory, and reused afterwards. The
 * CA's PEM is what agent kubeconfigs embed as `certificate-authority-data`.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { access, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TlsMaterial {
  cert: string;
  key: string;
  /** PEM of the CA that signed `cert` (for kubeconfig certificate-authority-data) */
  caPem: string;
}

export class TlsSetupError extends Error {
  readonly code = "TLS_SETUP_FAILED";
  readonly data: Record<string, unknown>;
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.data = data;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

function sanFor(hosts: string[]): string {
  const all = new Set(["localhost", "127.0.0.1", "::1", ...hosts]);
  return [...all].map((h) => (/^[0-9.]+$/.test(h) || h.includes(":") ? `IP:${h}` : `DNS:${h}`)).join(",");
}

/** Load the CA + server cert from `stateDir`, generating them if missing (or if the SANs no longer cover `hosts`). */
export async function ensureTls(stateDir: string, hosts: string[] = []): Promise<TlsMaterial> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const f = {
    caCrt: path.join(stateDir, "ca.crt"),
    caKey: path.join(stateDir, "ca.key"),
    crt: path.join(stateDir, "server.crt"),
    key: path.join(stateDir, "server.key"),
  };
  const openssl = async (args: string[]) => {
    try {
      await run("openssl", args, { cwd: stateDir });
    } catch (e) {
      throw new TlsSetupError(
        `generating the gateway certificate with openssl failed: ${(e as Error).message.split("\n")[0]}`,
      );
    }
  };
  if (!(await exists(f.caCrt)) || !(await exists(f.caKey))) {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      f.caKey,
      "-out",
      f.caCrt,
      "-days",
      "3650",
      "-subj",
      "/CN=custos-gateway-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
  }
  let need = !(await exists(f.crt)) || !(await exists(f.key));
  if (!need) {
    const cert = new X509Certificate(await readFile(f.crt));
    const san = cert.subjectAltName ?? "";
    need = hosts.some((h) => !san.includes(h));
  }
  if (need) {
    const ext = path.join(stateDir, "server.ext");
    await writeFile(
      ext,
      `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sanFor(hosts)}\n`,
    );
    const csr = path.join(stateDir, "server.csr");
    await openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      f.key,
      "-out",
      csr,
      "-subj",
      "/CN=custos-gateway",
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      f.caCrt,
      "-CAkey",
      f.caKey,
      "-CAcreateserial",
      "-out",
      f.crt,
      "-days",
      "825",
      "-extfile",
      ext,
    ]);
  }
  return {
    cert: await readFile(f.crt, "utf8"),
    key: await readFile(f.key, "utf8"),
    caPem: await readFile(f.caCrt, "utf8"),
  };
}
