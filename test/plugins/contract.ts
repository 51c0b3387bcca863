/**
 * The plugin contract: what every sink must do, run by test/plugins/contract.test.ts against every
 * sink with a real destination. Delivery is at-least-once in position order; what arrived is read back
 * from the destination itself (SQL queried, files parsed, sockets listened to).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EventRecord, foldState } from '../../src/core/event.js';
import {
  type DeliveryHost,
  type PluginInput,
  configurePlugin,
  replayPlugin,
} from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import type { AppendRequest } from '../../src/store/types.js';
import { FAST, caughtUp, jane, openStore, startHost, userEvents, waitFor } from './fixtures.js';
import type { Delivered, Fixture, Observed, Row, SinkHarness } from './harnesses.js';

const key = (e: { aggregate_type: string; aggregate_id: string; version: number }) =>
  `${e.aggregate_type}/${e.aggregate_id}@${e.version}`;

const TRICKY = [
  'plain',
  'a, "quoted" value',
  'two\r\nlines\nand a bare\rreturn',
  'Zoë — 漢字 🚀',
  '  padded  ',
];

/** Events over two aggregate types and several aggregates; later events bring new fields. */
export function sampleEvents(n: number, offset = 0): AppendRequest[] {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const type = i % 3 === 2 ? 'order' : 'patient';
    const payload: Record<string, string> = { seq: String(i), note: TRICKY[i % TRICKY.length]! };
    if (i >= 4) payload[`field_${i % 5}`] = `v${i}`;
    if (i % 7 === 0) payload['Mixed Case, Field'] = `m${i}`;
    return {
      aggregate_type: type,
      aggregate_id: `${type === 'order' ? 'o' : 'p'}-${i % 4}`,
      event_type: i % 4 === 0 ? `${type}-added` : `${type}-updated`,
      payload,
    };
  });
}

/** `group/user`, and `/<token id>` when the event was written with a token: the text columns' form. */
function issuerText(e: EventRecord): string {
  const { group, user, token } = e.metadata.issued_by;
  return token === undefined ? `${group}/${user}` : `${group}/${user}/${token}`;
}

/** Every other event written with a token: its id must reach the destination too (QA audit #2). */
const withToken = { issuedBy: { ...jane.issuedBy, token: 'edbx_Tok3n1' } };

async function append(store: EventStore, reqs: AppendRequest[], concurrent = false): Promise<void> {
  const by = (i: number) => (i % 2 === 0 ? jane : withToken);
  if (concurrent) await Promise.all(reqs.map((r, i) => store.append(r, by(i))));
  else for (const [i, r] of reqs.entries()) await store.append(r, by(i));
}

/** The rows a state sink must hold: every aggregate `delivered` touched, as of the last delivered event. */
export function expectedRows(
  all: readonly EventRecord[],
  delivered: readonly EventRecord[],
): Map<string, Row> {
  const touched = new Set(delivered.map((e) => `${e.aggregate_type}/${e.aggregate_id}`));
  const upTo = Math.max(0, ...delivered.map((e) => e.position));
  const rows = new Map<string, Row>();
  for (const e of all.filter((x) => x.position <= upTo)) {
    const k = `${e.aggregate_type}/${e.aggregate_id}`;
    if (!touched.has(k)) continue;
    const prev = rows.get(k);
    const by = issuerText(e);
    rows.set(k, {
      version: e.version,
      state: foldState(prev?.state ?? {}, e.payload),
      created_by: prev?.created_by ?? by,
      updated_by: by,
    });
  }
  return rows;
}

function stateAt(all: readonly EventRecord[]): Map<string, Record<string, string>> {
  const states = new Map<string, Record<string, string>>();
  const current = new Map<string, Record<string, string>>();
  for (const e of all) {
    const agg = `${e.aggregate_type}/${e.aggregate_id}`;
    const s = foldState(current.get(agg) ?? {}, e.payload);
    current.set(agg, s);
    states.set(key(e), s);
  }
  return states;
}

/**
 * Check what the destination holds. Event sinks: every expected event at least once, first arrivals
 * in position order (per aggregate type for CSV, which keeps one file per type), nothing else;
 * `exactlyOnce` also forbids repeats. State sinks: exactly the expected rows.
 */
export function expectDelivered(
  observed: Observed,
  all: readonly EventRecord[],
  delivered: readonly EventRecord[],
  opts: { exactlyOnce?: boolean; perType?: boolean } = {},
): void {
  if (observed.kind === 'rows') {
    expect(observed.rows).toEqual(expectedRows(all, delivered));
    return;
  }
  const events = observed.events;
  expect(events.filter((e) => e.aggregate_type.startsWith('$'))).toEqual([]);
  const groups = opts.perType ? [...new Set(delivered.map((e) => e.aggregate_type))] : [undefined];
  for (const type of groups) {
    const mine = (e: { aggregate_type: string }) => type === undefined || e.aggregate_type === type;
    const seen = new Set<string>();
    const firsts: Delivered[] = [];
    for (const e of events.filter(mine)) if (!seen.has(key(e)) && seen.add(key(e))) firsts.push(e);
    expect(firsts.map(key)).toEqual(delivered.filter(mine).map(key));
  }
  if (opts.exactlyOnce) expect(events.length).toBe(delivered.length);
  const byKey = new Map(delivered.map((e) => [key(e), e]));
  const states = stateAt(all);
  for (const e of events) {
    const want = byKey.get(key(e))!;
    expect(e.event_type).toBe(want.event_type);
    if (e.payload) {
      expect(e.payload).toEqual(want.payload);
      expect(e.event_id).toBe(want.metadata.event_id);
    }
    if (e.state) expect(e.state).toEqual(states.get(key(e)));
    if (e.issued_by) expect(e.issued_by).toEqual(want.metadata.issued_by);
    if (e.updated_by !== undefined) expect(e.updated_by).toBe(issuerText(want));
  }
}

