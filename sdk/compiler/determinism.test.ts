/**
 * `custos compile` promises one config for one policy, whatever the machine: the same bytes and
 * the same policyHash however the path to the policy is spelt (a symlinked checkout, macOS's
 * /tmp -> /private/tmp, a CI workspace mounted through a link).
 */
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compilePolicyFile } from "./index.ts";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const fixture = "sdk/compiler/fixtures/basic.policy.ts";

describe("compile output does not depend on how the path to the policy is spelt", () => {
  it("a symlinked checkout compiles to the same bytes, with project-relative source files", async () => {
    const direct = await compilePolicyFile(path.join(repo, fixture), { skipTypeCheck: true });
    const link = path.join(mkdtempSync(path.join(tmpdir(), "custos-link-")), "checkout");
    symlinkSync(repo, link, "dir");
    const viaLink = await compilePolicyFile(path.join(link, fixture), { skipTypeCheck: true });
    expect(direct.problems).toEqual([]);
    expect(viaLink.config?.rules[0]?.source.file).toBe(fixture);
    expect(viaLink.text).toBe(direct.text);
    // the root given explicitly through the link, too
    const rooted = await compilePolicyFile(path.join(link, fixture), { skipTypeCheck: true, root: link });
    expect(rooted.text).toBe(direct.text);
  });
});
