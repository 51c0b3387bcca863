import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { isEventDbxError } from '../src/core/errors.js';
import {
  EMPTY_ROOT,
  HASH_BYTES,
  appendLeaf,
  consistencyNodes,
  consistencyProof,
  decodeFrontier,
  emptyFrontier,
  encodeFrontier,
  frontierRoot,
  inclusionNodes,
  inclusionProof,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  rootOfLeafHashes,
  verifyConsistency,
  verifyInclusion,
  type Frontier,
  type NodeRef,
  type NodeSource,
} from '../src/core/merkle/index.js';

interface Vectors {
  empty_tree_root: string;
  leaf_inputs_hex: string[];
  leaf_hashes: string[];
  roots: string[];
  inclusion: { leaf_index: number; tree_size: number; audit_path: string[] }[];
  consistency: { first: number; second: number; consistency_path: string[] }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('./fixtures/rfc6962-vectors.json', import.meta.url), 'utf8'),
) as Vectors;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const at = <T>(xs: readonly T[], i: number): T => {
  if (i < 0 || i >= xs.length) throw new Error(`index ${i} out of ${xs.length}`);
  return xs[i] as T;
};
const key = (level: number, index: number): string => `${level}:${index}`;
const keys = (refs: readonly NodeRef[]): string[] => refs.map((r) => key(r.level, r.index)).sort();

/** Largest power of two strictly below n (n >= 2). */
const split = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** A tree built the way a store would: append through the frontier, keep every completed node. */
function buildTree(leaves: readonly Buffer[]) {
  const nodes = new Map<string, Buffer>();
  const roots: Buffer[] = [frontierRoot(emptyFrontier)]; // roots[size]
  let duplicates = 0;
  let f = emptyFrontier;
  for (const leaf of leaves) {
    const step = appendLeaf(f, leaf);
    for (const c of step.completed) {
      if (nodes.has(key(c.level, c.index))) duplicates += 1;
      nodes.set(key(c.level, c.index), c.hash);
    }
    f = step.frontier;
    roots.push(frontierRoot(f));
  }
  const reads: string[] = [];
  const get: NodeSource = (level, index) => {
    const h = nodes.get(key(level, index));
    if (h === undefined) throw new Error(`node ${key(level, index)} is not stored`);
    reads.push(key(level, index));
    return h;
  };
  return { nodes, roots, get, reads, frontier: f, duplicates };
}

const makeLeaves = (n: number, salt: Uint8Array): Buffer[] =>
  Array.from({ length: n }, (_, i) => leafHash(Buffer.concat([salt, Buffer.from(`/leaf ${i}`)])));

// --- Independent oracles: the RFC 6962 recursive definitions, straight over leaf hashes ---

function refPath(m: number, d: readonly Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const k = split(d.length);
  return m < k
    ? [...refPath(m, d.slice(0, k)), rootOfLeafHashes(d.slice(k))]
    : [...refPath(m - k, d.slice(k)), rootOfLeafHashes(d.slice(0, k))];
}

function refSubproof(m: number, d: readonly Buffer[], whole: boolean): Buffer[] {
  if (m === d.length) return whole ? [] : [rootOfLeafHashes(d)];
  const k = split(d.length);
  return m <= k
    ? [...refSubproof(m, d.slice(0, k), whole), rootOfLeafHashes(d.slice(k))]
    : [...refSubproof(m - k, d.slice(k), false), rootOfLeafHashes(d.slice(0, k))];
}

/**
 * How a verifier combines each element of PATH(m, D[n]): sibling on the Left or Right. Two (index,
 * size) pairs with the same shape verify the same proofs against the same root; with distinct leaves,
 * pairs with different shapes cannot both verify (that would need a SHA-256 collision).
 */
function pathShape(m: number, n: number): string {
  if (n === 1) return '';
  const k = split(n);
  return m < k ? pathShape(m, k) + 'R' : pathShape(m - k, n - k) + 'L';
}

/** Same for PROOF(m, D[n]): Implicit/Explicit start, then elements in Both trees or the Second only. */
function proofShape(m: number, n: number, whole = true): string {
  if (m === n) return whole ? 'I' : 'E';
  const k = split(n);
  return m <= k ? proofShape(m, k, whole) + 'S' : proofShape(m - k, n - k, false) + 'B';
}

