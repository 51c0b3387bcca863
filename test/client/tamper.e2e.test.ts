/**
 * The tamper tests of the security issue, through the SDK: an auditor keeps a trusted checkpoint in a
 * file and a pinned key; someone with the keys edits the RocksDB store while the server is down
 * (truncates the newest events of an aggregate and rolls the ledger back consistently, rewrites
 * history, edits a stored event), the server restarts and looks healthy — and `client.audit()` /
 * `client.verifyEvent()` reject, with typed errors, leaving the trusted checkpoint as it was.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventDbxApiError,
  EventDbxClient,
  EventDbxVerificationError,
  type EventRecord,
  type TreeHead,
} from '../../src/client/index.js';
import { appendLeaf, emptyFrontier, encodeFrontier } from '../../src/core/merkle/index.js';
import { type WriteOp, createEngine, prefixEnd } from '../../src/storage/index.js';
import { ACKNOWLEDGED_HEAD } from '../../src/store/acknowledged.js';
import { openJson, sealJson } from '../../src/store/codec.js';
import { openEvent, sealEvent } from '../../src/store/event-format.js';
import * as K from '../../src/store/keys.js';
import { openSecureStore } from '../../src/store/secure.js';
import type { EventStore } from '../../src/store/store.js';
import type { AggregateMeta } from '../../src/store/types.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';

/**
 * Open the stopped server's store with its keys, edit it, close it. The attacker also removes the
 * acknowledged-head file, which would otherwise make the server refuse the shortened store at once
 * (test/store/acknowledged.test.ts): what is left to catch them is the auditor's trusted checkpoint.
 */
async function editStore<T>(p: Project, edit: (store: EventStore) => Promise<T>): Promise<T> {
  await rm(path.join(p.dataDir, ACKNOWLEDGED_HEAD));
  const secure = await openSecureStore(createEngine('rocksdb', p.dataDir), {
    masterKey: 'test-master',
    dek: 'test-dek',
  });
  try {
    return await edit(secure.store);
  } finally {
    await secure.store.close();
  }
}

/**
 * Remove every event after position `keep`, as a careful attacker would: events, ledger entries,
 * idempotency keys and Merkle nodes deleted; each touched aggregate's meta (version, state, root,
 * frontier) and the ledger frontier recomputed, so that the store is consistent and verifies on its own.
 */
