/**
 * The table-shaped sinks' names, against real destinations (run by contract.test.ts): an aggregate
 * type named like a sink's own tables or a name the database keeps gets a table of its own without
 * holding up the events after it (read-model QA 1), and every field gets a column of its own, the
 * field `id` (stored as `field_id`) and a field literally named `field_id` included (read-model QA 2).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type DeliveryHost,
  type PluginInput,
  configurePlugin,
  deadLetters,
  replayPlugin,
} from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import { expectedRows } from './contract.js';
import { FAST, caughtUp, jane, openStore, startHost, statusOf, userEvents } from './fixtures.js';
import type { Fixture, Observed, SinkHarness } from './harnesses.js';

/** Types a writer may use that name the sinks' bookkeeping tables or what a database keeps for itself. */
const RESERVED_TYPES = [
  'eventdbx_sink_head',
  'eventdbx_sink_tables',
  'sqlite_sequence',
  'sqlite_master',
  'pg_class',
];

/** Where each lands: `aggregate$<type>` where the name is not free, else the type's own name. */
const TABLES: Record<'postgres' | 'sqlite', Record<string, string>> = {
  postgres: {
    eventdbx_sink_head: 'aggregate$eventdbx_sink_head',
    eventdbx_sink_tables: 'aggregate$eventdbx_sink_tables',
  },
  sqlite: {
    eventdbx_sink_head: 'aggregate$eventdbx_sink_head',
    eventdbx_sink_tables: 'aggregate$eventdbx_sink_tables',
    sqlite_sequence: 'aggregate$sqlite_sequence',
    sqlite_master: 'aggregate$sqlite_master',
  },
};

/** The newest columns → values of an aggregate: its row (SQL) or its last CSV row. */
function columnsOf(observed: Observed, type: string, id: string): Record<string, string> | undefined {
  if (observed.kind === 'rows') return observed.rows.get(`${type}/${id}`)?.state;
  return observed.events.filter((e) => e.aggregate_type === type && e.aggregate_id === id).at(-1)?.state;
}

export function namesContract(h: SinkHarness): void {
  if (h.kind !== 'postgres' && h.kind !== 'sqlite' && h.kind !== 'csv') return;
  const kind = h.kind;
  describe(`plugin names: ${h.label}`, () => {
    let store: EventStore;
    let fx: Fixture;
    let hosts: DeliveryHost[] = [];

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
      configurePlugin(store, kind, { ...fx.input, ...FAST, ...extra }, jane);
    /** Caught up with no event retried or dead-lettered. */
    const deliveredCleanly = async () => {
      await caughtUp(store, kind);
      expect((await deadLetters(store, kind)).dead_letters).toEqual([]);
      expect((await statusOf(store, kind)).retries).toBe(0);
    };

    it.runIf(kind !== 'csv')(
      'delivers aggregate types named like its bookkeeping tables or reserved names to tables of their own, holding up nothing (read-model QA 1)',
      async () => {
        const tables = TABLES[kind as 'postgres' | 'sqlite'];
        await host();
        await configure();
        for (const type of RESERVED_TYPES)
          await store.append(
            {
              aggregate_type: type,
              aggregate_id: 'x1',
              event_type: 'created',
              payload: { position: '999999', hash: 'abc' },
            },
            jane,
          );
        await store.append(
          {
            aggregate_type: 'shipment',
            aggregate_id: 'legit-1',
            event_type: 'shipment-moved',
            payload: { location: 'legit-after' },
          },
          jane,
        );
        await deliveredCleanly();
        const all = await userEvents(store);
        const want = new Map(
          [...expectedRows(all, all)].map(([key, row]) => {
            const [type, id] = key.split('/') as [string, string];
            return [`${tables[type] ?? type}/${id}`, row];
          }),
        );
        expect((await fx.read()) as Observed).toEqual({ kind: 'rows', rows: want });

        // A replay writes to the same tables, and a rebuild drops and writes them again.
        await replayPlugin(store, kind, 1, jane);
        await deliveredCleanly();
        expect(await fx.read()).toEqual({ kind: 'rows', rows: want });
        await replayPlugin(store, kind, undefined, jane, '--from', true);
        await deliveredCleanly();
        expect(await fx.read()).toEqual({ kind: 'rows', rows: want });
      },
    );

    it('gives the field id (stored as field_id) and a field literally named field_id a column each, after a restart and a replay too (read-model QA 2)', async () => {
      const place = (id: string, payload: Record<string, string>) =>
        store.append(
          { aggregate_type: 'order', aggregate_id: id, event_type: 'order-placed', payload },
          jane,
        );
      const first = await host();
      await configure();
      await place('o-4', { field_id: 'fid', id: 'realid' });
      await place('o-5', { id: 'only-id' });
      await place('o-6', { field_id: 'only-literal', version: 'v-field' });
      await deliveredCleanly();
      const expectColumns = async (o4: Record<string, string>) => {
        const observed = await fx.read();
        expect(columnsOf(observed, 'order', 'o-4')).toEqual(o4);
        expect(columnsOf(observed, 'order', 'o-5')).toEqual({ field_id: 'only-id' });
        expect(columnsOf(observed, 'order', 'o-6')).toEqual({
          field_field_id: 'only-literal',
          field_version: 'v-field',
        });
      };
      await expectColumns({ field_id: 'realid', field_field_id: 'fid' });

      await first.stop();
      hosts = [];
      await host();
      await place('o-4', { field_id: 'fid-2' });
      await deliveredCleanly();
      await expectColumns({ field_id: 'realid', field_field_id: 'fid-2' });

      await replayPlugin(store, kind, 1, jane);
      await deliveredCleanly();
      await expectColumns({ field_id: 'realid', field_field_id: 'fid-2' });
    });
  });
}
