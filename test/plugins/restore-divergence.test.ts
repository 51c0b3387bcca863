/**
 * A store restored from a backup taken mid-stream writes again at positions and versions the lost
 * history already had (QA finding 2: the PostgreSQL row kept the lost version and every new event was
 * dropped by the version guard, with lag 0 and no dead letters; the file sinks skipped them as "already
 * held"). Against each sink that keeps what it delivered, with a real destination and a real RocksDB
 * backup: the plugin refuses with EDBX_ERR_PLUGIN_DIVERGED (status `failed`, logged, nothing
 * dead-lettered, nothing written), whether the restored store was written to before the server starts
 * (the destination's newest event differs from the store's) or after (it is beyond the store's head);
 * `plugin retry` and a plain `plugin replay` are refused with it, with or without a server; then
 * `plugin replay --rebuild` makes the destination equal to the store.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { type DeliveryHost, configurePlugin, replayPlugin, retryPlugin } from '../../src/plugins/index.js';
import { backupStore } from '../../src/store/index.js';
import { type SecureStore, openDataDir } from '../../src/store/secure.js';
import { tempDirs } from '../helpers/temp.js';
import { sampleEvents } from './contract.js';
import {
  FAST,
  caughtUp,
  jane,
  recordingLogger,
  startHost,
  statusOf,
  userEvents,
  waitFor,
} from './fixtures.js';
import { type Fixture, type Observed, type SinkHarness, harnesses } from './harnesses.js';
import { type PgServer, startPostgres } from './pg-harness.js';

const tempDir = tempDirs('edbx-restore-');
let pg: PgServer | undefined;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.destroy();
});

const open = (dataDir: string): Promise<SecureStore> =>
  openDataDir({
    dataDir,
    masterKey: 'restore-master',
    dek: 'restore-dek',
    memoryThreshold: 100,
    maxPayloadBytes: 256 * 1024,
    verifyThreads: 0,
  });

async function append(s: SecureStore, n: number, offset: number): Promise<void> {
  for (const r of sampleEvents(n, offset)) await s.store.append(r, jane);
}

/** What the destination must hold for `events` (all of a store's user events). */
function expected(kind: Observed['kind'], events: readonly EventRecord[]): string[] {
  if (kind === 'events')
    return events
      .map((e) => `${e.aggregate_type}/${e.aggregate_id}@${e.version}#${e.metadata.event_id}`)
      .sort();
  const newest = new Map<string, number>();
  for (const e of events) newest.set(`${e.aggregate_type}/${e.aggregate_id}`, e.version);
  return [...newest].map(([k, v]) => `${k}@${v}`).sort();
}

function observed(o: Observed): string[] {
  if (o.kind === 'events')
    return o.events.map((e) => `${e.aggregate_type}/${e.aggregate_id}@${e.version}#${e.event_id}`).sort();
  return [...o.rows].map(([k, r]) => `${k}@${r.version}`).sort();
}

const SINKS = new Set(['postgres', 'sqlite', 'csv', 'json', 'json --pretty']);

describe.each(harnesses(() => pg!).filter((h) => SINKS.has(h.label)))(
  'restore from a backup: $label',
  (h: SinkHarness) => {
    for (const when of ['before', 'after'] as const) {
      it(`refuses to deliver (written to ${when} the server starts), then --rebuild repairs it`, async () => {
        const root = await tempDir();
        const fx: Fixture = await h.setup();
        let host: DeliveryHost | undefined;
        let b: SecureStore | undefined;
        try {
          const a = await open(path.join(root, 'data'));
          await configurePlugin(a.store, h.kind, { ...fx.input, ...FAST }, jane);
          host = await startHost(a.store);
          await append(a, 6, 0);
          await caughtUp(a.store, h.kind);
          await backupStore(a.store, path.join(root, 'backup'), jane);
          // The history the restore loses: delivered, then gone.
          await append(a, 9, 6);
          await caughtUp(a.store, h.kind);
          await host.stop();
          host = undefined;
          await a.store.close();
          const lost = observed(await fx.read());

          b = await open(path.join(root, 'backup'));
          // Other events at the versions (and, written before the start, positions) the lost history had.
          if (when === 'before') await append(b, 12, 100);
          // No server runs: `plugin retry` and a plain `plugin replay` compare the destination
          // themselves, and say why they cannot help instead of being recorded.
          const diverged = {
            code: 'EDBX_ERR_PLUGIN_DIVERGED',
            message: expect.stringContaining(`\`eventdbx plugin replay ${h.kind} --rebuild\``),
          };
          await expect(retryPlugin(b.store, h.kind, jane)).rejects.toMatchObject(diverged);
          await expect(replayPlugin(b.store, h.kind, undefined, jane)).rejects.toMatchObject(diverged);
          const log = recordingLogger();
          host = await startHost(b.store, log);
          if (when === 'after') await append(b, 2, 100);
          const s = await waitFor(
            'the plugin to refuse',
            async () => {
              const st = await statusOf(b!.store, h.kind);
              return st.state === 'failed' ? st : undefined;
            },
            10_000,
          );
          expect(s.last_error).toMatchObject({ code: 'EDBX_ERR_PLUGIN_DIVERGED' });
          expect(s.last_error!.message).toContain('restored from a backup');
          expect(s.last_error!.message).toContain(`eventdbx plugin replay ${h.kind} --rebuild`);
          expect(s.dead_letters).toBe(0);
          expect(log.lines.some((l) => l.level === 'error' && l.msg === s.last_error!.message)).toBe(true);
          // `plugin retry` would deliver into it too: refused with the same error.
          await expect(retryPlugin(b.store, h.kind, jane)).rejects.toMatchObject({
            code: 'EDBX_ERR_PLUGIN_DIVERGED',
          });
          // A replay without --rebuild cannot mend it either: refused, the cursor left where it was.
          const cursor = (await statusOf(b.store, h.kind)).cursor;
          await expect(replayPlugin(b.store, h.kind, undefined, jane)).rejects.toMatchObject({
            code: 'EDBX_ERR_PLUGIN_DIVERGED',
            message: s.last_error!.message,
          });
          expect((await statusOf(b.store, h.kind)).cursor).toBe(cursor);
          // Nothing of the restored store's was written over the lost history.
          expect(observed(await fx.read())).toEqual(lost);

          const r = await replayPlugin(b.store, h.kind, undefined, jane, '--from', true);
          expect(r.rebuilt!.length).toBeGreaterThan(0);
          await caughtUp(b.store, h.kind);
          const st = await statusOf(b.store, h.kind);
          expect(st.last_error).toBeUndefined();
          const all = await userEvents(b.store);
          const got = await fx.read();
          expect(observed(got)).toEqual(expected(got.kind, all));
          if (h.kind === 'json' || h.kind === 'csv') {
            // Moved aside, never deleted.
            const dir = h.kind === 'json' ? path.dirname(String(fx.input.path)) : String(fx.input.output_dir);
            expect((await readdir(dir)).some((f) => f.includes('.before-rebuild-'))).toBe(true);
          }
        } finally {
          await host?.stop();
          await b?.store.close();
          await fx.teardown();
        }
      }, 60_000);
    }
  },
);
