/**
 * The signer module: ed25519 keys (OpenSSH files), SSHSIG signatures as git and ssh-keygen
 * write them, allowed_signers, signed git commits and evidence checkpoints. Everything that
 * signs takes a `Signer`; nothing here reads files or the clock.
 */
export {
  type AllowedSigner,
  AllowedSignersError,
  formatAllowedSigner,
  parseAllowedSigners,
  principalMatches,
  principalsForKey,
} from "./allowed-signers.ts";
export {
  CHAIN_ZERO,
  CHECKPOINT_ORIGIN_PREFIX,
  type Checkpoint,
  type CheckpointBody,
  CheckpointError,
  type CheckpointVerifyResult,
  chainSegment,
  chainStep,
  checkpointSignedText,
  parseCheckpoint,
  signCheckpoint,
  verifyCheckpoint,
} from "./checkpoint.ts";
export {
  createSigner,
  fingerprint,
  KeyError,
  naclSigner,
  nodePrivateKeyFromSeed,
  nodeSigner,
  parseOpenSshPublicKey,
  publicKeyBlob,
  publicKeyOfSeed,
  publicKeyToOpenSsh,
  type Signer,
  verifyEd25519,
} from "./ed25519.ts";
export {
  type CommitFields,
  commitPayload,
  type GitPerson,
  insertSignatureHeader,
  signCommit,
  splitSignedCommit,
  verifyCommitSignature,
} from "./git-commit.ts";
export { formatOpenSshPrivateKey, type OpenSshPrivateKey, parseOpenSshPrivateKey } from "./openssh.ts";
export {
  type ParsedSshsig,
  parseSshsig,
  SshsigError,
  type SshsigVerifyResult,
  sshsigSign,
  sshsigSignedData,
  sshsigVerify,
} from "./sshsig.ts";
export { WireFormatError } from "./wire.ts";