const flipByte = (proof: readonly Buffer[], j: number, byte: number): Buffer[] =>
  proof.map((p, i) => {
    if (i !== j) return p;
    const q = Buffer.from(p);
    q[byte % HASH_BYTES] = (q[byte % HASH_BYTES] as number) ^ 0x01;
    return q;
  });
const without = (proof: readonly Buffer[], j: number): Buffer[] => proof.filter((_, i) => i !== j);
const withExtra = (proof: readonly Buffer[], j: number, extra: Buffer): Buffer[] => [
  ...proof.slice(0, j),
  extra,
  ...proof.slice(j),
];

const expectRangeError = (fn: () => unknown, reason: string): void => {
  try {
    fn();
  } catch (e) {
    expect(isEventDbxError(e, 'EDBX_ERR_INVALID_PROOF_RANGE')).toBe(true);
    expect((e as Error).message).toBe(`invalid proof range: ${reason}`);
    return;
  }
  throw new Error(`expected EDBX_ERR_INVALID_PROOF_RANGE (${reason})`);
};

describe('merkle: RFC 6962 reference vectors', () => {
  const leaves = vectors.leaf_inputs_hex.map((h) => leafHash(Buffer.from(h, 'hex')));
  const tree = buildTree(leaves);

  it('hashes the empty tree to SHA-256("")', () => {
    expect(hex(EMPTY_ROOT)).toBe(vectors.empty_tree_root);
    expect(hex(rootOfLeafHashes([]))).toBe(vectors.empty_tree_root);
    expect(hex(frontierRoot(emptyFrontier))).toBe(vectors.empty_tree_root);
  });

  it('computes the published leaf hashes', () => {
    expect(leaves.map(hex)).toEqual(vectors.leaf_hashes);
  });

  it('computes every published root through the reference MTH and through the frontier', () => {
    expect(vectors.roots).toHaveLength(8);
    vectors.roots.forEach((root, i) => {
      expect(hex(rootOfLeafHashes(leaves.slice(0, i + 1)))).toBe(root);
      expect(hex(at(tree.roots, i + 1))).toBe(root);
    });
  });

  it('generates every published inclusion proof byte for byte, and verifies it', () => {
    for (const v of vectors.inclusion) {
      const proof = inclusionProof(tree.get, v.leaf_index, v.tree_size);
      expect(proof.map(hex)).toEqual(v.audit_path);
      const root = Buffer.from(at(vectors.roots, v.tree_size - 1), 'hex');
      const given = v.audit_path.map((h) => Buffer.from(h, 'hex'));
      expect(verifyInclusion(at(leaves, v.leaf_index), v.leaf_index, v.tree_size, given, root)).toBe(true);
    }
  });

  it('generates every published consistency proof byte for byte, and verifies it', () => {
    for (const v of vectors.consistency) {
      const proof = consistencyProof(tree.get, v.first, v.second);
      expect(proof.map(hex)).toEqual(v.consistency_path);
      const r1 = Buffer.from(at(vectors.roots, v.first - 1), 'hex');
      const r2 = Buffer.from(at(vectors.roots, v.second - 1), 'hex');
      const given = v.consistency_path.map((h) => Buffer.from(h, 'hex'));
      expect(verifyConsistency(v.first, v.second, r1, r2, given)).toBe(true);
    }
  });
});

