/**
 * Approvals benchmark: signing, verifying, evaluating a request's reviews, and one gateway
 * `check` round trip against the GitHub stand-in on loopback (real @octokit/rest).
 *   node --import tsx bench/approvals.ts
 */
import nacl from "tweetnacl";
import { evaluateReviews, type ReviewView } from "../gitops/approvals/evaluate.ts";
import { createOctokit, GitHubApprovalService } from "../gitops/approvals/github.ts";
import {
  formatSignatureBlock,
  signDecision,
  signingPayload,
  verifyEd25519,
} from "../gitops/approvals/signature.ts";
import { formatPublicKey } from "../gitops/approvals/sshkey.ts";
import { GitHubStandIn } from "../test/github/server.ts";
import { group, MemorySink, operation, requirement } from "../test/github/harness.ts";

function time(n: number, fn: () => void): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e6 / n; // ms per op
}

const FP = `sha256:${"12".repeat(32)}`;
const ID = "121212121212-miexk2ab";
const keys = [1, 2, 3].map((i) => ({
  ...nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i)),
  comment: "",
}));
const msg = signingPayload("approve", FP, ID);
const sig = nacl.sign.detached(msg, keys[0]!.secretKey);

const signMs = time(200, () => signDecision(keys[0]!, "approve", FP, ID));
const verifyNaclMs = time(200, () => nacl.sign.detached.verify(msg, sig, keys[0]!.publicKey));
const verifyNodeMs = time(2000, () => verifyEd25519(msg, sig, keys[0]!.publicKey));

const g = {
  reviewers: keys.map((k, i) => ({ githubId: i + 1, login: `r${i}`, keys: [formatPublicKey(k.publicKey)] })),
  source: { file: "b", line: 0, column: 0 },
};
const reviews: ReviewView[] = keys.map((k, i) => ({
  id: String(i),
  reviewerId: i + 1,
  login: `r${i}`,
  state: "APPROVED",
  commitId: "h",
  body: formatSignatureBlock(signDecision(k, "approve", FP, ID)),
  order: i,
}));
const evalMs = time(2000, () =>
  evaluateReviews({
    request: { requestId: ID, fingerprint: FP, expiresAt: "2999-01-01T00:00:00Z" },
    headSha: "h",
    reviews,
    group: g,
    requirement: { count: 3, allowUnsigned: false },
    excludedIds: [],
    now: new Date(),
  }),
);

const gh = await new GitHubStandIn().start();
const bot = gh.addUser("bot", "Bot");
const alice = gh.addUser("alice");
gh.addRepo("acme", "approvals");
const quiet = () => {};
const svc = new GitHubApprovalService({
  octokit: createOctokit({
    baseUrl: gh.baseUrl,
    token: bot.token,
    log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
  }),
  owner: "acme",
  repo: "approvals",
  approvalGroups: { security: group([{ githubId: alice.id, login: "alice", keys: [] }]) },
  evidence: new MemorySink(),
  log: quiet,
});
let t = process.hrtime.bigint();
await svc.check(operation(), requirement());
const openMs = Number(process.hrtime.bigint() - t) / 1e6;
const samples: number[] = [];
for (let i = 0; i < 50; i++) {
  t = process.hrtime.bigint();
  await svc.check(operation(), requirement());
  samples.push(Number(process.hrtime.bigint() - t) / 1e6);
}
samples.sort((a, b) => a - b);
await svc.close();
await gh.stop();

const summary = {
  signMs: +signMs.toFixed(3),
  verifyTweetnaclMs: +verifyNaclMs.toFixed(3),
  verifyNodeCryptoMs: +verifyNodeMs.toFixed(4),
  evaluate3SignedReviewsMs: +evalMs.toFixed(3),
  openRequestMs: +openMs.toFixed(1),
  pendingCheckP50Ms: +samples[25]!.toFixed(2),
  pendingCheckP95Ms: +samples[47]!.toFixed(2),
};
console.log(JSON.stringify(summary));
console.table(Object.entries(summary).map(([what, ms]) => ({ what, ms })));
