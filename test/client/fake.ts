/**
 * A fake EventDBX server behind the client's `fetch` option, for verifier tests: it answers honestly
 * from an in-memory aggregate tree and ledger (built with the core Merkle code), and a hook may
 * falsify any answer before the client sees it. Plus deterministic JSON mutations for property tests.
 */
import { generateKeyPairSync } from 'node:crypto';
import { type Checkpoint, signCheckpoint } from '../../src/core/checkpoint.js';
import { leafDataOf } from '../../src/core/event.js';
import { consistencyProof, inclusionProof, leafHash, rootOfLeafHashes } from '../../src/core/merkle/index.js';
import type { EventRecord } from '../../src/protocol/index.js';

/** A well-formed EventRecord as a server answers it (its hashes are not checked by these tests). */
export const answeredRecord = {
  aggregate_type: 'patient',
  aggregate_id: 'p-1',
  event_type: 'admitted',
  payload: {},
  metadata: { event_id: 'e', created_at: '2026-01-01T00:00:00.000Z', issued_by: { group: 'g', user: 'u' } },
  version: 1,
  position: 1,
  hash: '0'.repeat(64),
  merkle_root: '0'.repeat(64),
};

export const TYPE = 'patient';
export const ID = 'p-1';

export function tree(leaves: readonly Buffer[]) {
  const get = (level: number, index: number) =>
    rootOfLeafHashes(leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
  return {
    root: (size: number) => rootOfLeafHashes(leaves.slice(0, size)).toString('hex'),
    inclusion: (index: number, size: number) =>
      inclusionProof(get, index, size).map((h) => h.toString('hex')),
    consistency: (first: number, second: number) =>
      consistencyProof(get, first, second).map((h) => h.toString('hex')),
  };
}

/** An aggregate of `n` events, hashed exactly as the store does. */
export function aggregate(n: number): { events: EventRecord[]; leaves: Buffer[] } {
  const events: EventRecord[] = [];
  const leaves: Buffer[] = [];
  for (let v = 1; v <= n; v++) {
    const unsealed = {
      aggregate_type: TYPE,
      aggregate_id: ID,
      event_type: v === 1 ? 'patient-added' : 'patient-updated',
      payload: { name: `Jane ${v}`, ward: String(v % 3) },
      metadata: {
        event_id: `00000000-0000-4000-8000-${String(v).padStart(12, '0')}`,
        created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, v)).toISOString(),
        issued_by: { group: 'doctors', user: 'jane' },
      },
      version: v,
      position: 2 * v,
    };
    const leaf = leafHash(leafDataOf(unsealed));
    leaves.push(leaf);
    events.push({
      ...unsealed,
      hash: leaf.toString('hex'),
      merkle_root: rootOfLeafHashes(leaves).toString('hex'),
    });
  }
  return { events, leaves };
}

export type Answer = { status: number; body: unknown };
export type Falsify = (path: string, answer: Answer) => Answer;

const problem = (status: number, code: string, detail: string): Answer => ({
  status,
  body: { type: `https://eventdbx.dev/errors/${code}`, title: code, status, code, detail },
});

function size(raw: string | null, max: number): number | undefined {
  if (raw === null) return max;
  const n = Number(raw);
  return /^[0-9]+$/.test(raw) && n >= 1 && n <= max ? n : undefined;
}

/** Answers the aggregate routes for `TYPE/ID` of `agg`, honestly, then through `falsify`. */
export function aggregateServer(
  agg: ReturnType<typeof aggregate>,
  falsify: Falsify = (_, a) => a,
): typeof fetch {
  const n = agg.events.length;
  const t = tree(agg.leaves);
  const base = `/v1/aggregates/${TYPE}/${ID}`;
  const honest = (path: string, q: URLSearchParams): Answer => {
    if (path === base)
      return {
        status: 200,
        body: {
          aggregate_type: TYPE,
          aggregate_id: ID,
          version: n,
          state: {},
          merkle_root: t.root(n),
          archived: false,
          created_at: agg.events[0]!.metadata.created_at,
          updated_at: agg.events[n - 1]!.metadata.created_at,
        },
      };
    if (path === `${base}/consistency`) {
      const first = size(q.get('from'), n);
      const second = size(q.get('to'), n);
      if (first === undefined || second === undefined || first > second)
        return problem(400, 'EDBX_ERR_INVALID_PROOF_RANGE', 'bad range');
      return {
        status: 200,
        body: {
          first,
          second,
          first_root: t.root(first),
          second_root: t.root(second),
          consistency_path: t.consistency(first, second),
        },
      };
    }
    const m = /^\/v1\/aggregates\/patient\/p-1\/events\/([0-9]+)(\/proof)?$/.exec(path);
    const v = m ? Number(m[1]) : 0;
    if (!m || v < 1 || v > n) return problem(404, 'EDBX_ERR_EVENT_NOT_FOUND', 'no such event');
    if (!m[2]) return { status: 200, body: agg.events[v - 1] };
    const s = size(q.get('tree_size'), n);
    if (s === undefined || v > s) return problem(400, 'EDBX_ERR_INVALID_PROOF_RANGE', 'bad tree size');
    return {
      status: 200,
      body: {
        leaf_index: v - 1,
        tree_size: s,
        leaf_hash: agg.events[v - 1]!.hash,
        audit_path: t.inclusion(v - 1, s),
        root: t.root(s),
      },
    };
  };
  return serve((path, q) => falsify(path, honest(path, q)));
}

