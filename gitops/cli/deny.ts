/**
 * `custos deny <PR URL | request id> --key <key> [--reason text] [...]`: the same as
 * `custos approve` (see approve.ts), but submits a signed denial (GitHub: REQUEST_CHANGES).
 * A valid signed denial by a reviewer of the rule's group denies the request outright.
 */
import { runDecision } from "./approve.ts";

export async function run(argv: string[]): Promise<number> {
  return runDecision("deny", argv);
}