describe('merkle: frontier', () => {
  it('matches the reference root at every size and stores every perfect node exactly once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.uint8Array({ maxLength: 8 }), (n, salt) => {
        const leaves = makeLeaves(n, salt);
        const tree = buildTree(leaves);
        for (let size = 0; size <= n; size++) {
          expect(at(tree.roots, size).equals(rootOfLeafHashes(leaves.slice(0, size)))).toBe(true);
        }
        let perfect = 0;
        for (let width = 1; width <= n; width *= 2) perfect += Math.floor(n / width);
        expect(tree.duplicates).toBe(0);
        expect(tree.nodes.size).toBe(perfect);
        for (const [k, hash] of tree.nodes) {
          const [level, index] = k.split(':').map(Number) as [number, number];
          const width = 2 ** level;
          expect(hash.equals(rootOfLeafHashes(leaves.slice(index * width, (index + 1) * width)))).toBe(true);
        }
      }),
      { numRuns: 15 },
    );
  });

  it('keeps one node per set bit of the size and does not mutate its input', () => {
    let f: Frontier = emptyFrontier;
    for (let i = 0; i < 70; i++) {
      const before = { size: f.size, nodes: [...f.nodes] };
      const next = appendLeaf(f, leafHash(Buffer.from([i]))).frontier;
      expect(f.size).toBe(before.size);
      expect(f.nodes).toEqual(before.nodes);
      f = next;
      expect(f.nodes).toHaveLength(f.size.toString(2).replace(/0/g, '').length);
    }
    expect(emptyFrontier.size).toBe(0);
    expect(emptyFrontier.nodes).toHaveLength(0);
  });

  it('round-trips through its binary form', () => {
    let f: Frontier = emptyFrontier;
    for (let i = 0; i <= 70; i++) {
      const bytes = encodeFrontier(f);
      expect(bytes).toHaveLength(8 + 32 * f.nodes.length);
      expect(bytes.readBigUInt64BE(0)).toBe(BigInt(f.size));
      const back = decodeFrontier(bytes);
      expect(back.size).toBe(f.size);
      expect(back.nodes.map(hex)).toEqual(f.nodes.map(hex));
      f = appendLeaf(f, leafHash(Buffer.from([i]))).frontier;
    }
  });

  it('rejects a corrupted binary form with EDBX_ERR_INTEGRITY', () => {
    let f: Frontier = emptyFrontier;
    for (let i = 0; i < 11; i++) f = appendLeaf(f, leafHash(Buffer.from([i]))).frontier; // 3 nodes
    const good = encodeFrontier(f);
    const changedSize = Buffer.from(good);
    changedSize.writeBigUInt64BE(15n, 0); // 4 set bits, 3 hashes
    const hugeSize = Buffer.from(good);
    hugeSize.writeBigUInt64BE(2n ** 53n, 0);
    const corrupt = [
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.alloc(32)]),
      Buffer.concat([good, Buffer.alloc(1)]),
      good.subarray(0, 7),
      Buffer.alloc(0),
      changedSize,
      hugeSize,
    ];
    for (const bytes of corrupt) {
      try {
        decodeFrontier(bytes);
        throw new Error('decoded a corrupt frontier');
      } catch (e) {
        expect(isEventDbxError(e, 'EDBX_ERR_INTEGRITY')).toBe(true);
        expect((e as { params: Record<string, unknown> }).params.where).toBe('merkle frontier');
      }
    }
  });

  it('refuses a leaf that is not a 32-byte hash', () => {
    expect(() => appendLeaf(emptyFrontier, Buffer.alloc(31))).toThrow(/32 bytes/);
  });
});

