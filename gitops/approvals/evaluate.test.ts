import fc from "fast-check";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { evaluateReviews, type ReviewView } from "./evaluate.ts";
import { formatSignatureBlock, signDecision } from "./signature.ts";
import { formatPublicKey } from "./sshkey.ts";

const FP = `sha256:${"12".repeat(32)}`;
const ID = "121212121212-miexk2ab";
const HEAD = "a".repeat(40);
const pairs = [1, 2, 3, 4].map((i) => ({
  ...nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i)),
  comment: "",
}));
const group = {
  reviewers: [1, 2, 3].map((id) => ({
    githubId: id,
    login: `r${id}`,
    keys: [formatPublicKey(pairs[id - 1]!.publicKey)],
  })),
  source: { file: "p.ts", line: 1, column: 1 },
};
const now = new Date("2026-01-01T00:00:00Z");
const request = { requestId: ID, fingerprint: FP, expiresAt: "2026-01-01T01:00:00Z" };

// ed25519 signatures are deterministic: sign once per key
const bodies = pairs.map((p) => formatSignatureBlock(signDecision(p, "approve", FP, ID)));

function signed(
  id: number,
  reviewerId: number,
  keyIndex = reviewerId - 1,
  opts: Partial<ReviewView> = {},
): ReviewView {
  return {
    id: String(id),
    reviewerId,
    login: `r${reviewerId}`,
    state: "APPROVED",
    commitId: HEAD,
    body: bodies[keyIndex]!,
    order: id,
    ...opts,
  };
}

const base = {
  request,
  headSha: HEAD,
  group,
  requirement: { count: 2, allowUnsigned: false },
  excludedIds: [],
  now,
};

describe("evaluateReviews", () => {
  it("grants at the count, not before", () => {
    expect(evaluateReviews({ ...base, reviews: [signed(1, 1)] }).status).toBe("pending");
    expect(evaluateReviews({ ...base, reviews: [signed(1, 1), signed(2, 2)] }).status).toBe("granted");
  });

  it("only counts what it must: for any mix of reviews, a grant implies `count` distinct valid signers (property)", () => {
    const review = fc.record({
      reviewerId: fc.integer({ min: 1, max: 5 }),
      keyIndex: fc.integer({ min: 0, max: 3 }),
      state: fc.constantFrom("APPROVED", "CHANGES_REQUESTED", "DISMISSED", "COMMENTED"),
      stale: fc.boolean(),
      unsigned: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(review, { maxLength: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.subarray([1, 2, 3]),
        (rs, count, excluded) => {
          const reviews = rs.map((r, i) =>
            signed(i, r.reviewerId, r.keyIndex, {
              state: r.state as ReviewView["state"],
              commitId: r.stale ? "b".repeat(40) : HEAD,
              ...(r.unsigned ? { body: "LGTM" } : {}),
            }),
          );
          const ev = evaluateReviews({
            ...base,
            reviews,
            requirement: { count, allowUnsigned: false },
            excludedIds: excluded,
          });
          if (ev.status !== "granted") return true;
          // independently: the latest non-comment review per reviewer, valid by every rule
          const latest = new Map<number, number>();
          rs.forEach((r, i) => {
            if (r.state !== "COMMENTED") latest.set(r.reviewerId, i);
          });
          const good = [...latest].filter(([rid, i]) => {
            const r = rs[i]!;
            return (
              rid <= 3 &&
              !excluded.includes(rid) &&
              r.state === "APPROVED" &&
              !r.stale &&
              !r.unsigned &&
              r.keyIndex === rid - 1
            );
          });
          return good.length >= count;
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a later review replaces an earlier one; a comment does not", () => {
    const ev = evaluateReviews({
      ...base,
      reviews: [signed(1, 1), signed(2, 2), { ...signed(3, 2), state: "COMMENTED", body: "hm" }],
    });
    expect(ev.status).toBe("granted");
    const withdrawn = evaluateReviews({
      ...base,
      reviews: [signed(1, 1), signed(2, 2), { ...signed(3, 2), state: "CHANGES_REQUESTED", body: "no" }],
    });
    expect(withdrawn.status).toBe("pending");
  });

  it("denial wins over approvals; expiry wins over everything else", () => {
    const deny: ReviewView = {
      ...signed(3, 3),
      state: "CHANGES_REQUESTED",
      body: formatSignatureBlock(signDecision(pairs[2]!, "deny", FP, ID)),
    };
    expect(evaluateReviews({ ...base, reviews: [signed(1, 1), signed(2, 2), deny] }).status).toBe("denied");
    expect(
      evaluateReviews({
        ...base,
        reviews: [signed(1, 1), signed(2, 2)],
        now: new Date("2026-01-01T01:00:00Z"),
      }).status,
    ).toBe("expired");
  });
});
