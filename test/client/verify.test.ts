/**
 * The client verifier against a server that lies (GHSA-672p-m5jq-mrh8: an SDK accepted a falsified
 * proof). A fake server answers honestly from real Merkle trees; each property first shows the honest
 * answer verifies, then changes one thing — a proof hash, a path's length or order, an index, a size,
 * a root, an event field, a signed note, a signature, a key — and shows the client rejects it with a
 * typed error and, for audits, leaves the trusted checkpoint where it was.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EventDbxApiError,
  EventDbxClient,
  EventDbxClientError,
  EventDbxVerificationError,
  MemoryCheckpointStore,
  checkCheckpoint,
} from '../../src/client/index.js';
import { leafHash } from '../../src/core/merkle/index.js';
import {
  type Answer,
  type Choice,
  ID,
  TYPE,
  aggregate,
  aggregateServer,
  ledgerServer,
  mutate,
  signer,
  tree,
} from './fake.js';

const URL = 'http://fake.invalid';
const choice: fc.Arbitrary<Choice> = fc.record({
  path: fc.nat(),
  kind: fc.nat(),
  at: fc.nat(),
  bit: fc.nat(),
});
const RUNS = { numRuns: 300 };

/** Rejected with a typed error (a verification failure, or the honest server refusing a lie's follow-up). */
async function rejected(p: Promise<unknown>): Promise<EventDbxClientError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(EventDbxClientError);
  return e as EventDbxClientError;
}

describe('verifyEvent rejects every falsified answer', () => {
  const sized = fc
    .integer({ min: 1, max: 40 })
    .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n })));

  it('accepts the honest answers for any tree size and version', async () => {
    await fc.assert(
      fc.asyncProperty(sized, async ([n, v]) => {
        const agg = aggregate(n);
        const client = new EventDbxClient({ url: URL, token: 't', fetch: aggregateServer(agg) });
        const r = await client.verifyEvent(TYPE, ID, v);
        expect(r.event).toEqual(agg.events[v - 1]);
        expect(r.tree).toEqual({ size: n, root: agg.events[n - 1]!.merkle_root });
        expect(r.leaf_hash).toBe(agg.events[v - 1]!.hash);
      }),
    );
  });

  const targets = [
    // [route suffix, which fields may change]: proofs and events entirely; of the aggregate view only
    // what the proof is checked against (its state and dates prove nothing).
    { name: 'inclusion proof', route: /\/proof$/, allow: (p: unknown[]) => p.length > 0 },
    { name: 'consistency proof', route: /\/consistency$/, allow: (p: unknown[]) => p.length > 0 },
    { name: 'event', route: /\/events\/[0-9]+$/, allow: () => true },
    {
      name: 'aggregate root and version',
      route: /p-1$/,
      allow: (p: unknown[]) => p.length === 1 && (p[0] === 'version' || p[0] === 'merkle_root'),
    },
  ];
  for (const target of targets) {
    it(`rejects any single change to the ${target.name}`, async () => {
      let mutated = 0;
      await fc.assert(
        fc.asyncProperty(sized, choice, async ([n, v], c) => {
          const agg = aggregate(n);
          let changed = false;
          const falsify = (path: string, a: Answer): Answer => {
            if (!target.route.test(path) || a.status !== 200 || changed) return a;
            const body = mutate(a.body, c, (p) => target.allow(p) && !isObjectAt(a.body, p, target.name));
            if (body === undefined) return a;
            changed = true;
            return { ...a, body };
          };
          const client = new EventDbxClient({ url: URL, token: 't', fetch: aggregateServer(agg, falsify) });
          const e = await client.verifyEvent(TYPE, ID, v).then(
            () => undefined,
            (x: unknown) => x,
          );
          if (!changed) {
            // The route was not needed (no consistency proof for the newest event) or the change was
            // a no-op: the honest answer must verify.
            expect(e).toBeUndefined();
            return;
          }
          mutated++;
          expect(e).toBeInstanceOf(EventDbxClientError);
          // A lie about the aggregate's version makes the honest server refuse the follow-up request.
          if (!(e instanceof EventDbxApiError))
            expect((e as EventDbxClientError).code).toBe('EDBX_ERR_PROOF_INVALID');
        }),
        RUNS,
      );
      expect(mutated).toBeGreaterThan(RUNS.numRuns / 3);
    });
  }

  it('rejects a proof against a trusted root that is not the tree the server proves', async () => {
    await fc.assert(
      fc.asyncProperty(sized, fc.nat(), async ([n, v], flip) => {
        const agg = aggregate(n);
        const client = new EventDbxClient({ url: URL, token: 't', fetch: aggregateServer(agg) });
        const root = agg.events[n - 1]!.merkle_root;
        const i = flip % 64;
        const wrong = root.slice(0, i) + (root[i] === '0' ? '1' : '0') + root.slice(i + 1);
        const e = await rejected(client.verifyEvent(TYPE, ID, v, { tree: { size: n, root: wrong } }));
        expect(e.code).toBe('EDBX_ERR_PROOF_INVALID');
        await expect(client.verifyEvent(TYPE, ID, v, { tree: { size: n, root } })).resolves.toBeDefined();
      }),
    );
  });
});

