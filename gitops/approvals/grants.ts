/**
 * Grants and denials, persisted so that a restarted gateway neither forgets a grant nor lets
 * a single-use grant be used twice. Layout under `dir`:
 *   grants/<grantId>.json    the grant (written once, fsync'd)
 *   used/<grantId>           created with O_EXCL by the one call that consumes a single-use grant
 *   denials/<requestId>.json a signed denial, binding until the request's expiry
 *   recorded/<sha256>        a review already written to evidence (no duplicates after a restart)
 * O_EXCL creation is atomic on local filesystems, so even two gateway processes sharing the
 * directory cannot both consume one grant. Without `dir` everything lives in memory (tests).
 */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Json } from "../../sdk/schema/config.ts";
import type { RequestFile } from "./fingerprint.ts";

export interface Grant {
  grantId: string;
  requestId: string;
  fingerprint: string;
  use: "once" | "ttl";
  grantedAt: string;
  expiresAt: string;
  url?: string;
  /** the request this grant answers (masked: no PHI), so evidence of its use survives a restart */
  request?: RequestFile;
  approvals: { reviewerId: number | null; login: string; reviewId: string; keyFingerprint?: string }[];
}

export interface Denial {
  requestId: string;
  fingerprint: string;
  deniedAt: string;
  /** until when the denial binds (the request's expiry) */
  expiresAt: string;
  reason: string;
  url?: string;
  reviewer: { reviewerId: number | null; login: string; reviewId: string; keyFingerprint?: string };
}

function writeDurable(path: string, content: string, exclusive: boolean): boolean {
  let fd: number;
  try {
    fd = openSync(path, exclusive ? "wx" : "w", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

export class GrantStore {
  private readonly grants = new Map<string, Grant>();
  private readonly used = new Set<string>();
  private readonly denials = new Map<string, Denial>();
  private readonly recorded = new Set<string>();
  private readonly dir: string | undefined;

  constructor(opts: { dir?: string } = {}) {
    this.dir = opts.dir;
    if (this.dir) {
      for (const sub of ["grants", "used", "denials", "recorded"])
        mkdirSync(join(this.dir, sub), { recursive: true, mode: 0o700 });
      for (const f of readdirSync(join(this.dir, "grants"))) {
        if (!f.endsWith(".json")) continue;
        const g = JSON.parse(readFileSync(join(this.dir, "grants", f), "utf8")) as Grant;
        this.grants.set(g.grantId, g);
      }
      for (const f of readdirSync(join(this.dir, "denials"))) {
        if (!f.endsWith(".json")) continue;
        const d = JSON.parse(readFileSync(join(this.dir, "denials", f), "utf8")) as Denial;
        this.denials.set(d.requestId, d);
      }
    }
  }

  putGrant(g: Grant): void {
    if (this.dir)
      writeDurable(
        join(this.dir, "grants", `${safe(g.grantId)}.json`),
        `${JSON.stringify(g, null, 2)}\n`,
        false,
      );
    this.grants.set(g.grantId, g);
  }

  getGrant(grantId: string): Grant | undefined {
    return this.grants.get(grantId);
  }

  isUsed(grantId: string): boolean {
    if (this.used.has(grantId)) return true;
    if (!this.dir) return false;
    try {
      readFileSync(join(this.dir, "used", safe(grantId)));
      this.used.add(grantId);
      return true;
    } catch {
      return false;
    }
  }

  /** A grant for this fingerprint that can still be used at `now`. */
  findGrant(fingerprint: string, now: Date): Grant | undefined {
    let best: Grant | undefined;
    for (const g of this.grants.values()) {
      if (g.fingerprint !== fingerprint) continue;
      if (now.getTime() >= Date.parse(g.expiresAt)) continue;
      if (g.use === "once" && this.isUsed(g.grantId)) continue;
      if (!best || g.grantedAt > best.grantedAt) best = g;
    }
    return best;
  }

  /**
   * Use a grant. Single-use: true exactly once, ever (persisted before returning true).
   * TTL: true while unexpired. Unknown or expired grants: false.
   */
  consume(grantId: string, now: Date): boolean {
    const g = this.grants.get(grantId);
    if (!g || now.getTime() >= Date.parse(g.expiresAt)) return false;
    if (g.use === "ttl") return true;
    if (this.used.has(grantId)) return false;
    // claim in memory first: JavaScript runs this synchronously, so no second caller interleaves
    this.used.add(grantId);
    if (!this.dir) return true;
    return writeDurable(join(this.dir, "used", safe(grantId)), `${now.toISOString()}\n`, true);
  }

  /** Whether markRecorded(key) was already called (here or by an earlier run on the same dir). */
  isRecorded(key: string): boolean {
    if (this.recorded.has(key)) return true;
    if (!this.dir) return false;
    try {
      readFileSync(join(this.dir, "recorded", createHash("sha256").update(key).digest("hex")));
      this.recorded.add(key);
      return true;
    } catch {
      return false;
    }
  }

  /** Claim a one-time evidence step (e.g. one review's verdict): true the first time only, across restarts. */
  markRecorded(key: string): boolean {
    if (this.recorded.has(key)) return false;
    this.recorded.add(key);
    if (!this.dir) return true;
    return writeDurable(
      join(this.dir, "recorded", createHash("sha256").update(key).digest("hex")),
      `${key}\n`,
      true,
    );
  }

  putDenial(d: Denial): void {
    if (this.dir)
      writeDurable(
        join(this.dir, "denials", `${safe(d.requestId)}.json`),
        `${JSON.stringify(d, null, 2)}\n`,
        false,
      );
    this.denials.set(d.requestId, d);
  }

  findDenial(fingerprint: string, now: Date): Denial | undefined {
    for (const d of this.denials.values()) {
      if (d.fingerprint === fingerprint && now.getTime() < Date.parse(d.expiresAt)) return d;
    }
    return undefined;
  }

  /** Plain data for evidence records. */
  static toJson(g: Grant): Json {
    const { request: _request, ...rest } = g;
    return JSON.parse(JSON.stringify(rest)) as Json;
  }
}

function safe(id: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(id))
    throw new Error(`expected a grant or request id of [A-Za-z0-9._-], found ${JSON.stringify(id)}`);
  return id;
}
