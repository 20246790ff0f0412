/**
 * Exec, attach and port-forward over WebSocket, in the channel protocols of
 * k8s.io/apimachinery/pkg/util/httpstream/wsstream: every binary message starts with a
 * channel byte (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize; v5 adds 255 "close
 * this channel"). v4 and v5 end an exec with a meta/v1 Status on channel 3; older protocols
 * send only a failure message there. Port-forward uses a data and an error channel per port,
 * each opened by the server with the port number as two little-endian bytes.
 *
 * The "processes" are emulated: the pod's exec table (see pods.ts), `cat` (echoes stdin),
 * `sh`/`bash` (a line-oriented shell, echoing input on a tty), and a few builtins.
 */
import type { WebSocket } from "ws";
import type { JsonObject } from "./errors.ts";
import { containerEnv, type ExecResult, execTable, podName, type PortTarget } from "./pods.ts";
import type { SpdyStream } from "./spdy.ts";

export const EXEC_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
export const PORTFORWARD_PROTOCOLS = [
  "v4.channel.k8s.io",
  "v4.portforward.k8s.io",
  "portforward.k8s.io",
  "SPDY/3.1+portforward.k8s.io",
];

export const CH = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

export interface ExecRequest {
  command: string[];
  container: string;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

type Exit = { code: number } | { internalError: string };

interface ProcessIO {
  out(s: string): void;
  err(s: string): void;
  exit(e: Exit): void;
}

/** A running emulated process: feed it stdin, tell it stdin closed. */
interface Process {
  stdin(chunk: Buffer): void;
  stdinClosed(): void;
}

function shellSplit(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2] ?? m[3] ?? "");
  return out;
}