export interface Signer {
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
  sign(leaves: readonly Buffer[], size: number): Checkpoint;
}

export function signer(): Signer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  let clock = Date.UTC(2026, 0, 1);
  return {
    publicKeyPem,
    privateKeyPem,
    sign: (leaves, size) =>
      signCheckpoint(
        { size, root: tree(leaves).root(size) },
        'eventdbx/ledger',
        'eventdbx',
        privateKeyPem,
        publicKeyPem,
        new Date((clock += 1000)),
      ),
  };
}

/** Answers `/v1/checkpoint` (size `size` of `leaves`, signed by `key`) and ledger consistency proofs. */
export function ledgerServer(
  leaves: readonly Buffer[],
  size: number,
  key: Signer,
  falsify: Falsify = (_, a) => a,
): typeof fetch {
  const t = tree(leaves);
  const cp = { ...key.sign(leaves, size), public_key: key.publicKeyPem };
  const honest = (path: string, q: URLSearchParams): Answer => {
    if (path === '/v1/checkpoint') return { status: 200, body: cp };
    if (path === '/v1/ledger/consistency') {
      const first = Number(q.get('from'));
      const second = Number(q.get('to'));
      if (!(first >= 1 && first <= second && second <= size))
        return problem(400, 'EDBX_ERR_INVALID_PROOF_RANGE', 'bad range');
      return {
        status: 200,
        body: {
          first,
          second,
          first_root: t.root(first),
          second_root: t.root(second),
          consistency_path: t.consistency(first, second),
        },
      };
    }
    return problem(404, 'EDBX_ERR_ROUTE_NOT_FOUND', path);
  };
  return serve((path, q) => falsify(path, honest(path, q)));
}

function serve(answer: (path: string, q: URLSearchParams) => Answer): typeof fetch {
  return async (input) => {
    const u = new URL(String(input));
    const a = answer(decodeURIComponent(u.pathname), u.searchParams);
    return new Response(JSON.stringify(a.body), {
      status: a.status,
      headers: { 'content-type': a.status < 400 ? 'application/json' : 'application/problem+json' },
    });
  };
}

// ------------------------------------------------------------------ mutations

/** Random choices that `mutate` turns into one deterministic change of a JSON value. */
export interface Choice {
  readonly path: number;
  readonly kind: number;
  readonly at: number;
  readonly bit: number;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const WEIRD_NUMBERS: Json[] = [-1, 0, 0.5, 2 ** 53, '1', null];

function leafPaths(v: Json, prefix: (string | number)[], out: (string | number)[][]): void {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => leafPaths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) leafPaths(x, [...prefix, k], out);
}

function flipHex(s: string, at: number, bit: number): string {
  const i = at % s.length;
  const nibble = parseInt(s[i]!, 16) ^ (1 << (bit % 4));
  return s.slice(0, i) + nibble.toString(16) + s.slice(i + 1);
}

function change(v: Json, c: Choice): Json {
  if (typeof v === 'number') {
    const k = c.kind % 4;
    if (k === 3) return WEIRD_NUMBERS[c.at % WEIRD_NUMBERS.length]!;
    const delta = ((c.at % 3) + 1) * (k === 0 ? -1 : 1);
    return v + delta;
  }
  if (typeof v === 'string') {
    if (/^[0-9a-f]{64}$/.test(v)) return c.kind % 5 === 0 ? v.slice(0, 62) : flipHex(v, c.at, c.bit);
    if (v.length === 0) return 'x';
    const i = c.at % v.length;
    return c.kind % 2 === 0 ? v + 'x' : v.slice(0, i) + (v[i] === 'a' ? 'b' : 'a') + v.slice(i + 1);
  }
  if (Array.isArray(v)) {
    const k = c.kind % 6;
    const i = v.length ? c.at % v.length : 0;
    const j = v.length ? c.bit % v.length : 0;
    if (k === 0) return v.filter((_, x) => x !== i);
    if (k === 1 && v.length) return [...v.slice(0, i), v[i]!, ...v.slice(i)];
    if (k === 2) return [...v.slice(0, i), flipHex('0'.repeat(64), c.at, c.bit), ...v.slice(i)];
    if (k === 3 && v.length > 1) {
      const w = [...v];
      [w[i], w[j]] = [w[j]!, w[i]!];
      return w;
    }
    if (k === 4) return [];
    return [...v].reverse();
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (c.kind % 2 === 0 && keys.length) {
      const { [keys[c.at % keys.length]!]: _gone, ...rest } = v;
      return rest;
    }
    return { ...v, [`extra${c.bit % 3}`]: 'x' };
  }
  if (typeof v === 'boolean') return !v;
  return 'x';
}

/**
 * One change to `value` at one of its paths (filtered by `allow`), or undefined when the choice lands
 * on no path or the change leaves the JSON text the same.
 */
export function mutate<T>(value: T, c: Choice, allow: (path: (string | number)[]) => boolean): T | undefined {
  const root = JSON.parse(JSON.stringify(value)) as Json;
  const paths: (string | number)[][] = [];
  leafPaths(root, [], paths);
  const candidates = paths.filter(allow);
  if (candidates.length === 0) return undefined;
  const path = candidates[c.path % candidates.length]!;
  let out: Json;
  if (path.length === 0) out = change(root, c);
  else {
    out = root;
    let parent = root as Record<string | number, Json>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
    const last = path.at(-1)!;
    parent[last] = change(parent[last]!, c);
  }
  return JSON.stringify(out) === JSON.stringify(value) ? undefined : (out as T);
}