export function sinkContract(h: SinkHarness): void {
  describe(`plugin contract: ${h.label}`, () => {
    let store: EventStore;
    let fx: Fixture;
    let hosts: DeliveryHost[] = [];
    const perType = h.kind === 'csv';

    beforeEach(async () => {
      store = await openStore();
      fx = await h.setup();
    });
    afterEach(async () => {
      for (const x of hosts) await x.stop();
      hosts = [];
      await fx.teardown();
      await store.close();
    });

    const host = async () => {
      const x = await startHost(store, fx.logger);
      hosts.push(x);
      return x;
    };
    const configure = (extra: PluginInput = {}) =>
      configurePlugin(store, h.kind, { ...fx.input, ...FAST, ...extra }, jane);
    const check = async (delivered: EventRecord[], opts: { exactlyOnce?: boolean } = {}) => {
      const all = await userEvents(store);
      expectDelivered(await fx.read(), all, delivered, { ...opts, perType });
    };

    it('backfills the events committed before it was added, in position order, without system events', async () => {
      await append(store, sampleEvents(12));
      await host();
      const r = await configure();
      expect(r).toMatchObject({ created: true, cursor: 1, running: true });
      await caughtUp(store, h.kind);
      await check(await userEvents(store), { exactlyOnce: true });
    });

    it('delivers concurrent live appends in commit order, with new fields and awkward values', async () => {
      await host();
      await configure();
      await caughtUp(store, h.kind);
      await append(store, sampleEvents(40), true);
      await append(store, sampleEvents(15, 40));
      await caughtUp(store, h.kind);
      await check(await userEvents(store), { exactlyOnce: true });
    });

    it('resumes from its durable cursor after the host stops: nothing lost, nothing twice', async () => {
      const first = await host();
      await configure();
      await append(store, sampleEvents(10));
      await caughtUp(store, h.kind);
      await first.stop();
      hosts = [];
      await append(store, sampleEvents(10, 10));
      await host();
      await caughtUp(store, h.kind);
      await check(await userEvents(store), { exactlyOnce: true });
    });

    it('replays from a position: state sinks keep the same rows, files keep each event once, other event sinks get those events again in order', async () => {
      await host();
      await configure();
      await append(store, sampleEvents(16));
      await caughtUp(store, h.kind);
      const from = (await userEvents(store))[6]!.position;
      const r = await replayPlugin(store, h.kind, from, jane);
      expect(r).toMatchObject({ from, running: true });
      await caughtUp(store, h.kind);
      const all = await userEvents(store);
      // A file sink writes only the events its file lacks (qa2-ops #4): here, none.
      if (h.once) return check(all, { exactlyOnce: true });
      await check(all);
      // Caught up means acknowledged; a TCP line acknowledged by the kernel may still be in flight.
      const replayed = all.filter((e) => e.position >= from).length;
      const observed = await waitFor('the replayed events to arrive', async () => {
        const o = await fx.read();
        return o.kind !== 'events' || o.events.length >= all.length + replayed ? o : undefined;
      });
      if (observed.kind === 'events') {
        const groups = perType ? [...new Set(all.map((e) => e.aggregate_type))] : [undefined];
        for (const type of groups) {
          const mine = (e: { aggregate_type: string }) => type === undefined || e.aggregate_type === type;
          const before = all.filter(mine);
          const again = before.filter((e) => e.position >= from).map(key);
          expect(observed.events.filter(mine).slice(before.length).map(key)).toEqual(again);
        }
      }
    });

    it('added with from_now, delivers only the events committed afterwards', async () => {
      await append(store, sampleEvents(8));
      await host();
      const r = await configure({ from_now: true });
      expect(r.cursor).toBe(store.size);
      await append(store, sampleEvents(6, 8));
      await caughtUp(store, h.kind);
      const all = await userEvents(store);
      await check(all.slice(8), { exactlyOnce: true });
    });

    it('disabled, delivers nothing; enabled again, continues from its cursor', async () => {
      await host();
      await configure();
      await append(store, sampleEvents(5));
      await caughtUp(store, h.kind);
      const off = await configure({ disable: true });
      expect(off.plugin.enabled).toBe(false);
      await append(store, sampleEvents(5, 5));
      await check((await userEvents(store)).slice(0, 5), { exactlyOnce: true });
      await configure();
      await caughtUp(store, h.kind);
      await check(await userEvents(store), { exactlyOnce: true });
    });
  });
}