/** Run one command line without a shell around it; undefined when the program does not exist. */
function runSimple(
  pod: JsonObject,
  container: string,
  argv: string[],
  table: Record<string, ExecResult>,
  now: () => Date,
): ExecResult | undefined {
  const line = argv.join(" ");
  const hit = table[line];
  if (hit) return hit;
  const [cmd, ...args] = argv;
  const bin = (cmd ?? "").replace(/^.*\//, "");
  switch (bin) {
    case "echo":
      return { stdout: `${args.join(" ")}\n` };
    case "true":
      return { exitCode: 0 };
    case "false":
      return { exitCode: 1 };
    case "hostname":
      return { stdout: `${podName(pod)}\n` };
    case "id":
      return { stdout: "uid=0(root) gid=0(root) groups=0(root)\n" };
    case "date":
      return { stdout: `${now().toUTCString()}\n` };
    case "pwd":
      return { stdout: "/\n" };
    case "ls":
      return {
        stdout: ["bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "var"].join("\n") + "\n",
      };
    case "env":
    case "printenv": {
      const env = containerEnv(pod, container);
      if (bin === "printenv" && args.length > 0) {
        const vals = args.map((a) => env.find(([k]) => k === a)?.[1]).filter((v) => v !== undefined);
        return { stdout: vals.map((v) => `${v}\n`).join(""), exitCode: vals.length === args.length ? 0 : 1 };
      }
      return { stdout: env.map(([k, v]) => `${k}=${v}\n`).join("") };
    }
    case "cat":
      if (args.length === 0) return undefined;
      return {
        stderr: args.map((a) => `cat: can't open '${a}': No such file or directory\n`).join(""),
        exitCode: 1,
      };
    case "exit":
      return { exitCode: Number(args[0] ?? 0) || 0 };
    default:
      return undefined;
  }
}

export function startProcess(pod: JsonObject, req: ExecRequest, io: ProcessIO, now: () => Date): Process {
  const table = execTable(pod, req.container);
  const nl = req.tty ? "\r\n" : "\n";
  const fix = (s: string) => (req.tty ? s.replace(/\r?\n/g, "\r\n") : s);
  const emit = (r: ExecResult) => {
    if (r.stdout) io.out(fix(r.stdout));
    if (r.stderr) (req.tty ? io.out : io.err)(fix(r.stderr));
  };
  const argv = req.command;
  const line = argv.join(" ");
  const bin = (argv[0] ?? "").replace(/^.*\//, "");
  const isShell = bin === "sh" || bin === "bash" || bin === "ash";
  const none: Process = { stdin: () => {}, stdinClosed: () => {} };

  // sh -c "<line>": one line through the shell
  if (isShell && argv[1] === "-c" && table[line] === undefined) {
    const inner = argv.slice(2).join(" ");
    const r = table[inner] ?? runSimple(pod, req.container, shellSplit(inner), table, now);
    setImmediate(() => {
      if (r) {
        emit(r);
        io.exit({ code: r.exitCode ?? 0 });
      } else {
        io.err(fix(`sh: ${shellSplit(inner)[0] ?? ""}: not found\n`));
        io.exit({ code: 127 });
      }
    });
    return none;
  }

  // interactive shell: one command per line of stdin
  if (isShell && table[line] === undefined) {
    let buf = "";
    let done = false;
    const prompt = () => {
      if (req.tty) io.out("/ # ");
    };
    setImmediate(prompt);
    const runLine = (l: string) => {
      const trimmed = l.trim();
      if (trimmed === "") return prompt();
      const words = shellSplit(trimmed);
      if (words[0] === "exit") {
        done = true;
        io.exit({ code: Number(words[1] ?? 0) || 0 });
        return;
      }
      const r = table[trimmed] ?? runSimple(pod, req.container, words, table, now);
      if (r) emit(r);
      else (req.tty ? io.out : io.err)(`sh: ${words[0] ?? ""}: not found${nl}`);
      prompt();
    };
    return {
      stdin: (chunk) => {
        if (done) return;
        const s = chunk.toString("utf8");
        if (req.tty) io.out(s.replace(/\r/g, "\r\n")); // the terminal echoes what is typed
        buf += s;
        for (let i = buf.search(/[\r\n]/); i >= 0 && !done; i = buf.search(/[\r\n]/)) {
          const l = buf.slice(0, i);
          buf = buf.slice(i + 1);
          runLine(l);
        }
      },
      stdinClosed: () => {
        if (done) return;
        if (buf.trim() !== "") runLine(buf);
        if (!done) {
          done = true;
          io.exit({ code: 0 });
        }
      },
    };
  }

  // cat with no arguments: stdin to stdout
  if (bin === "cat" && argv.length === 1 && table[line] === undefined) {
    if (!req.stdin) {
      setImmediate(() => io.exit({ code: 0 }));
      return none;
    }
    let ended = false;
    return {
      stdin: (chunk) => {
        if (!ended) io.out(fix(chunk.toString("utf8")));
      },
      stdinClosed: () => {
        if (ended) return;
        ended = true;
        io.exit({ code: 0 });
      },
    };
  }

  const r = runSimple(pod, req.container, argv, table, now);
  setImmediate(() => {
    if (r) {
      emit(r);
      io.exit({ code: r.exitCode ?? 0 });
    } else {
      io.exit({
        internalError: `error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: "${argv[0] ?? ""}": executable file not found in $PATH: unknown`,
      });
    }
  });
  return none;
}

function frame(ch: number, data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return Buffer.concat([Buffer.from([ch]), body]);
}

/** The exit Status on channel 3 exactly as the kubelet writes it (remotecommand v4+). */
export function exitStatus(e: Exit): JsonObject {
  if ("internalError" in e) {
    return {
      metadata: {},
      status: "Failure",
      message: `Internal error occurred: ${e.internalError}`,
      reason: "InternalError",
      details: { causes: [{ message: e.internalError }] },
      code: 500,
    };
  }
  if (e.code === 0) return { metadata: {}, status: "Success" };
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [...], exit code ${e.code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(e.code) }] },
  };
}

export interface SessionCounters {
  bytesIn: number;
  bytesOut: number;
}

