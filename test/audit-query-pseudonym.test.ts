/**
 * `custos audit query --namespace <real name> --pseudonym-key <file>`: a namespace whose name
 * holds an identifier is stored masked and followed by `#<keyed digest>` (as object names are);
 * with the gateway's pseudonym key the auditor finds its records by the real name.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceRecord } from "../gateway/ports.ts";
import { bindDigest } from "../sdk/lib/digest.ts";
import { buildRepo, historySpecs, makeKey, makeRecord, segmentPath, T0 } from "./audit-fixture.ts";

const exec = promisify(execFile);
const key = new Uint8Array(randomBytes(32));
const REAL_NS = "patient-MRN-00481516";
const OTHER_NS = "patient-MRN-00999999";
const REAL_NAME = "record-MRN-00481516";
const masked = (v: string, label: string) => `[MASKED:${label}]#${bindDigest(key, v)}`;

let tmp: string;
let repo: string;
let keyFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "custos-audit-pseudonym-"));
  const k = await makeKey(tmp, "k", "gw1@custos.local");
  keyFile = join(tmp, "pseudonym.key");
  await writeFile(keyFile, `${Buffer.from(key).toString("base64")}\n`);
  const t = (i: number) => new Date(T0 + i * 1000).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  const records: EvidenceRecord[] = [
    makeRecord("gw1", 1, t(1), { namespace: masked(REAL_NS, "mrn"), name: masked(REAL_NAME, "mrn") }),
    makeRecord("gw1", 2, t(2), { namespace: masked(REAL_NS, "mrn"), name: "plain-cm" }),
    makeRecord("gw1", 3, t(3), { namespace: masked(OTHER_NS, "mrn"), name: "plain-cm" }),
    makeRecord("gw1", 4, t(4), { namespace: "clinic", name: "plain-cm" }),
  ];
  repo = join(tmp, "repo");
  await buildRepo(
    repo,
    "gw1",
    historySpecs("gw1", [{ path: segmentPath("gw1", 1, records[0]!.stageTimestamp), records }], k),
  );
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const cli = (args: string[]) =>
  exec("node", ["bin/custos.mjs", "audit", "query", repo, "--json", ...args], {
    cwd: join(import.meta.dirname, ".."),
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
const seqs = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as EvidenceRecord).custos.seq);

describe("custos audit query --namespace with --pseudonym-key", () => {
  it("finds the records of a masked namespace by its real name", async () => {
    const r = await cli(["--namespace", REAL_NS, "--pseudonym-key", keyFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(seqs(r.stdout)).toEqual([1, 2]);
  });

  it("with --name too, both must match", async () => {
    const r = await cli(["--namespace", REAL_NS, "--name", REAL_NAME, "--pseudonym-key", keyFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(seqs(r.stdout)).toEqual([1]);
  });

  it("a plain namespace is still found by its name; without the key a masked one is not", async () => {
    const plain = await cli(["--namespace", "clinic", "--pseudonym-key", keyFile]);
    expect(seqs(plain.stdout)).toEqual([4]);
    const without = await cli(["--namespace", REAL_NS]);
    expect(without.code).toBe(0);
    expect(seqs(without.stdout)).toEqual([]);
  });

  it("--pseudonym-key alone is a usage error naming --name and --namespace", async () => {
    const r = await cli(["--pseudonym-key", keyFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--namespace");
  });
});