async function rollBack(store: EventStore, keep: number): Promise<string[]> {
  const { engine } = store;
  const codec = store.env.codec;
  const ops: WriteOp[] = [];
  const removed: string[] = [];
  const lowest = new Map<string, { type: string; id: string; version: number }>();
  for await (const [k, v] of engine.range('main', {
    gte: K.positionKey(keep + 1),
    lt: prefixEnd(K.positionPrefix()),
  })) {
    const ref = K.decodeLedgerEntry(K.readU64(k, 1), v)!.ref;
    const raw = (await engine.get('main', K.eventKey(ref.type, ref.id, ref.version)))!;
    const e = openEvent(codec, raw, 'event');
    ops.push({ type: 'del', space: 'main', key: k });
    ops.push({ type: 'del', space: 'main', key: K.eventKey(ref.type, ref.id, ref.version) });
    ops.push({ type: 'del', space: 'main', key: K.nodeKey(ref.type, ref.id, ref.version) });
    ops.push({ type: 'del', space: 'main', key: K.idempotencyKey(e.metadata.event_id) });
    removed.push(`${ref.type}/${ref.id}@${ref.version}`);
    const key = `${ref.type}/${ref.id}`;
    if (!lowest.has(key) || lowest.get(key)!.version > ref.version) lowest.set(key, ref);
  }
  for (const { type, id, version } of lowest.values()) {
    const keepVersion = version - 1;
    if (keepVersion === 0) {
      ops.push({ type: 'del', space: 'main', key: K.metaKey(type, id) });
      continue;
    }
    const events = await store.readEvents('main', type, id, { toVersion: keepVersion });
    let frontier = emptyFrontier;
    for (const e of events) frontier = appendLeaf(frontier, Buffer.from(e.hash, 'hex')).frontier;
    const old = openJson<AggregateMeta>(codec, (await engine.get('main', K.metaKey(type, id)))!, 'meta');
    const last = events.at(-1)!;
    const meta: AggregateMeta = {
      ...old,
      version: keepVersion,
      state: events.reduce((s, e) => ({ ...s, ...e.payload }), {}),
      merkle_root: last.merkle_root,
      frontier: encodeFrontier(frontier).toString('base64'),
      updated_at: last.metadata.created_at,
      updated_by: last.metadata.issued_by,
      last_snapshot_version: Math.min(old.last_snapshot_version, keepVersion),
    };
    ops.push({ type: 'put', space: 'main', key: K.metaKey(type, id), value: sealJson(codec, meta) });
  }
  let ledger = emptyFrontier;
  for await (const [, v] of engine.range('main', { gte: K.positionKey(1), lt: K.positionKey(keep + 1) }))
    ledger = appendLeaf(ledger, Buffer.from(v.subarray(0, 32))).frontier;
  ops.push({ type: 'put', space: 'main', key: K.globalKey('ledger'), value: encodeFrontier(ledger) });
  await engine.write(ops, { sync: true });
  return removed;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('tampering is caught by client.audit() and client.verifyEvent()', () => {
  let p: Project;
  let server: RunningServer;
  let adminToken: string;
  let publicKey: string;
  let trustFile: string;
  let db: EventDbxClient;
  let auditor: EventDbxClient;
  let trusted: { size: number; root: string };
  let heldP1: TreeHead;

  const connect = () => {
    db = new EventDbxClient({ url: server.url, token: adminToken });
    auditor = new EventDbxClient({ url: server.url, token: adminToken, publicKey, trust: trustFile });
  };
  const restart = async (edit: (store: EventStore) => Promise<unknown>) => {
    expect(await server.stop()).toBe(0);
    await editStore(p, edit);
    // The default mode: a start in another one is an audit entry, which would grow the ledger.
    server = await startServer(p);
    connect();
  };
  const expectRejected = async (code: string, message: RegExp) => {
    const before = await readFile(trustFile, 'utf8');
    const e = await failure(auditor.audit());
    expect(e).toBeInstanceOf(EventDbxVerificationError);
    expect(e).toMatchObject({ code });
    expect((e as Error).message).toMatch(message);
    expect(await readFile(trustFile, 'utf8')).toBe(before);
  };

  beforeAll(async () => {
    p = await project();
    server = await startServer(p);
    adminToken = server.adminToken;
    publicKey = (await p.cli(['checkpoint', 'public-key'])).stdout.trim() + '\n';
    trustFile = path.join(p.dir, 'auditor.json');
    connect();
    for (let v = 1; v <= 5; v++) await db.append('patient', 'p-1', { event_type: 'visit', payload: { v } });
    for (let v = 1; v <= 3; v++) await db.append('patient', 'p-2', { event_type: 'visit', payload: { v } });
    for (let v = 6; v <= 7; v++)
      await db.append('patient', 'p-1', { event_type: 'dose', payload: { mg: v * 100 } });
    const view = await db.getAggregate('patient', 'p-1');
    heldP1 = { size: view.version, root: view.merkle_root };
    const r = await auditor.audit();
    trusted = { size: r.current.size, root: r.current.root };
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('a truncated aggregate (newest events removed, ledger rolled back) fails the audit', async () => {
    let removed: string[] = [];
    await restart(async (store) => (removed = await rollBack(store, trusted.size - 2)));
    expect(removed).toEqual(['patient/p-1@6', 'patient/p-1@7']);
    // The server sees nothing wrong: the edit was consistent.
    expect(await db.verifyAggregate('patient', 'p-1')).toEqual(
      expect.objectContaining({ ok: true, version: 5 }),
    );
    expect((await db.getCheckpoint()).size).toBe(trusted.size - 2);
    await expectRejected('EDBX_ERR_CHECKPOINT_MISMATCH', /truncated/);
  });

  it('a rewritten history, longer than the trusted one, fails the audit; so do old roots held', async () => {
    // The attacker writes other events in place of the removed ones, and more.
    for (let v = 6; v <= 9; v++)
      await db.append('patient', 'p-1', { event_type: 'dose', payload: { mg: v } });
    const cp = await db.getCheckpoint();
    expect(cp.size).toBe(trusted.size + 2);
    await expectRejected('EDBX_ERR_CHECKPOINT_MISMATCH', /rewritten/);
    // The new history is consistent in itself, so only a root held from before exposes it.
    await expect(db.verifyEvent('patient', 'p-1', 6)).resolves.toBeDefined();
    const e = await failure(db.verifyEvent('patient', 'p-1', 6, { tree: heldP1 }));
    expect(e).toMatchObject({ code: 'EDBX_ERR_PROOF_INVALID' });
  });

  it('a history rewritten to exactly the trusted size fails the audit (different root)', async () => {
    await restart((store) => rollBack(store, trusted.size - 2));
    for (let v = 6; v <= 7; v++)
      await db.append('patient', 'p-1', { event_type: 'dose', payload: { mg: v * 100 + 1 } });
    expect((await db.getCheckpoint()).size).toBe(trusted.size);
    await expectRejected('EDBX_ERR_CHECKPOINT_MISMATCH', /different root/);
  });

  it('an edited stored event is served, but verifyEvent rejects it; a broken ciphertext is a typed error', async () => {
    await restart(async (store) => {
      const key = K.eventKey('patient', 'p-2', 2);
      const codec = store.env.codec;
      const e = openEvent(codec, (await store.engine.get('main', key))!, 'event');
      const forged = { ...e, payload: { v: 'forged' } };
      await store.engine.write([{ type: 'put', space: 'main', key, value: sealEvent(codec, forged) }], {
        sync: true,
      });
    });
    const served: EventRecord = await db.getEvent('patient', 'p-2', 2);
    expect(served.payload).toEqual({ v: 'forged' });
    const e = await failure(db.verifyEvent('patient', 'p-2', 2));
    expect(e).toBeInstanceOf(EventDbxVerificationError);
    expect((e as Error).message).toMatch(/does not hash/);
    await expect(db.verifyEvent('patient', 'p-2', 1)).resolves.toBeDefined();

    await restart(async (store) => {
      const key = K.eventKey('patient', 'p-2', 3);
      const broken = Buffer.from((await store.engine.get('main', key))!);
      broken[broken.length - 1]! ^= 0x01;
      await store.engine.write([{ type: 'put', space: 'main', key, value: broken }], { sync: true });
    });
    const broken = await failure(db.getEvent('patient', 'p-2', 3));
    expect(broken).toBeInstanceOf(EventDbxApiError);
    expect(broken).toMatchObject({ code: 'EDBX_ERR_INTEGRITY' });
    // Proofs of the tree of 3 events are refused too: the root they must lead to is in event 3.
    expect(await failure(db.verifyEvent('patient', 'p-2', 1))).toMatchObject({ code: 'EDBX_ERR_INTEGRITY' });
  });

  it("another store's server fails the audit on its signature", async () => {
    const q = await project();
    const other = await startServer(q, ['--restrict=false']);
    try {
      const before = await readFile(trustFile, 'utf8');
      const c = new EventDbxClient({ url: other.url, token: other.adminToken, publicKey, trust: trustFile });
      const e = await failure(c.audit());
      expect(e).toMatchObject({ code: 'EDBX_ERR_CHECKPOINT_SIGNATURE' });
      expect(await readFile(trustFile, 'utf8')).toBe(before);
    } finally {
      await other.stop();
      await q.cleanup();
    }
  });
});
