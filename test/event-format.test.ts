import { describe, expect, it } from 'vitest';
import { leafDataOf, type EventRecord } from '../src/core/event.js';
import { leafHash } from '../src/core/merkle/index.js';
import { plainCodec } from '../src/store/codec.js';
import {
  decodeEvent,
  isLegacy,
  openEvent,
  openStoredEvent,
  sealEvent,
  servedRecord,
} from '../src/store/event-format.js';
import { expectCode } from './helpers/expect.js';

const record: EventRecord = {
  aggregate_type: 'patient',
  aggregate_id: 'p-001',
  event_type: 'patient-added',
  payload: { name: 'Jane', status: 'active' },
  metadata: {
    event_id: 'e-1',
    created_at: '2026-11-26T12:00:00.000Z',
    issued_by: { group: 'doctors', user: 'jane' },
  },
  version: 1,
  position: 7,
  hash: 'ab'.repeat(32),
  merkle_root: 'cd'.repeat(32),
};

describe('stored event format', () => {
  it('round-trips a record, serving its fields in the documented order', () => {
    const opened = openEvent(plainCodec, sealEvent(plainCodec, record), 'test');
    expect(opened).toEqual(record);
    expect(Object.keys(opened)).toEqual(Object.keys(record));
  });

  it('stores the canonical leaf data itself: hashing the stored bytes gives the leaf hash', () => {
    const e = openStoredEvent(plainCodec, sealEvent(plainCodec, record), 'test');
    expect(isLegacy(e)).toBe(false);
    expect(e.leafInput[0]).toBe(0);
    expect(e.leafInput.subarray(1).equals(leafDataOf(record))).toBe(true);
    expect(e.hash.toString('hex')).toBe(record.hash);
    expect(e.root.toString('hex')).toBe(record.merkle_root);
    expect(leafHash(leafDataOf(record)).equals(leafHash(e.leafInput.subarray(1)))).toBe(true);
  });

  it('serves the token id a record holds, after group and user, and records without one as before (QA audit #2)', () => {
    const withToken: EventRecord = {
      ...record,
      metadata: { ...record.metadata, issued_by: { group: 'doctors', user: 'jane', token: 'edbx_Q2x9fA' } },
    };
    const opened = openEvent(plainCodec, sealEvent(plainCodec, withToken), 'test');
    expect(opened).toEqual(withToken);
    expect(Object.keys(opened.metadata.issued_by)).toEqual(['group', 'user', 'token']);
    // Canonical order: the id sits between group and user in the hashed bytes.
    expect(leafDataOf(withToken).toString()).toContain(
      '"issued_by":{"group":"doctors","token":"edbx_Q2x9fA","user":"jane"}',
    );
    expect(leafDataOf(record).toString()).toContain('"issued_by":{"group":"doctors","user":"jane"}}');
    expect(Object.keys(openEvent(plainCodec, sealEvent(plainCodec, record), 't').metadata.issued_by)).toEqual(
      ['group', 'user'],
    );
  });

  it('still opens records stored as plain JSON by earlier versions', () => {
    const legacy = Buffer.from(JSON.stringify(record));
    const e = decodeEvent(legacy, 'test');
    expect(isLegacy(e)).toBe(true);
    expect(servedRecord(e)).toEqual(record);
  });

  it('refuses malformed bytes with an integrity error naming where', async () => {
    const short = await expectCode(
      () => decodeEvent(Buffer.from([0x01, 2, 3]), 'event x@1'),
      'EDBX_ERR_INTEGRITY',
    );
    expect(short.message).toMatch(/event x@1/);
    const bad = Buffer.from(plainCodec.open(sealEvent(plainCodec, record), 't'));
    bad[bad.length - 2] = 0x7b;
    const json = await expectCode(() => decodeEvent(bad, 'event y@2'), 'EDBX_ERR_INTEGRITY');
    expect(json.message).toMatch(/not valid JSON/);
  });
});
