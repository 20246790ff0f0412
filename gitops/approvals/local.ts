/**
 * LocalApprovalService: the same requests, fingerprints, signature blocks and grant rules as
 * the GitHub backend, kept in a local git repository — for air-gapped sites and the demo.
 * A reviewer runs `custos approve <id> --local <dir> --key <key>`; the gateway sees the new
 * review file on its next check (or poll).
 *
 * Identity: there is no GitHub account behind a local review, so the reviewer is the one whose
 * REGISTERED key verifies the signature (optionally pinned by a declared GitHub id). Unsigned
 * local reviews never count, whatever allowUnsigned says: nothing would say who made them.
 */
import { join } from "node:path";
import type { ApprovalGroup } from "../../sdk/schema/config.ts";
import {
  type ApprovalBackend,
  ApprovalCore,
  type ApprovalCoreOptions,
  type RequestHandle,
  type RequestSnapshot,
} from "./core.ts";
import type { ReviewView } from "./evaluate.ts";
import { GrantStore } from "./grants.ts";
import type { Fingerprint, RequestFile } from "./fingerprint.ts";
import { requestIdPrefix } from "./fingerprint.ts";
import { LocalApprovalRepo } from "./local-repo.ts";
import { parseSignatureBlock } from "./signature.ts";
import { keyFingerprint, parsePublicKey, samePublicKey } from "./sshkey.ts";

export interface LocalApprovalOptions extends ApprovalCoreOptions {
  /** the local approvals repository (created if missing); grants persist in <dir>/.git/custos-state unless `grants` is given */
  dir: string;
  /** re-evaluate open requests every N ms (0/absent: only on check) */
  pollIntervalMs?: number;
}

class LocalBackend implements ApprovalBackend {
  readonly name = "local";
  readonly repo: LocalApprovalRepo;
  constructor(
    private readonly o: LocalApprovalOptions,
    private readonly groups: () => Record<string, ApprovalGroup>,
  ) {
    this.repo = new LocalApprovalRepo(o.dir, o.clock);
  }

  async findOpen(fingerprint: Fingerprint): Promise<RequestHandle | undefined> {
    const prefix = requestIdPrefix(fingerprint);
    const ids = this.repo
      .listRequestIds()
      .filter((id) => id.startsWith(prefix) && !this.repo.readStatus(id))
      .sort()
      .reverse();
    for (const id of ids) {
      let file: RequestFile | undefined;
      try {
        file = this.repo.readRequest(id);
      } catch {
        continue; // a tampered request file is not this operation's request
      }
      if (file && file.fingerprint === fingerprint)
        return { requestId: id, fingerprint, file, ref: `requests/${id}.json` };
    }
    return undefined;
  }

  async open(file: RequestFile): Promise<RequestHandle> {
    await this.repo.putRequest(file);
    return {
      requestId: file.requestId,
      fingerprint: file.fingerprint,
      file,
      ref: `requests/${file.requestId}.json`,
    };
  }

  /** The reviewer whose registered key is the block's key (any group: the rule's group is checked later). */
  private reviewerByKey(keyLine: string): { githubId: number; login: string } | undefined {
    let pub: Uint8Array;
    try {
      pub = parsePublicKey(keyLine).publicKey;
    } catch {
      return undefined;
    }
    const matches = new Map<number, string>();
    for (const g of Object.values(this.groups())) {
      for (const r of g.reviewers) {
        if (
          r.keys.some((k) => {
            try {
              return samePublicKey(parsePublicKey(k).publicKey, pub);
            } catch {
              return false;
            }
          })
        ) {
          matches.set(r.githubId, r.login);
        }
      }
    }
    if (matches.size !== 1) return undefined; // a key shared by two reviewers identifies no one
    const [githubId, login] = [...matches][0]!;
    return { githubId, login };
  }

  async snapshot(h: RequestHandle): Promise<RequestSnapshot> {
    if (this.repo.readStatus(h.requestId)) return { open: false, headSha: "", reviews: [], excludedIds: [] };
    let headSha: string;
    try {
      // a request file changed after it was opened no longer matches: its reviews are on a stale head
      headSha = await this.repo.requestHead(h.requestId);
    } catch {
      return { open: false, headSha: "", reviews: [], excludedIds: [] };
    }
    const reviews: ReviewView[] = this.repo.readReviews(h.requestId).map(({ name, review }, i) => {
      const block = parseSignatureBlock(review.body);
      const byKey = block ? this.reviewerByKey(block.key) : undefined;
      let reviewerId: number | null = review.reviewer.githubId ?? byKey?.githubId ?? null;
      let login = review.reviewer.login;
      if (review.reviewer.githubId === null && byKey) login = byKey.login;
      if (!block) reviewerId = null; // unsigned local reviews name no one
      if (reviewerId === null && block) {
        try {
          login = `${login} (key ${keyFingerprint(parsePublicKey(block.key).publicKey)})`;
        } catch {
          // malformed key: keep the login
        }
      }
      return {
        id: name.replace(/\.json$/, ""),
        reviewerId,
        login,
        state: review.state,
        commitId: review.head,
        body: review.body,
        order: i,
        submittedAt: review.submittedAt,
      };
    });
    return { open: true, headSha, reviews, excludedIds: [] };
  }

  async finalize(
    h: RequestHandle,
    outcome: "granted" | "denied" | "expired",
    comment: string,
  ): Promise<void> {
    const clock = this.o.clock ?? (() => new Date());
    await this.repo.putStatus(h.requestId, { status: outcome, at: clock().toISOString(), comment });
  }

  reviewCommand(h: RequestHandle): string {
    return `custos approve ${h.requestId} --local ${this.o.dir} --key <your ed25519 key>`;
  }
}

export class LocalApprovalService extends ApprovalCore {
  readonly repo: LocalApprovalRepo;

  constructor(o: LocalApprovalOptions) {
    const groups = () => (typeof o.approvalGroups === "function" ? o.approvalGroups() : o.approvalGroups);
    const backend = new LocalBackend(o, groups);
    // grants persist beside the repository (inside .git: state, not history) unless given
    super(backend, {
      ...o,
      grants: o.grants ?? new GrantStore({ dir: join(o.dir, ".git", "custos-state") }),
    });
    this.repo = backend.repo;
    this.startPolling(o.pollIntervalMs);
  }

  /** Create the repository if needed (check() does it lazily too). */
  async init(): Promise<this> {
    await this.repo.ensure();
    return this;
  }
}
