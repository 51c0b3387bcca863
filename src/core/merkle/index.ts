/** RFC 6962 / RFC 9162 Merkle tree: hashing, append-only frontier, proof generation and verification. */
export { HASH_BYTES, EMPTY_ROOT, sha256, leafHash, nodeHash, rootOfLeafHashes } from './hash.js';
export {
  type Frontier,
  type CompletedNode,
  emptyFrontier,
  appendLeaf,
  frontierRoot,
  encodeFrontier,
  decodeFrontier,
  encodedFrontierBytes,
} from './frontier.js';
export {
  type NodeRef,
  type NodeSource,
  inclusionNodes,
  consistencyNodes,
  inclusionProof,
  consistencyProof,
} from './proof.js';
export { rootFromInclusionProof, verifyInclusion, verifyConsistency } from './verify.js';