/** Object-valued paths of a proof: adding an unknown key to them changes nothing that is verified. */
function isObjectAt(body: unknown, path: unknown[], target: string): boolean {
  if (target === 'event') return false;
  let v: unknown = body;
  for (const k of path) v = (v as Record<string, unknown>)[k as string];
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

describe('audit() rejects every falsified checkpoint or proof and keeps the trusted one', () => {
  const heads = fc
    .integer({ min: 1, max: 48 })
    .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n })));
  const leavesOf = (n: number, salt = '') =>
    Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`${salt}${i}`)));
  const key = signer();

  async function trustedAt(leaves: Buffer[], m: number) {
    const store = new MemoryCheckpointStore();
    await store.save({ note: key.sign(leaves, m).note, public_key: key.publicKeyPem, verified_at: 'then' });
    return store;
  }

  it('advances over honest answers', async () => {
    await fc.assert(
      fc.asyncProperty(heads, async ([n, m]) => {
        const leaves = leavesOf(n);
        const store = await trustedAt(leaves, m);
        const client = new EventDbxClient({
          url: URL,
          token: 't',
          publicKey: key.publicKeyPem,
          trust: store,
          fetch: ledgerServer(leaves, n, key),
        });
        const r = await client.audit();
        expect(r.previous).toEqual({ size: m, root: tree(leaves).root(m) });
        expect(r.current).toMatchObject({ size: n, root: tree(leaves).root(n) });
        expect(checkCheckpoint((await store.load())!.note, key.publicKeyPem).size).toBe(n);
      }),
      { numRuns: 50 },
    );
  });

  const targets = [
    {
      name: 'checkpoint fields',
      route: '/v1/checkpoint',
      // The note has its own property below; the advertised key is compared as a key (PEM formatting
      // aside), so it is changed to another key in the next-but-one test rather than byte-mutated here.
      allow: (p: unknown[]) => p.length === 1 && p[0] !== 'note' && p[0] !== 'public_key',
    },
    { name: 'consistency proof', route: '/v1/ledger/consistency', allow: (p: unknown[]) => p.length > 0 },
  ];
  for (const target of targets) {
    it(`rejects any single change to the ${target.name}`, async () => {
      let mutated = 0;
      await fc.assert(
        fc.asyncProperty(heads, choice, async ([n, m], c) => {
          const leaves = leavesOf(n);
          const store = await trustedAt(leaves, m);
          const before = await store.load();
          let changed = false;
          const falsify = (path: string, a: Answer): Answer => {
            if (path !== target.route || a.status !== 200 || changed) return a;
            const body = mutate(a.body, c, (p) => target.allow(p) && !isObjectAt(a.body, p, target.name));
            if (body === undefined) return a;
            changed = true;
            return { ...a, body };
          };
          const client = new EventDbxClient({
            url: URL,
            token: 't',
            publicKey: key.publicKeyPem,
            trust: store,
            fetch: ledgerServer(leaves, n, key, falsify),
          });
          const outcome = client.audit().then(
            () => undefined,
            (e: unknown) => e,
          );
          const e = await outcome;
          if (!changed) {
            expect(e).toBeUndefined();
            return;
          }
          mutated++;
          expect(e).toBeInstanceOf(EventDbxVerificationError);
          expect(await store.load()).toEqual(before);
        }),
        RUNS,
      );
      expect(mutated).toBeGreaterThan(RUNS.numRuns / 3);
    });
  }

  it('rejects any change to the signed note: body, signature line, or key name', async () => {
    await fc.assert(
      fc.asyncProperty(heads, fc.nat(), fc.integer({ min: 1, max: 0xffff }), async ([n, m], at, code) => {
        const leaves = leavesOf(n);
        const store = await trustedAt(leaves, m);
        const before = await store.load();
        let changedNote = '';
        const falsify = (path: string, a: Answer): Answer => {
          if (path !== '/v1/checkpoint') return a;
          const cp = a.body as { note: string };
          // Everything up to the end of the (first) signature line is covered by the signature.
          const end = cp.note.indexOf('\n', cp.note.indexOf('\n\n') + 2);
          const i = at % end;
          const ch = String.fromCharCode(code);
          const note =
            cp.note.slice(0, i) +
            (cp.note[i] === ch ? String.fromCharCode(code ^ 1) : ch) +
            cp.note.slice(i + 1);
          changedNote = note;
          return { ...a, body: { ...cp, note } };
        };
        const client = new EventDbxClient({
          url: URL,
          token: 't',
          publicKey: key.publicKeyPem,
          trust: store,
          fetch: ledgerServer(leaves, n, key, falsify),
        });
        const e = await client.audit().then(
          () => undefined,
          (x: unknown) => x,
        );
        expect(changedNote).not.toBe('');
        expect(e).toBeInstanceOf(EventDbxVerificationError);
        expect(await store.load()).toEqual(before);
      }),
      RUNS,
    );
  });

  it('rejects a validly signed checkpoint of a truncated or rewritten history', async () => {
    await fc.assert(
      fc.asyncProperty(
        heads,
        fc.boolean(),
        fc.integer({ min: 0, max: 48 }),
        fc.nat(),
        fc.boolean(),
        async ([n, m], truncate, extra, at, forgeFirstRoot) => {
          const original = leavesOf(n);
          const store = await trustedAt(original, n);
          const before = await store.load();
          // Truncated: the server now signs m - 1 < n events. Rewritten: leaf `at % n` differs and the
          // history is at least as long again; the proof may even claim the trusted first root.
          const rewritten = [...original, ...leavesOf(extra, 'more')];
          rewritten[at % n] = leafHash(Buffer.from(`forged ${at}`));
          const leaves = truncate ? original : rewritten;
          const size = truncate ? m - 1 : rewritten.length;
          const trustedRoot = tree(original).root(n);
          const falsify = (path: string, a: Answer): Answer =>
            forgeFirstRoot && path === '/v1/ledger/consistency' && a.status === 200
              ? { ...a, body: { ...(a.body as object), first_root: trustedRoot } }
              : a;
          const client = new EventDbxClient({
            url: URL,
            token: 't',
            publicKey: key.publicKeyPem,
            trust: store,
            fetch: ledgerServer(leaves, size, key, falsify),
          });
          const e = await client.audit().then(
            () => undefined,
            (x: unknown) => x,
          );
          expect(e).toBeInstanceOf(EventDbxVerificationError);
          expect((e as EventDbxVerificationError).code).toBe('EDBX_ERR_CHECKPOINT_MISMATCH');
          expect((e as Error).message).toMatch(truncate ? /truncated/ : /rewritten|different root/);
          expect(await store.load()).toEqual(before);
        },
      ),
      RUNS,
    );
  });

  it('rejects checkpoints signed by another key, and a pinned key that disagrees with the trusted one', async () => {
    const leaves = leavesOf(9);
    const other = signer();
    const store = await trustedAt(leaves, 4);
    const before = await store.load();
    const byOther = new EventDbxClient({
      url: URL,
      token: 't',
      publicKey: key.publicKeyPem,
      trust: store,
      fetch: ledgerServer(leaves, 9, other),
    });
    const e1 = await rejected(byOther.audit());
    expect(e1.code).toBe('EDBX_ERR_CHECKPOINT_SIGNATURE');
    const advertisesOther = new EventDbxClient({
      url: URL,
      token: 't',
      publicKey: key.publicKeyPem,
      trust: store,
      fetch: ledgerServer(leaves, 9, key, (path, a) =>
        path === '/v1/checkpoint'
          ? { ...a, body: { ...(a.body as object), public_key: other.publicKeyPem } }
          : a,
      ),
    });
    expect((await rejected(advertisesOther.audit())).code).toBe('EDBX_ERR_CHECKPOINT_SIGNATURE');
    const repinned = new EventDbxClient({
      url: URL,
      token: 't',
      publicKey: other.publicKeyPem,
      trust: store,
      fetch: ledgerServer(leaves, 9, other),
    });
    expect((await rejected(repinned.audit())).code).toBe('EDBX_ERR_TRUST_STORE');
    const unpinned = new EventDbxClient({
      url: URL,
      token: 't',
      trust: new MemoryCheckpointStore(),
      fetch: ledgerServer(leaves, 9, key),
    });
    expect((await rejected(unpinned.audit())).code).toBe('EDBX_ERR_CLIENT_CONFIG');
    expect(await store.load()).toEqual(before);
    // Trust on first use is explicit, and pins the key it saw.
    const tofu = new MemoryCheckpointStore();
    const first = new EventDbxClient({
      url: URL,
      token: 't',
      trust: tofu,
      fetch: ledgerServer(leaves, 9, key),
    });
    await first.audit({ trustOnFirstUse: true });
    expect((await tofu.load())!.public_key).toBe(key.publicKeyPem);
    const later = new EventDbxClient({
      url: URL,
      token: 't',
      trust: tofu,
      fetch: ledgerServer(leaves, 9, other),
    });
    expect((await rejected(later.audit({ trustOnFirstUse: true }))).code).toBe(
      'EDBX_ERR_CHECKPOINT_SIGNATURE',
    );
  });

  it('rejects a tampered trusted checkpoint instead of trusting it', async () => {
    const leaves = leavesOf(9);
    const store = await trustedAt(leaves, 4);
    const saved = (await store.load())!;
    await store.save({ ...saved, note: saved.note.replace('\n4\n', '\n5\n') });
    const client = new EventDbxClient({
      url: URL,
      token: 't',
      publicKey: key.publicKeyPem,
      trust: store,
      fetch: ledgerServer(leaves, 9, key),
    });
    expect((await rejected(client.audit())).code).toBe('EDBX_ERR_TRUST_STORE');
  });
});
