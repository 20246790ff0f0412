/**
 * What every `custos` command shares on the command line: commander's own errors (a wrong
 * flag, a missing argument, a bad value) as ONE line naming the command, the problem and the
 * fix, and the exit codes in `--help`.
 */
import { type Command, InvalidArgumentError } from "commander";

/** The exit codes of every command (bin/custos.ts); `--help` prints them. */
export const EXIT_CODES_HELP =
  "Exit codes: 0 ok; 1 the check failed (a policy test, an audit finding, a deny with --exit-code, more warnings than --max-warnings); 2 bad usage or input (a wrong flag, a missing file, a bad value or config); 3 runtime failure (I/O, network, git).";

interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Apply the conventions to a command and its subcommands: output to `io`, commander's errors
 * as `custos x: <problem>; run "custos x --help" for the options`, the exit codes after the
 * help (unless the command's own help text already lists them).
 */
export function cliConventions(cmd: Command, io: Io = process, o: { exitCodesHelp?: boolean } = {}): Command {
  const name = fullName(cmd);
  cmd.configureOutput({
    writeOut: (s) => void io.stdout.write(s),
    writeErr: (s) => void io.stderr.write(s),
    outputError: (s, write) => {
      const text = s
        .replace(/^error: /, "")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "")
        .join(" ");
      write(`${name}: ${text}; run "${name} --help" for the options\n`);
    },
  });
  if (o.exitCodesHelp !== false) cmd.addHelpText("after", `\n${EXIT_CODES_HELP}`);
  for (const sub of cmd.commands) cliConventions(sub, io, o);
  return cmd;
}

/** A commander argument parser for an integer in [min, max]. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `expected an integer >= ${min}`
          : `expected an integer ${min}..${max}`,
      );
    return n;
  };
}