describe('merkle: proofs from stored perfect nodes', () => {
  it('match the RFC 6962 recursive definitions and read exactly the announced nodes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.uint8Array({ maxLength: 8 }), (n, salt) => {
        const leaves = makeLeaves(n, salt);
        const tree = buildTree(leaves);
        const bound = (Math.ceil(Math.log2(n)) + 1) ** 2;
        for (let i = 0; i < n; i++) {
          tree.reads.length = 0;
          const proof = inclusionProof(tree.get, i, n);
          expect(proof.map(hex)).toEqual(refPath(i, leaves).map(hex));
          const refs = inclusionNodes(i, n);
          expect(keys(refs)).toEqual([...new Set(tree.reads)].sort());
          expect(refs.length).toBeLessThanOrEqual(bound);
          expect(verifyInclusion(at(leaves, i), i, n, proof, at(tree.roots, n))).toBe(true);
        }
        for (let m = 1; m <= n; m++) {
          tree.reads.length = 0;
          const proof = consistencyProof(tree.get, m, n);
          expect(proof.map(hex)).toEqual(refSubproof(m, leaves, true).map(hex));
          const refs = consistencyNodes(m, n);
          expect(keys(refs)).toEqual([...new Set(tree.reads)].sort());
          expect(refs.length).toBeLessThanOrEqual(bound);
          expect(verifyConsistency(m, n, at(tree.roots, m), at(tree.roots, n), proof)).toBe(true);
        }
      }),
      { numRuns: 12 },
    );
  });

  it('reject ranges outside the tree with EDBX_ERR_INVALID_PROOF_RANGE', () => {
    const get: NodeSource = () => Buffer.alloc(32);
    expectRangeError(() => inclusionProof(get, 5, 3), 'leaf index 5 is not below tree size 3');
    expectRangeError(() => inclusionNodes(3, 3), 'leaf index 3 is not below tree size 3');
    expectRangeError(() => inclusionProof(get, 0, 0), 'tree size 0 is not a whole number >= 1');
    expectRangeError(() => inclusionProof(get, -1, 3), 'leaf index -1 is not a whole number >= 0');
    expectRangeError(() => inclusionProof(get, 1.5, 3), 'leaf index 1.5 is not a whole number >= 0');
    expectRangeError(() => consistencyProof(get, 0, 3), 'first tree size 0 is not a whole number >= 1');
    expectRangeError(() => consistencyNodes(4, 3), 'first tree size 4 is above second tree size 3');
    expectRangeError(() => consistencyProof(get, 1, NaN), 'second tree size NaN is not a whole number >= 1');
  });

  it('give an empty consistency proof between equal sizes', () => {
    const get: NodeSource = () => {
      throw new Error('no read expected');
    };
    expect(consistencyProof(get, 7, 7)).toEqual([]);
    expect(consistencyNodes(7, 7)).toEqual([]);
  });
});