/** Wire one exec session to an accepted WebSocket. */
export function serveExec(
  ws: WebSocket,
  protocol: string,
  pod: JsonObject,
  req: ExecRequest,
  now: () => Date,
  counters?: SessionCounters,
): void {
  const v4plus = protocol.startsWith("v4.") || protocol.startsWith("v5.");
  let finished = false;
  const send = (ch: number, s: string) => {
    if (finished || ws.readyState !== ws.OPEN) return;
    const f = frame(ch, s);
    if (counters) counters.bytesOut += f.length - 1;
    ws.send(f);
  };
  const proc = startProcess(
    pod,
    req,
    {
      out: (s) => {
        if (req.stdout) send(CH.stdout, s);
      },
      err: (s) => {
        if (req.stderr) send(CH.stderr, s);
      },
      exit: (e) => {
        if (finished) return;
        const status = exitStatus(e);
        if (v4plus) send(CH.error, JSON.stringify(status));
        else if (status.status !== "Success") send(CH.error, String(status.message));
        finished = true;
        ws.close(1000);
      },
    },
    now,
  );
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    const buf = isBinary ? data : Buffer.from(data.toString(), "utf8");
    if (buf.length === 0) return;
    const ch = buf[0]!;
    const body = buf.subarray(1);
    if (counters) counters.bytesIn += body.length;
    if (ch === CH.stdin && req.stdin) proc.stdin(body);
    else if (ch === CH.close && body[0] === CH.stdin) proc.stdinClosed();
  });
  ws.on("close", () => {
    if (!finished) proc.stdinClosed();
    finished = true;
  });
}

/** attach: new log lines go to stdout (via `subscribe`), stdin is echoed back; runs until the client leaves. */
export function serveAttach(
  ws: WebSocket,
  req: ExecRequest,
  subscribe: (fn: (line: string) => void) => () => void,
): void {
  const send = (ch: number, s: string) => {
    if (ws.readyState === ws.OPEN) ws.send(frame(ch, s));
  };
  const nl = req.tty ? "\r\n" : "\n";
  const stop = req.stdout ? subscribe((line) => send(CH.stdout, `${line}${nl}`)) : () => {};
  ws.on("message", (data: Buffer) => {
    if (data.length === 0) return;
    if (data[0] === CH.stdin && req.stdin && req.stdout) send(CH.stdout, data.subarray(1).toString("utf8"));
    if (data[0] === CH.close && data[1] === CH.stdin) {
      send(CH.error, JSON.stringify(exitStatus({ code: 0 })));
      ws.close(1000);
    }
  });
  ws.on("close", stop);
}

/** port-forward: one data + one error channel per requested port; each target is an echo or a tiny HTTP responder. */
export function servePortForward(
  ws: WebSocket,
  ports: Array<{ port: number; target: PortTarget | undefined }>,
  counters?: SessionCounters,
): void {
  const portBytes = (p: number) => Buffer.from([p & 0xff, (p >> 8) & 0xff]);
  const send = (ch: number, b: Buffer | string) => {
    if (ws.readyState !== ws.OPEN) return;
    const f = frame(ch, b);
    if (counters) counters.bytesOut += f.length - 1;
    ws.send(f);
  };
  const pending = new Map<number, string>();
  ports.forEach(({ port }, i) => {
    send(2 * i, portBytes(port));
    send(2 * i + 1, portBytes(port));
  });
  ws.on("message", (data: Buffer) => {
    if (data.length === 0) return;
    const ch = data[0]!;
    const body = data.subarray(1);
    if (counters) counters.bytesIn += body.length;
    const i = Math.floor(ch / 2);
    const entry = ports[i];
    if (!entry || ch % 2 !== 0 || body.length === 0) return;
    const t = entry.target;
    if (!t) {
      send(
        2 * i + 1,
        `an error occurred forwarding ${entry.port} -> ${entry.port}: error forwarding port ${entry.port} to pod: connection refused`,
      );
      return;
    }
    if (t.mode === "echo") {
      send(2 * i, body);
      return;
    }
    const acc = (pending.get(i) ?? "") + body.toString("latin1");
    if (!acc.includes("\r\n\r\n")) {
      pending.set(i, acc);
      return;
    }
    pending.delete(i);
    const payload = Buffer.from(t.body, "utf8");
    send(
      2 * i,
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${payload.length}\r\n\r\n`,
          "latin1",
        ),
        payload,
      ]),
    );
  });
}

/**
 * port-forward over SPDY (portforward.k8s.io): the client opens an error and a data stream
 * per forwarded connection (same `requestid`); bytes on the data stream go to the target.
 */
export function spdyPortForwardHandler(
  targetFor: (port: number) => PortTarget | undefined,
  counters?: SessionCounters,
): (s: SpdyStream) => void {
  const errorStreams = new Map<string, SpdyStream>();
  return (s) => {
    const type = s.headers.streamtype;
    const rid = s.headers.requestid ?? "";
    const port = Number(s.headers.port);
    if (type === "error") {
      errorStreams.set(rid, s);
      s.onEnd(() => {});
      return;
    }
    if (type !== "data") {
      s.end();
      return;
    }
    const target = Number.isInteger(port) ? targetFor(port) : undefined;
    const finish = () => {
      s.end();
      errorStreams.get(rid)?.end();
      errorStreams.delete(rid);
    };
    if (!target) {
      errorStreams
        .get(rid)
        ?.write(`error forwarding port ${s.headers.port ?? "?"} to pod: connection refused`);
      finish();
      return;
    }
    let pending = "";
    s.onData((b) => {
      if (counters) counters.bytesIn += b.length;
      if (target.mode === "echo") {
        if (counters) counters.bytesOut += b.length;
        s.write(b);
        return;
      }
      pending += b.toString("latin1");
      if (!pending.includes("\r\n\r\n")) return;
      pending = "";
      const payload = Buffer.from(target.body, "utf8");
      const res = Buffer.concat([
        Buffer.from(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`,
          "latin1",
        ),
        payload,
      ]);
      if (counters) counters.bytesOut += res.length;
      s.write(res);
      finish();
    });
    s.onEnd(finish);
  };
}

