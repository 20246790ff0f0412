/**
 * The HIPAA baseline with a placeholder reviewer. Copy this file into your policy repo and
 * replace the reviewer with your own (GitHub numeric user id + the ed25519 public key that
 * `custos keygen` printed): until then no approval can ever be granted, because nobody holds
 * the placeholder key's private half.
 *
 *   custos compile templates/hipaa/policy.ts --out .custos/hipaa.json
 *   custos policy test templates/hipaa/policy.tests.yaml
 */
import { hipaaBaseline } from "./baseline.ts";

export default hipaaBaseline({
  reviewers: [
    {
      githubId: 1_000_000_000,
      login: "replace-me",
      keys: [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINIQVD9v6uIYM9xCC1AzmhxYJrfczZf/cTex5JhE75zt placeholder-replace-me",
      ],
    },
  ],
});
