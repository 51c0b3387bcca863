/**
 * `appendOutcome` and `transactionOutcome` against a real server: a new write and an idempotent
 * duplicate are told apart (the server's 201 and 200), the records stay exactly what `append` and
 * `transaction` return (nothing added to them, so they still verify), and a retry after a lost answer
 * is marked `resent`.
 */
import { describe, expect, it } from 'vitest';
import { EventDbxClient } from '../../src/client/index.js';
import { servedClient } from './served.js';

describe('append and transaction outcomes (qa-dev #7)', () => {
  const served = servedClient();

  it('appendOutcome says whether the event is new or was already appended', async () => {
    const body = { event_type: 'filled', payload: { units: '30' }, expected_version: 0, event_id: 'fill-1' };
    const first = await served.db.appendOutcome('rx', 'r1', body);
    expect(first).toMatchObject({ duplicate: false, resent: false, record: { version: 1 } });
    const again = await served.db.appendOutcome('rx', 'r1', body);
    expect(again).toEqual({ record: first.record, duplicate: true, resent: false });
    // The record is the one append returns, field for field, and verifies as it is.
    expect(await served.db.append('rx', 'r1', body)).toEqual(first.record);
    expect(Object.keys(first.record).sort()).toEqual(
      Object.keys(await served.db.getEvent('rx', 'r1', 1)).sort(),
    );
    await served.db.verifyEvent('rx', 'r1', 1);
  });

  it('transactionOutcome says whether the transaction is new or was already appended', async () => {
    const events = [
      { aggregate_type: 'rx', aggregate_id: 'r2', event_type: 'filled', payload: {}, event_id: 'tx-1a' },
      { aggregate_type: 'stock', aggregate_id: 's1', event_type: 'taken', payload: {}, event_id: 'tx-1b' },
    ];
    const first = await served.db.transactionOutcome(events);
    expect([first.duplicate, first.resent, first.records.length]).toEqual([false, false, 2]);
    const again = await served.db.transactionOutcome(events);
    expect(again).toEqual({ records: first.records, duplicate: true, resent: false });
    expect(await served.db.transaction(events)).toEqual(first.records);
  });

  it('a retry after a lost answer is marked resent: the duplicate may be its own first attempt', async () => {
    // The first POST reaches the server and is applied; its answer is dropped on the way back.
    let dropped = 0;
    const lossy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === 'POST' && dropped++ === 0) {
        await res.text();
        throw new TypeError('fetch failed');
      }
      return res;
    };
    const client = new EventDbxClient({
      url: served.server.url,
      token: served.server.adminToken,
      fetch: lossy,
      retry: { minDelayMs: 1, maxDelayMs: 5 },
    });
    const body = { event_type: 'filled', payload: {}, event_id: 'fill-lost' };
    const out = await client.appendOutcome('rx', 'r3', body);
    expect(out).toMatchObject({ duplicate: true, resent: true, record: { version: 1 } });
    expect((await served.db.getAggregate('rx', 'r3')).version).toBe(1);
  });
});