describe('merkle: verifiers reject altered proofs', () => {
  const arbCase = fc
    .record({ n: fc.integer({ min: 1, max: 300 }), salt: fc.uint8Array({ maxLength: 8 }) })
    .chain(({ n, salt }) =>
      fc.record({
        n: fc.constant(n),
        salt: fc.constant(salt),
        i: fc.nat({ max: n - 1 }),
        m: fc.integer({ min: 1, max: n }),
        other: fc.integer({ min: 1, max: 600 }),
        byte: fc.nat({ max: 31 }),
        pos: fc.nat(),
      }),
    );

  it('inclusion: any changed byte, element, index, size, leaf or root', () => {
    fc.assert(
      fc.property(arbCase, ({ n, salt, i, other, byte, pos }) => {
        const leaves = makeLeaves(n, salt);
        const tree = buildTree(leaves);
        const leaf = at(leaves, i);
        const root = at(tree.roots, n);
        const proof = inclusionProof(tree.get, i, n);
        const ok = (p: readonly Buffer[], idx = i, size = n, r = root, l = leaf) =>
          verifyInclusion(l, idx, size, p, r);
        expect(ok(proof)).toBe(true);
        expect(rootFromInclusionProof(leaf, i, n, proof)?.equals(root)).toBe(true);

        proof.forEach((_, j) => {
          expect(ok(flipByte(proof, j, byte))).toBe(false);
          expect(ok(without(proof, j))).toBe(false);
          expect(ok(proof.map((p, k) => (k === j ? Buffer.concat([p, Buffer.alloc(1)]) : p)))).toBe(false);
        });
        expect(ok(withExtra(proof, pos % (proof.length + 1), randomBytes(32)))).toBe(false);
        expect(ok([...proof, root])).toBe(false);
        expect(rootFromInclusionProof(leaf, i, n, [...proof, root])).toBeUndefined();

        // Same tree size, another index: the path shape differs, so it must fail.
        for (let j = 0; j < n; j++) if (j !== i) expect(ok(proof, j)).toBe(false);
        for (const bad of [n, -1, i + 0.5, NaN]) expect(ok(proof, bad)).toBe(false);
        // Another leaf of the tree in the same place.
        if (n > 1) expect(ok(proof, i, n, root, at(leaves, (i + 1) % n))).toBe(false);

        // Another tree size can legitimately verify (e.g. (0,3) and (0,4) have the same path shape):
        // it must verify exactly when the shapes agree.
        for (const size of [other, n + 1, n - 1, 2 * n, i + 1]) {
          if (size === n || size <= i) continue;
          expect(ok(proof, i, size)).toBe(pathShape(i, size) === pathShape(i, n));
        }

        for (let size = 0; size <= n; size++) {
          if (size !== n) expect(ok(proof, i, n, at(tree.roots, size))).toBe(false);
        }
        expect(ok(proof, i, n, root.subarray(0, 31))).toBe(false);
        expect(ok(proof, i, n, root, Buffer.concat([leaf, Buffer.alloc(1)]))).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('consistency: any changed byte, element, size or swapped roots', () => {
    fc.assert(
      fc.property(arbCase, ({ n, salt, m, other, byte, pos }) => {
        const leaves = makeLeaves(n, salt);
        const tree = buildTree(leaves);
        const r1 = at(tree.roots, m);
        const r2 = at(tree.roots, n);
        const proof = consistencyProof(tree.get, m, n);
        const ok = (p: readonly Buffer[], first = m, second = n, a = r1, b = r2) =>
          verifyConsistency(first, second, a, b, p);
        expect(ok(proof)).toBe(true);

        if (m === n) {
          expect(proof).toHaveLength(0);
          expect(ok([randomBytes(32)])).toBe(false);
          expect(ok([r1])).toBe(false);
          if (n > 1) expect(ok([], m, n, r1, at(tree.roots, n - 1))).toBe(false);
          return;
        }

        proof.forEach((_, j) => {
          expect(ok(flipByte(proof, j, byte))).toBe(false);
          expect(ok(without(proof, j))).toBe(false);
          expect(ok(proof.map((p, k) => (k === j ? p.subarray(0, 31) : p)))).toBe(false);
        });
        expect(ok([])).toBe(false);
        expect(ok(withExtra(proof, pos % (proof.length + 1), randomBytes(32)))).toBe(false);
        expect(ok([...proof, r1])).toBe(false);
        expect(ok([r1, ...proof])).toBe(false);

        expect(ok(proof, m, n, r2, r1)).toBe(false);
        expect(ok(proof, 0)).toBe(false);
        expect(ok(proof, n + 1)).toBe(false);
        expect(ok(proof, m, m - 1)).toBe(false);
        expect(ok(proof, m + 0.5)).toBe(false);

        // Changed sizes with the same roots verify exactly when the proof shape is the same.
        for (let first = 1; first <= n; first++) {
          if (first !== m) expect(ok(proof, first)).toBe(proofShape(first, n) === proofShape(m, n));
        }
        for (const second of [other, n + 1, n - 1, 2 * n, m]) {
          if (second === n || second < m) continue;
          expect(ok(proof, m, second)).toBe(proofShape(m, second) === proofShape(m, n));
        }

        for (let size = 1; size <= n; size++) {
          if (size !== m) expect(ok(proof, m, n, at(tree.roots, size))).toBe(false);
          if (size !== n) expect(ok(proof, m, n, r1, at(tree.roots, size))).toBe(false);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('first == 0 is rejected even with an empty proof', () => {
    expect(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])).toBe(false);
    expect(verifyConsistency(0, 1, EMPTY_ROOT, leafHash(Buffer.alloc(0)), [])).toBe(false);
  });

  it('documents a legitimate size change: (0,3) and (0,4) share a proof shape', () => {
    const leaves = makeLeaves(3, new Uint8Array());
    const tree = buildTree(leaves);
    const proof = inclusionProof(tree.get, 0, 3);
    expect(verifyInclusion(at(leaves, 0), 0, 4, proof, at(tree.roots, 3))).toBe(true);
    // Likewise the consistency proof (1,3) reads as (1,4) against the same roots.
    const cproof = consistencyProof(tree.get, 1, 3);
    expect(verifyConsistency(1, 4, at(tree.roots, 1), at(tree.roots, 3), cproof)).toBe(true);
  });
});

/**
 * A consistent tree of up to 2^53 - 1 leaves: every leaf is the same filler except a few special
 * ones, so a perfect node is either a precomputed filler subtree or is hashed from its children.
 */
function virtualTree(specials: readonly number[]) {
  const filler: Buffer[] = [leafHash(Buffer.from('filler'))];
  for (let l = 1; l <= 53; l++) filler.push(nodeHash(at(filler, l - 1), at(filler, l - 1)));
  const memo = new Map<string, Buffer>();
  const get: NodeSource = (level, index) => {
    const lo = index * 2 ** level;
    const hi = lo + 2 ** level;
    if (!specials.some((s) => s >= lo && s < hi)) return at(filler, level);
    const k = key(level, index);
    let h = memo.get(k);
    if (h === undefined) {
      h =
        level === 0
          ? leafHash(Buffer.from(`special ${index}`))
          : nodeHash(get(level - 1, 2 * index), get(level - 1, 2 * index + 1));
      memo.set(k, h);
    }
    return h;
  };
  const frontierOf = (size: number): Frontier => {
    const nodes: Buffer[] = [];
    for (let l = 53; l >= 0; l--) {
      const count = Math.floor(size / 2 ** l);
      if (count % 2 === 1) nodes.push(get(l, count - 1));
    }
    return { size, nodes };
  };
  return { get, frontierOf, root: (size: number) => frontierRoot(frontierOf(size)) };
}

describe('merkle: sizes above 2^32', () => {
  const n = 2 ** 40 + 2 ** 33 + 12345;
  const m = 2 ** 32 + 3;
  const indices = [
    0,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 32 + 1,
    m - 1,
    2 ** 40 + 7,
    n - 2,
    n - 1,
  ];
  const tree = virtualTree([...indices, m, n, 2 ** 53 - 2]);

  it('generates and verifies inclusion proofs, and rejects a neighbouring index', () => {
    const root = tree.root(n);
    for (const i of indices) {
      const leaf = tree.get(0, i);
      const proof = inclusionProof(tree.get, i, n);
      expect(proof).toHaveLength(pathShape(i, n).length);
      expect(inclusionNodes(i, n).length).toBeLessThanOrEqual(42 ** 2);
      expect(verifyInclusion(leaf, i, n, proof, root)).toBe(true);
      if (i + 1 < n) expect(verifyInclusion(leaf, i + 1, n, proof, root)).toBe(false);
      if (i > 0) expect(verifyInclusion(leaf, i - 1, n, proof, root)).toBe(false);
      expect(verifyInclusion(leaf, i, 2 ** 40, proof, root)).toBe(false);
    }
    const last = 2 ** 53 - 2;
    const max = Number.MAX_SAFE_INTEGER;
    const proof = inclusionProof(tree.get, last, max);
    expect(verifyInclusion(tree.get(0, last), last, max, proof, tree.root(max))).toBe(true);
  });

  it('generates and verifies consistency proofs', () => {
    for (const [a, b] of [
      [m, n],
      [2 ** 32, n],
      [2 ** 31 + 1, 2 ** 32 + 1],
      [n - 1, n],
    ] as const) {
      const proof = consistencyProof(tree.get, a, b);
      // An implicit start (power-of-two first size) is not sent; an explicit one is the first element.
      expect(proof).toHaveLength(proofShape(a, b).replace('I', '').length);
      expect(verifyConsistency(a, b, tree.root(a), tree.root(b), proof)).toBe(true);
      expect(verifyConsistency(a, b, tree.root(b), tree.root(a), proof)).toBe(false);
      expect(verifyConsistency(a, b, tree.root(a), tree.root(b), without(proof, 0))).toBe(false);
      expect(verifyConsistency(a + 1, b, tree.root(a), tree.root(b), proof)).toBe(
        proofShape(a + 1, b) === proofShape(a, b),
      );
    }
  });

  it('appends with carries above bit 31 and round-trips the frontier', () => {
    const size = 2 ** 35 + 2 ** 32 + 2 ** 31 - 1;
    const f = tree.frontierOf(size);
    const { frontier, completed } = appendLeaf(f, tree.get(0, size));
    expect(frontier.size).toBe(size + 1);
    expect(frontierRoot(frontier).equals(tree.root(size + 1))).toBe(true);
    expect(completed.map((c) => c.level)).toEqual(Array.from({ length: 32 }, (_, l) => l));
    for (const c of completed) {
      expect(c.index).toBe(Math.floor(size / 2 ** c.level));
      expect(c.hash.equals(tree.get(c.level, c.index))).toBe(true);
    }
    const back = decodeFrontier(encodeFrontier(frontier));
    expect(back.size).toBe(size + 1);
    expect(back.nodes.map(hex)).toEqual(frontier.nodes.map(hex));
  });
});
