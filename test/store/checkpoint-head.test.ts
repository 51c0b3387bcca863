/**
 * A checkpoint signs only a ledger head its ledger entries back (tamper-evidence audit, finding 8): the
 * head (`G ledger`) is stored unsealed and read once at open, so one flipped byte must not make the
 * store sign a second root for a size it already signed. The tampering goes through RocksDB directly,
 * with the store closed, as an attacker without the keys would.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rootOfLeafHashes } from '../../src/core/merkle/index.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import { type CheckpointSigner, currentCheckpoint } from '../../src/store/checkpoints.js';
import { EventStore } from '../../src/store/index.js';
import * as K from '../../src/store/keys.js';
import { editEngine } from '../helpers/engine.js';
import { expectCode } from '../helpers/expect.js';
import { tempDirs } from '../helpers/temp.js';

const jane = { issuedBy: { group: 'admin', user: 'jane' } };
const keys = generateKeyPairSync('ed25519', {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

let dir: string;
let store: EventStore | undefined;

const signer = (s: EventStore): CheckpointSigner => ({
  store: s,
  signingKeyPem: keys.privateKey,
  publicKeyPem: keys.publicKey,
});

async function open(): Promise<EventStore> {
  store = await EventStore.open({ engine: new RocksDbEngine(dir) });
  return store;
}

/** Edit the closed store's main keyspace through the engine. */
async function edit(fn: (e: RocksDbEngine) => Promise<void>): Promise<void> {
  await store?.close();
  store = undefined;
  await editEngine(dir, fn);
}

async function flip(e: RocksDbEngine, key: Buffer, offset: number, mask = 0x01): Promise<void> {
  const value = Buffer.from((await e.get('main', key))!);
  value[offset]! ^= mask;
  await e.write([{ type: 'put', space: 'main', key, value }], { sync: true });
}

const tempDir = tempDirs('edbx-head-');
beforeEach(async () => {
  dir = await tempDir();
  const s = await open();
  for (let i = 0; i < 6; i++) {
    await s.append(
      { aggregate_type: 'patient', aggregate_id: `p-${i % 2}`, event_type: 'tick', payload: { i } },
      jane,
    );
  }
});
afterEach(async () => {
  await store?.close();
});

describe('checkpoints sign only a ledger head the ledger entries back (finding 8)', () => {
  it('signs the root of every event hash in position order', async () => {
    const s = store!;
    const hashes = (await s.readLog(1, 100)).map((e) => Buffer.from(e.hash, 'hex'));
    const cp = await currentCheckpoint(signer(s));
    expect(cp).toMatchObject({ size: 6, root: rootOfLeafHashes(hashes).toString('hex') });
  });

  it('refuses to sign after one byte of the stored head changed, instead of signing a second root for the size', async () => {
    const signed = await currentCheckpoint(signer(store!));
    await edit((e) => flip(e, K.globalKey('ledger'), 20));
    const s = await open();
    expect(s.ledgerHead().size).toBe(signed.size);
    expect(s.ledgerHead().root).not.toBe(signed.root);
    const e = await expectCode(currentCheckpoint(signer(s)), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/ledger head: its root for 6 events is not the one the ledger entries give/);
  });

  it('refuses a head whose size was changed to another with as many subtrees', async () => {
    // 6 = 0b110 and 5 = 0b101 both have two perfect subtrees: the head still decodes.
    await edit((e) => flip(e, K.globalKey('ledger'), 7, 0x03));
    const s = await open();
    expect(s.ledgerHead().size).toBe(5);
    await expectCode(currentCheckpoint(signer(s)), 'EDBX_ERR_INTEGRITY');
  });

  it('refuses when a ledger entry the head needs is missing', async () => {
    await edit((e) => e.write([{ type: 'del', space: 'main', key: K.positionKey(4) }], { sync: true }));
    const e = await expectCode(currentCheckpoint(signer(await open())), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/ledger head: the ledger entries of its 6 events are missing or malformed/);
  });
});

describe('a store whose ledger head its entries do not back refuses writes from the start', () => {
  const append = (s: EventStore) =>
    s.append({ aggregate_type: 'patient', aggregate_id: 'p-9', event_type: 'tick', payload: {} }, jane);

  it('after one byte of the head changed: reads work, appends are refused, and it says why', async () => {
    await edit((e) => flip(e, K.globalKey('ledger'), 20));
    const s = await open();
    const e = await expectCode(append(s), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/ledger head: its root for 6 events is not the one the ledger entries give/);
    expect(s.writeFailure?.code).toBe('EDBX_ERR_INTEGRITY');
    expect((await s.events('patient', 'p-0')).length).toBe(3);
    expect(s.size).toBe(6);
  });

  it('after the head was rolled back to an earlier one (its entries go further)', async () => {
    const s0 = store!;
    const earlier = (await s0.engine.get('main', K.globalKey('ledger')))!;
    await append(s0);
    await edit((e) =>
      e.write([{ type: 'put', space: 'main', key: K.globalKey('ledger'), value: earlier }], { sync: true }),
    );
    const s = await open();
    const e = await expectCode(append(s), 'EDBX_ERR_INTEGRITY');
    expect(e.message).toMatch(/it records 6 events but entry 7 is stored/);
  });

  it('an intact store writes as usual', async () => {
    await edit(async () => undefined); // closed and opened again
    const s = await open();
    expect(s.writeFailure).toBeUndefined();
    expect((await append(s)).position).toBe(7);
  });
});
