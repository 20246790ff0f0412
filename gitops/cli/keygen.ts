/**
 * `custos keygen [--out <path>] [--principal <email>] [--json] [--force]`
 *
 * Makes an ed25519 key in OpenSSH's format (`<path>`, mode 0600, loadable by ssh-keygen and
 * git) and `<path>.pub`, and prints the allowed_signers line that auditors and the approval
 * policy use to trust it. The private key is never printed.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { cliConventions } from "../../sdk/lib/cli.ts";
import { fingerprint, formatAllowedSigner, formatOpenSshPrivateKey, nodeSigner } from "../signer/index.ts";

export async function run(argv: string[]): Promise<number> {
  const program = new Command("custos keygen")
    .description("make an ed25519 signing key (OpenSSH format) and print its allowed_signers line")
    .option(
      "--out <path>",
      "where to write the private key (the public key goes to <path>.pub)",
      "custos_ed25519",
    )
    .option(
      "--principal <email>",
      "the principal (e-mail) the key signs as, e.g. <gatewayId>@custos.local",
      "custos@custos.local",
    )
    .option("--json", "print a JSON object instead of the allowed_signers line")
    .option("--force", "overwrite existing key files")
    .exitOverride();
  cliConventions(program);
  try {
    program.parse(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const opts = program.opts<{ out: string; principal: string; json?: boolean; force?: boolean }>();
  const out = resolve(opts.out);
  if (/[\s,"]/.test(opts.principal) || opts.principal === "") {
    process.stderr.write(
      `custos keygen: principal "${opts.principal}" must be non-empty without spaces, commas or quotes; pass --principal gw-1@custos.local\n`,
    );
    return 2;
  }
  if (!opts.force && (existsSync(out) || existsSync(`${out}.pub`))) {
    process.stderr.write(
      `custos keygen: ${out} or ${out}.pub already exists; choose another --out or pass --force to overwrite\n`,
    );
    return 2;
  }
  const seed = new Uint8Array(randomBytes(32));
  const signer = nodeSigner(seed);
  const allowed = formatAllowedSigner(opts.principal, signer.publicKeyOpenSsh);
  try {
    writeFileSync(out, formatOpenSshPrivateKey(seed, opts.principal), {
      mode: 0o600,
      flag: opts.force ? "w" : "wx",
    });
    chmodSync(out, 0o600); // an existing file (--force) keeps its old mode otherwise
    writeFileSync(`${out}.pub`, `${signer.publicKeyOpenSsh} ${opts.principal}\n`, {
      mode: 0o644,
      flag: opts.force ? "w" : "wx",
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    process.stderr.write(
      `custos keygen: cannot write ${out} (${code}); check the directory exists and is writable\n`,
    );
    return 3;
  }
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({
        privateKeyPath: out,
        publicKeyPath: `${out}.pub`,
        principal: opts.principal,
        publicKey: signer.publicKeyOpenSsh,
        fingerprint: fingerprint(signer.publicKey),
        allowedSigners: allowed,
      })}\n`,
    );
  } else {
    process.stdout.write(`${allowed}\n`);
  }
  return 0;
}
