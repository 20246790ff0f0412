/** The README.md written in the first commit of every evidence branch: verification for auditors. */
export function evidenceReadme(gatewayId: string, principal: string, publicKeyOpenSsh: string): string {
  return `# custos evidence repository

This repository is the audit log of the custos Kubernetes API gateway. Every API call made
through the gateway is one JSON line (an \`audit.k8s.io/v1\` Event plus custos fields:
decision, rule, policy hash, approval, masking summary, purpose, job run, sequence number).
It holds no PHI: bodies were masked before they were written.

## Layout

| path | content |
| --- | --- |
| \`records/YYYY/MM/DD/HH/MM/<gateway>-<first-seq>.jsonl\` | one file per signed commit; one record per line, \`custos.seq\` 1, 2, 3, ... per gateway |
| \`sessions/YYYY/MM/DD/<auditID>.cast\` | masked terminal sessions (asciicast v2) |
| \`policies/<sha256>.json\` | every compiled policy the gateway enforced, by its hash |
| \`checkpoints/<gateway>/<seq>.txt\` | signed checkpoints: record count, chained hash of all records, last commit |

Each gateway instance writes its own branch \`evidence/<gateway>\`; this one was started by
gateway \`${gatewayId}\`. Files are only ever added: no commit modifies or deletes a file, and
the history is never rewritten.

## Verify with plain git and OpenSSH

Every commit is signed with the gateway's ed25519 key (OpenSSH \`sshsig\`, namespace \`git\`).
Get the gateway's public key from its operator out of band (never trust a key found in this
repository), as an \`allowed_signers\` line. For comparison only, the line this branch was
started with reads:

    ${principal} ${publicKeyOpenSsh}

Then:

    git clone --mirror <url> evidence.git && cd evidence.git   # --mirror: every gateway's branch
    git -c gpg.format=ssh -c gpg.ssh.allowedSignersFile=../allowed_signers \\
        log --show-signature evidence/${gatewayId}
    for c in $(git rev-list evidence/${gatewayId}); do
      git -c gpg.format=ssh -c gpg.ssh.allowedSignersFile=../allowed_signers verify-commit "$c" || echo "BAD $c"
    done

Each commit's committer e-mail is the principal of the key that signed it.

## Verify with custos

    custos audit verify . --allowed-signers ../allowed_signers [--checkpoint <saved checkpoint file>]

checks every signature and committer, that no line of any record file was changed or removed
and no file deleted, that each gateway's sequence numbers have no gap or repeat, that
timestamps never go backwards, and that the history extends every checkpoint you saved
earlier. Checkpoints published outside this repository (for example as comments on the
approvals repository) protect against the key holder rewriting or rolling back history.
`;
}
