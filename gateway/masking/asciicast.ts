/**
 * Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a JSON
 * header line, then one JSON array per event `[seconds, "o" | "i" | "r", data]`. Standard
 * players (asciinema play, asciinema-player) replay it and ignore the custom `custos` header
 * field, which says who ran what, why, where, and which rule allowed it.
 *
 * The recorder is fed ALREADY MASKED data (the output of the exec/attach stream maskers), so a
 * recording holds no more PHI than the agent was allowed to see. A recording that cannot be
 * kept (too large, evidence sink failing) throws MASK_RECORDING_FAILED: the caller closes the
 * session (fail closed).
 */
import type { EvidenceSink, Identity } from "../ports.ts";
import { recordingFailed } from "./errors.ts";

export interface AsciicastHeader {
  width: number;
  height: number;
  /** unix seconds when the session started */
  timestamp: number;
  title?: string;
  env?: Record<string, string>;
  custos: {
    auditID: string;
    identity: Pick<Identity, "subject" | "groups" | "source"> & { claims?: Record<string, string> };
    purpose?: string;
    namespace: string;
    pod: string;
    container?: string;
    command: string[];
    tty: boolean;
    /** the rule that allowed the session */
    ruleId: string;
    policyHash: string;
  };
}

export interface AsciicastRecorder {
  /** masked output (stdout/stderr) */
  output(data: string): void;
  /** masked input (stdin) */
  input(data: string): void;
  /** terminal resize (channel 4 of the Kubernetes exec protocol) */
  resize(width: number, height: number): void;
  /** the file content so far (header + events, newline-terminated) */
  content(): string;
  readonly bytes: number;
  /** store the recording as one `session` artefact; throws MASK_RECORDING_FAILED */
  finish(sink: Pick<EvidenceSink, "appendArtifact">, name?: string): Promise<void>;
}

export interface AsciicastOptions {
  /** milliseconds, monotonic enough for event offsets (passed in: no clock reads inside) */
  now: () => number;
  /** bound on the recording's size (default 64 MiB); exceeding it throws MASK_RECORDING_FAILED */
  maxBytes?: number;
}

export function createAsciicastRecorder(header: AsciicastHeader, opts: AsciicastOptions): AsciicastRecorder {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const start = opts.now();
  const h: Record<string, unknown> = {
    version: 2,
    width: Math.max(1, Math.floor(header.width)),
    height: Math.max(1, Math.floor(header.height)),
    timestamp: Math.floor(header.timestamp),
    command: header.custos.command.join(" "),
    title:
      header.title ?? `${header.custos.namespace}/${header.custos.pod} ${header.custos.command.join(" ")}`,
    env: header.env ?? { TERM: header.custos.tty ? "xterm-256color" : "dumb", SHELL: "/bin/sh" },
    custos: header.custos,
  };
  const lines: string[] = [JSON.stringify(h)];
  let bytes = lines[0]!.length + 1;
  let failed: string | null = null;

  const add = (code: "o" | "i" | "r", data: string): void => {
    if (failed !== null) throw recordingFailed(failed);
    if (data.length === 0) return;
    const t = Math.max(0, (opts.now() - start) / 1000);
    const line = JSON.stringify([Number(t.toFixed(6)), code, data]);
    if (bytes + line.length + 1 > maxBytes) {
      failed = `the recording exceeded ${maxBytes} bytes`;
      throw recordingFailed(failed);
    }
    lines.push(line);
    bytes += line.length + 1;
  };

  return {
    output: (d) => add("o", d),
    input: (d) => add("i", d),
    resize: (w, hh) => add("r", `${Math.floor(w)}x${Math.floor(hh)}`),
    content: () => lines.join("\n") + "\n",
    get bytes() {
      return bytes;
    },
    async finish(sink, name) {
      if (failed !== null) throw recordingFailed(failed);
      const fileName = name ?? `${header.custos.auditID}.cast`;
      try {
        await sink.appendArtifact({
          kind: "session",
          name: fileName,
          content: lines.join("\n") + "\n",
          auditID: header.custos.auditID,
        });
      } catch (e) {
        throw recordingFailed(
          `the evidence sink refused it: ${(e as { code?: string }).code ?? (e as Error).message}`,
        );
      }
    },
  };
}