/**
 * exec/attach over SPDY (kubectl's fallback when the WebSocket upgrade is refused), protocol
 * v4.channel.k8s.io: the client opens one stream per `streamtype` (error, stdin, stdout,
 * stderr, resize); once all it asked for are open the process runs; the exit Status goes
 * on the error stream as JSON, then every stream is closed.
 */
export function spdyExecHandler(
  pod: JsonObject,
  req: ExecRequest,
  mode: "exec" | "attach",
  now: () => Date,
  subscribe: (fn: (line: string) => void) => () => void,
  done: () => void,
): (s: SpdyStream) => void {
  const streams = new Map<string, SpdyStream>();
  const want = [
    "error",
    ...(req.stdin ? ["stdin"] : []),
    ...(req.stdout ? ["stdout"] : []),
    ...(req.stderr && !req.tty ? ["stderr"] : []),
  ];
  let started = false;
  const stdinQueue: Array<Buffer | "end"> = [];
  let proc: Process | undefined;
  const finish = (e: Exit) => {
    streams.get("error")?.write(JSON.stringify(exitStatus(e)));
    for (const s of streams.values()) s.end();
    setTimeout(done, 50);
  };
  const start = () => {
    started = true;
    if (mode === "attach") {
      const stop = req.stdout
        ? subscribe((line) => streams.get("stdout")?.write(`${line}${req.tty ? "\r\n" : "\n"}`))
        : () => {};
      proc = {
        stdin: (b) => streams.get("stdout")?.write(b),
        stdinClosed: () => {
          stop();
          finish({ code: 0 });
        },
      };
    } else {
      proc = startProcess(
        pod,
        req,
        {
          out: (t) => streams.get("stdout")?.write(t),
          err: (t) => streams.get("stderr")?.write(t),
          exit: finish,
        },
        now,
      );
    }
    for (const item of stdinQueue.splice(0)) {
      if (item === "end") proc.stdinClosed();
      else proc.stdin(item);
    }
  };
  return (s) => {
    const type = s.headers.streamtype ?? "";
    streams.set(type, s);
    if (type === "stdin") {
      s.onData((b) => (proc ? proc.stdin(b) : stdinQueue.push(b)));
      s.onEnd(() => (proc ? proc.stdinClosed() : stdinQueue.push("end")));
    }
    if (!started && want.every((w) => streams.has(w))) start();
  };
}
