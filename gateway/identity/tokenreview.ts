/**
 * Kubernetes service-account (or any cluster) tokens, checked by a TokenReview against the
 * upstream with the gateway's credential (authentication.k8s.io/v1). Results are cached
 * briefly by token digest (never by the token itself).
 */
import { createHash } from "node:crypto";
import type { Identity } from "../ports.ts";

export type PostJson = (path: string, body: unknown) => Promise<{ status: number; body: unknown }>;

export function tokenReviewAuthenticator(
  post: PostJson,
  o: { now: () => number; ttlMs?: number; audiences?: string[] } = { now: Date.now },
): (token: string) => Promise<Identity | undefined> {
  const cache = new Map<string, { at: number; id: Identity | undefined }>();
  return async (token) => {
    const key = createHash("sha256").update(token).digest("hex");
    const hit = cache.get(key);
    if (hit && o.now() - hit.at < (o.ttlMs ?? 60_000)) return hit.id;
    const spec: Record<string, unknown> = { token };
    if (o.audiences) spec.audiences = o.audiences;
    const r = await post("/apis/authentication.k8s.io/v1/tokenreviews", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec,
    });
    let id: Identity | undefined;
    const status = (
      r.body as {
        status?: { authenticated?: boolean; user?: { username?: string; groups?: string[]; uid?: string } };
      }
    )?.status;
    if (r.status === 201 || r.status === 200) {
      if (status?.authenticated && typeof status.user?.username === "string") {
        const claims: Record<string, string> = {};
        if (status.user.uid) claims.uid = status.user.uid;
        id = {
          subject: status.user.username,
          groups: (status.user.groups ?? []).filter((g) => typeof g === "string"),
          claims,
          source: "serviceaccount",
        };
      }
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { at: o.now(), id });
    return id;
  };
}
