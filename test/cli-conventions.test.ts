/**
 * The command line as a user meets it: every `custos` command and subcommand answers --help
 * (on stdout, exit 0) documenting every flag and the exit codes; a wrong flag, a missing file
 * or a bad value prints ONE line on stderr naming the command, the problem and the fix, and
 * exits 2; --json output is JSON on stdout with nothing else mixed in.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { commands, main } from "../bin/custos.ts";
import { testPolicy } from "./gateway-helpers.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** run `custos ...argv` in this process, capturing what it writes */
async function custos(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  let stdout = "";
  let stderr = "";
  process.stdout.write = ((s: string | Uint8Array) => {
    stdout += String(s);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** the subcommands a help text lists (commander's "Commands:" section), without "help" */
function subcommandsOf(help: string): string[] {
  const section = help.split(/\nCommands:\n/)[1];
  if (section === undefined) return [];
  return section
    .split("\n\n")[0]!
    .split("\n")
    .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined && c !== "help");
}

/** option lines of a help text whose flags are not followed by a description */
function undocumentedOptions(help: string): string[] {
  const section = help.split(/\nOptions:\n/)[1];
  if (section === undefined) return ["(no Options: section)"];
  return section
    .split("\n\n")[0]!
    .split("\n")
    .filter((l) => /^ {2}-/.test(l))
    .filter((l) => !/^ {2}-\S.*?\S {2,}\S/.test(l));
}

const oneLine = (stderr: string) => stderr.split("\n").filter((l) => l !== "");

async function walk(): Promise<string[][]> {
  const all: string[][] = [];
  const visit = async (cmd: string[]) => {
    all.push(cmd);
    const r = await custos(...cmd, "--help");
    for (const sub of subcommandsOf(r.stdout)) await visit([...cmd, sub]);
  };
  for (const name of Object.keys(commands)) await visit([name]);
  return all;
}

describe("custos --help", () => {
  it("lists every command and the exit codes; with no command it is a usage error on stderr", async () => {
    const r = await custos("--help");
    expect(r.code).toBe(0);
    for (const name of Object.keys(commands)) expect(r.stdout).toContain(`  ${name} `);
    expect(r.stdout).toMatch(/Exit codes: 0 ok.*2 bad usage/s);
    const none = await custos();
    expect(none.code).toBe(2);
    expect(none.stdout).toBe("");
    expect(none.stderr).toContain("usage: custos <command>");
    const unknown = await custos("frobnicate");
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown.stderr)).toEqual([expect.stringContaining('run "custos --help"')]);
  });

  it("every command and subcommand: --help on stdout, exit 0, every flag described, exit codes listed", async () => {
    const cmds = await walk();
    // the walk reaches the subcommands too
    expect(cmds.map((c) => c.join(" "))).toEqual(
      expect.arrayContaining(["policy test", "policy diff", "audit verify", "audit query", "audit report"]),
    );
    for (const cmd of cmds) {
      const name = `custos ${cmd.join(" ")}`;
      const r = await custos(...cmd, "--help");
      expect(r.code, name).toBe(0);
      expect(r.stderr, name).toBe("");
      expect(r.stdout, name).toContain(`Usage: ${name} `);
      expect(undocumentedOptions(r.stdout), name).toEqual([]);
      expect(r.stdout, name).toContain("Exit codes: 0");
      // a default is printed once
      expect(r.stdout, name).not.toMatch(/\(default:? [^)]*\)\s*\(default/);
    }
  }, 60_000);

  it("a wrong flag: one line naming the command, the problem and the fix; exit 2; nothing on stdout", async () => {
    const groups = new Set(["policy", "audit"]);
    for (const cmd of await walk()) {
      if (cmd.length === 1 && groups.has(cmd[0]!)) continue;
      const name = `custos ${cmd.join(" ")}`;
      const r = await custos(...cmd, "--no-such-flag");
      expect(r.code, name).toBe(2);
      expect(r.stdout, name).toBe("");
      const lines = oneLine(r.stderr);
      expect(lines, name).toHaveLength(1);
      expect(lines[0], name).toMatch(new RegExp(`^${name}: .+; run "${name} --help"`));
    }
  }, 60_000);
});

describe("error paths", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "custos-cli-conv-"));
  const config = path.join(dir, "config.json");
  writeFileSync(config, JSON.stringify(testPolicy()));
  const fixture = path.join(ROOT, "sdk/compiler/fixtures/basic.policy.ts");

  const usage = async (argv: string[], mention: RegExp) => {
    const r = await custos(...argv);
    const label = argv.join(" ");
    expect(r.code, label).toBe(2);
    expect(r.stdout, label).toBe("");
    const lines = oneLine(r.stderr);
    expect(lines, `${label}: ${r.stderr}`).toHaveLength(1);
    expect(lines[0], label).toMatch(/^custos /);
    expect(lines[0], label).toMatch(mention);
  };

  it("bad values are refused, not taken as something else", async () => {
    await usage(
      ["compile", fixture, "--out", path.join(dir, "o.json"), "--skip-typecheck", "--max-warnings", "many"],
      /--max-warnings.*many/,
    );
    await usage(
      ["explain", "--config", config, "--as", "agents", "--claim", "novalue", "get", "pods"],
      /key=value/,
    );
    // a misspelt option of explain's own is not swallowed as a kubectl flag (--exit-code would be lost)
    await usage(
      ["explain", "--config", config, "--as", "agents", "get", "secrets", "--exit-cod"],
      /--exit-code/,
    );
    await usage(["policy", "diff", config, config, "--max-rows", "-5"], /--max-rows/);
    await usage(["login", "--purpose", "x", "--ttl", "forever"], /--ttl/);
    await usage(["audit", "report", dir, "--format", "xml"], /--format/);
    await usage(
      ["gateway", "--listen", "nonsense", "--policy", config, "--upstream-kubeconfig", config],
      /^custos gateway: (?!.*listen: listen:).*listen: expected host:port/,
    );
  });

  it("missing files name the path and what to pass", async () => {
    await usage(["policy", "test", path.join(dir, "nope.yaml")], /nope\.yaml.*(pass|give|add)/);
    await usage(["policy", "diff", path.join(dir, "nope.json"), config], /nope\.json.*custos compile/);
    await usage(
      ["explain", "--config", path.join(dir, "nope.json"), "--as", "agents", "get", "pods"],
      /custos compile/,
    );
    await usage(
      ["compile", path.join(dir, "nope.ts"), "--out", path.join(dir, "o.json")],
      /nope\.ts.*policy\.ts/,
    );
    await usage(["gateway", "--config", path.join(dir, "nope.yaml")], /nope\.yaml.*--config/);
    await usage(["audit", "query", path.join(dir, "nope")], /not a git repository/);
  });

  it("audit query checks its filters before printing anything", async () => {
    const repo = path.join(dir, "repo");
    execFileSync("git", ["init", "-q", repo]);
    await usage(["audit", "query", repo, "--since", "yesterday"], /--since/);
  });

  it("--json: one JSON document on stdout, nothing else mixed in, even when it fails", async () => {
    const ok = await custos("explain", "--config", config, "--as", "agents", "get", "pods", "--json");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ decision: { decision: "allow" } });
    const bad = await custos(
      "compile",
      path.join(dir, "nope.ts"),
      "--out",
      path.join(dir, "o.json"),
      "--json",
    );
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problems: [{ code: "POLICY_NOT_FOUND" }] });
    expect(bad.stderr).toBe("");
    const diff = await custos("policy", "diff", config, config, "--json");
    expect(diff.code).toBe(0);
    expect(JSON.parse(diff.stdout)).toMatchObject({ empty: true });
  });
});
