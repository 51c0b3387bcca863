/**
 * The file sinks deliver each event once across crashes (QA qa2-ops item 4): the durable cursor trails
 * delivery (by up to 200 ms), so after a kill -9 the last events arrive again, and the JSON and CSV
 * files held them twice. Each sink now finds what its file already holds when it opens it and skips
 * the events redelivered in order; a dead letter delivered again by `plugin retry` is still written.
 * A retry that wrote its dead letter but did not remove it (a crash, a failed fsync) left it marked, and
 * the next retry of it is written only if the file lacks it. Real files, and a real delivery host whose
 * cursor is moved back as a crash leaves it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/core/event.js';
import { configurePlugin } from '../../src/plugins/index.js';
import { parseCsv } from '../../src/plugins/csv/rfc4180.js';
import { CsvSink } from '../../src/plugins/csv/sink.js';
import { JsonSink } from '../../src/plugins/json/sink.js';
import { DeliveryLoop, RETRY_PAGE } from '../../src/plugins/loop.js';
import {
  listDeadLetters,
  readConfig,
  readCursor,
  writeCursor,
  writeDeadLetter,
} from '../../src/plugins/repository.js';
import { deadLetters } from '../../src/plugins/views.js';
import { type DeliveryItem, type Sink, transientFailure } from '../../src/plugins/types.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import {
  FAST,
  caughtUp,
  deliveryItems,
  jane,
  openStore,
  recordingLogger,
  startHost,
  userEvents,
  waitFor,
} from './fixtures.js';

const tempDir = tempDirs('edbx-once-');
const stores: EventStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
/** A store closed after the test. */
async function freshStore(): Promise<EventStore> {
  const store = await openStore();
  stores.push(store);
  return store;
}

/** The positions of a JSON Lines or --pretty file, in file order. */
async function jsonPositions(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split(/\n(?=\{)/)
    .filter((r) => r.trim())
    .map((r) => (JSON.parse(r) as EventRecord).position);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** `count` events of aggregates p-1..p-3 in turn (versions rising), positions from 1. */
function history(count: number): DeliveryItem[] {
  const at = '2026-11-26T12:00:00.000Z';
  const by = { group: 'doctors', user: 'ana' };
  const versions = new Map<string, number>();
  return range(1, count).map((position) => {
    const id = `p-${((position - 1) % 3) + 1}`;
    const version = (versions.get(id) ?? 0) + 1;
    versions.set(id, version);
    const payload = { step: String(version) };
    const record: EventRecord = {
      aggregate_type: 'patient',
      aggregate_id: id,
      event_type: 'patient-updated',
      payload,
      metadata: { event_id: `e-${position}`, created_at: at, issued_by: by },
      version,
      position,
      hash: '',
      merkle_root: '',
    };
    return { record, row: { state: payload, created_at: at, created_by: by } };
  });
}

async function csvRows(file: string): Promise<string[]> {
  const { records } = parseCsv(await readFile(file, 'utf8'));
  return records.slice(1).map((r) => `${r[0]}@${r[1]}`);
}
const rowsOf = (items: readonly DeliveryItem[]) =>
  items.map((i) => `${i.record.aggregate_id}@${i.record.version}`);

describe('JSON sink: each event once across crashes (qa2-ops #4)', () => {
  for (const pretty of [false, true]) {
    it(`skips what a restarted sink is given again (${pretty ? '--pretty' : 'JSON Lines'})`, async () => {
      const file = path.join(await tempDir(), 'events.json');
      const before = new JsonSink({ path: file, pretty });
      await before.deliver(deliveryItems(10, 1));
      // kill -9: the cursor was last written at position 6, so 6..10 come again, then new ones.
      const after = new JsonSink({ path: file, pretty });
      await after.deliver(deliveryItems(5, 6));
      await after.deliver(deliveryItems(5, 11));
      await before.close();
      await after.close();
      expect(await jsonPositions(file)).toEqual(range(1, 15));
    });
  }

  it('a record torn by the crash is cut off and written again, once', async () => {
    const file = path.join(await tempDir(), 'events.jsonl');
    const sink = new JsonSink({ path: file, pretty: false });
    await sink.deliver(deliveryItems(4, 1));
    await sink.close();
    const torn = JSON.stringify(deliveryItems(1, 5)[0]!.record).slice(0, 40);
    await writeFile(file, (await readFile(file, 'utf8')) + torn);
    const again = new JsonSink({ path: file, pretty: false });
    await again.deliver(deliveryItems(4, 3));
    await again.close();
    expect(await jsonPositions(file)).toEqual(range(1, 6));
  });

  it('writes a dead letter delivered again, below what the file holds', async () => {
    const file = path.join(await tempDir(), 'events.jsonl');
    const sink = new JsonSink({ path: file, pretty: false });
    await sink.deliver([...deliveryItems(2, 1), ...deliveryItems(3, 4)]);
    await sink.deliver(deliveryItems(1, 3).map((i) => ({ ...i, retry: true })));
    await sink.close();
    expect(await jsonPositions(file)).toEqual([1, 2, 4, 5, 6, 3]);
  });

  for (const pretty of [false, true]) {
    const mode = pretty ? '--pretty' : 'JSON Lines';
    it(`writes a dead letter an earlier retry may have written only if it is absent (${mode})`, async () => {
      const file = path.join(await tempDir(), 'events.json');
      const before = new JsonSink({ path: file, pretty });
      await before.deliver([...deliveryItems(2, 1), ...deliveryItems(3, 4)]);
      await before.close();
      const inDoubt = deliveryItems(1, 3).map((i) => ({ ...i, retry: true, maybeDelivered: true }));
      // Below what the file holds and not in it (the earlier retry failed before its write): written.
      const sink = new JsonSink({ path: file, pretty });
      await sink.deliver(inDoubt);
      // In it: the retry crashed before its dead letter was removed, here or in an earlier process.
      await sink.deliver(inDoubt);
      await sink.close();
      const after = new JsonSink({ path: file, pretty });
      await after.deliver(inDoubt);
      await after.close();
      expect(await jsonPositions(file)).toEqual([1, 2, 4, 5, 6, 3]);
    });
  }
});

describe('CSV sink: each event once across crashes (qa2-ops #4)', () => {
  it('skips the rows a restarted sink is given again, by aggregate id and version', async () => {
    const dir = await tempDir();
    const events = history(12);
    const before = new CsvSink({ output_dir: dir });
    await before.deliver(events.slice(0, 9));
    const after = new CsvSink({ output_dir: dir });
    await after.deliver(events.slice(4, 7));
    await after.deliver(events.slice(7, 12));
    await before.close();
    await after.close();
    expect(await csvRows(path.join(dir, 'patient.csv'))).toEqual(rowsOf(events));
  });

  it('writes a dead letter delivered again, below what the file holds', async () => {
    const dir = await tempDir();
    const events = history(6);
    const sink = new CsvSink({ output_dir: dir });
    await sink.deliver([...events.slice(0, 3), ...events.slice(4)]);
    await sink.deliver([{ ...events[3]!, retry: true }]);
    await sink.close();
    expect(await csvRows(path.join(dir, 'patient.csv'))).toEqual(
      rowsOf([...events.slice(0, 3), ...events.slice(4), events[3]!]),
    );
  });

  it('writes a dead letter an earlier retry may have written only if no row has its id and version', async () => {
    const dir = await tempDir();
    const events = history(6);
    const before = new CsvSink({ output_dir: dir });
    await before.deliver([...events.slice(0, 3), ...events.slice(4)]);
    await before.close();
    const inDoubt = [{ ...events[3]!, retry: true, maybeDelivered: true }];
    const sink = new CsvSink({ output_dir: dir });
    await sink.deliver(inDoubt);
    await sink.deliver(inDoubt);
    await sink.close();
    const after = new CsvSink({ output_dir: dir });
    await after.deliver(inDoubt);
    await after.close();
    expect(await csvRows(path.join(dir, 'patient.csv'))).toEqual(
      rowsOf([...events.slice(0, 3), ...events.slice(4), events[3]!]),
    );
  });
});

describe('a delivery host whose cursor trails what the files hold (qa2-ops #4)', () => {
  it('JSON and CSV files hold every event once after the host starts again from an older cursor', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const json = path.join(dir, 'events.jsonl');
    let host = await startHost(store);
    await configurePlugin(store, 'json', { path: json }, jane);
    await configurePlugin(store, 'csv', { output_dir: path.join(dir, 'csv') }, jane);
    const ev = (id: string, n: number) => ({
      aggregate_type: 'patient',
      aggregate_id: id,
      event_type: 'patient-updated',
      payload: { n: String(n) },
    });
    for (let n = 1; n <= 12; n++) await store.append(ev(`p-${n % 4}`, n), jane);
    await caughtUp(store, 'json');
    await caughtUp(store, 'csv');
    await host.stop();
    // What a kill -9 leaves: cursors written some events before the last delivery.
    const events = await userEvents(store);
    await writeCursor(store, 'json', { position: events[4]!.position });
    await writeCursor(store, 'csv', { position: events[2]!.position });
    host = await startHost(store);
    for (let n = 13; n <= 15; n++) await store.append(ev(`p-${n % 4}`, n), jane);
    await caughtUp(store, 'json');
    await caughtUp(store, 'csv');
    await host.stop();

    const all = await userEvents(store);
    expect(await jsonPositions(json)).toEqual(all.map((e) => e.position));
    expect(await csvRows(path.join(dir, 'csv', 'patient.csv'))).toEqual(
      all.map((e) => `${e.aggregate_id}@${e.version}`),
    );
  });

  it('plugin retry writes a dead-lettered event into a file that holds later ones', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST, max_attempts: 1 }, jane);
    const real = new JsonSink({ path: file, pretty: false });
    const { loop, poison, bad } = await deadLettered(store, 'json', real);
    poison.now = 'write';
    expect(await loop.requestRetry()).toMatchObject({ retried: 1, delivered: 1 });
    await loop.stop();
    const positions = await jsonPositions(file);
    expect(positions.filter((p) => p === bad.position)).toHaveLength(1);
    expect(positions).toHaveLength(4);
  });
});

/** What the test sink does with the poison event: refuse it, write it, or write it and then fail/hang. */
type Poison = 'refuse' | 'write' | 'write-then-fail' | 'write-then-hang';

/**
 * A loop over a real file sink whose second event (the poison one) was dead-lettered while the later
 * ones were delivered; `poison.now` says what the sink does with that event from then on.
 */
async function deadLettered(store: EventStore, name: 'json' | 'csv', real: Sink, first: Poison = 'refuse') {
  const config = (await readConfig(store, name))!;
  const poison = { now: first };
  const sink: Sink = {
    needsState: real.needsState,
    batchSize: 1,
    async deliver(items) {
      if (!items.some((i) => i.record.payload.poison === 'yes')) return real.deliver(items);
      if (poison.now === 'refuse') throw new Error('poison');
      await real.deliver(items);
      // A crash (kill -9) after the sink's write and fsync, before the dead letter is removed.
      if (poison.now === 'write-then-hang') await new Promise(() => undefined);
      // The bytes reached the file, then its fsync (or stat) threw: what the file sinks then report.
      if (poison.now === 'write-then-fail') throw transientFailure(name, 'fsync failed', 0, true);
    },
    close: () => real.close(),
  };
  const loop = new DeliveryLoop(store, config, sink, recordingLogger(), { position: 1 });
  store.onCommit(() => loop.notifyCommit());
  loop.start();
  const ev = (n: number, poisoned = 'no') => ({
    aggregate_type: 'patient',
    aggregate_id: `p-${n}`,
    event_type: 'patient-added',
    payload: { poison: poisoned },
  });
  await store.append(ev(1), jane);
  const bad = await store.append(ev(2, 'yes'), jane);
  await store.append(ev(3), jane);
  const last = await store.append(ev(4), jane);
  await waitFor('delivery past the dead letter', () => loop.stats().cursor > last.position);
  return { config, loop, poison, bad };
}

describe('plugin retry writes a dead letter into a file once, crashes included', () => {
  it('a crash after the JSON sink wrote the event and before its dead letter was removed', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST, max_attempts: 1 }, jane);
    const real = new JsonSink({ path: file, pretty: false });
    const { config, loop, poison, bad } = await deadLettered(store, 'json', real);
    poison.now = 'write-then-hang';
    void loop.requestRetry();
    await waitFor('the dead letter written', async () => (await jsonPositions(file)).includes(bad.position));
    await loop.stop(50);
    // The mark is the host's own: not shown.
    expect((await listDeadLetters(store, 'json'))[0]).toMatchObject({ outcome_unknown: true });
    expect((await deadLetters(store, 'json')).dead_letters[0]).not.toHaveProperty('outcome_unknown');

    // The server starts again.
    const cursor = (await readCursor(store, 'json'))!;
    const again = new DeliveryLoop(
      store,
      config,
      new JsonSink({ path: file, pretty: false }),
      recordingLogger(),
      cursor,
    );
    again.start();
    expect(await again.requestRetry()).toEqual({ retried: 1, delivered: 1, failed: 0 });
    await again.stop();
    const positions = await jsonPositions(file);
    expect(positions.filter((p) => p === bad.position)).toHaveLength(1);
    expect(positions).toHaveLength(4);
    expect(await listDeadLetters(store, 'json')).toEqual([]);
  });

  it('a CSV write that reached the file before the retry failed, then a retry that goes through', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    await configurePlugin(store, 'csv', { output_dir: dir, ...FAST, max_attempts: 1 }, jane);
    const { loop, poison, bad } = await deadLettered(store, 'csv', new CsvSink({ output_dir: dir }));
    poison.now = 'write-then-fail';
    expect(await loop.requestRetry()).toMatchObject({ retried: 1, delivered: 0, failed: 1 });
    expect(await listDeadLetters(store, 'csv')).toMatchObject([
      { position: bad.position, attempts: 2, outcome_unknown: true },
    ]);
    // Failing again keeps the mark.
    expect(await loop.requestRetry()).toMatchObject({ failed: 1 });
    expect(await listDeadLetters(store, 'csv')).toMatchObject([{ attempts: 3, outcome_unknown: true }]);
    poison.now = 'write';
    expect(await loop.requestRetry()).toMatchObject({ retried: 1, delivered: 1 });
    await loop.stop();
    const rows = await csvRows(path.join(dir, 'patient.csv'));
    expect(rows.filter((r) => r === `${bad.aggregate_id}@1`)).toHaveLength(1);
    expect(rows).toHaveLength(4);
    expect(await listDeadLetters(store, 'csv')).toEqual([]);
  });

  it('a retry that goes through at once removes the dead letter, the file holding it once', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.json');
    await configurePlugin(store, 'json', { path: file, pretty: true, ...FAST, max_attempts: 1 }, jane);
    const real = new JsonSink({ path: file, pretty: true });
    const { loop, poison, bad } = await deadLettered(store, 'json', real);
    poison.now = 'write';
    expect(await loop.requestRetry()).toEqual({ retried: 1, delivered: 1, failed: 0 });
    await loop.stop();
    expect(await listDeadLetters(store, 'json')).toEqual([]);
    expect((await jsonPositions(file)).filter((p) => p === bad.position)).toHaveLength(1);
  });
});

describe('a dead letter whose failed delivery may have reached the file', () => {
  for (const name of ['json', 'csv'] as const) {
    it(`is written once by plugin retry (${name})`, async () => {
      const dir = await tempDir();
      const store = await openStore();
      stores.push(store);
      const file = path.join(dir, 'events.jsonl');
      const settings = name === 'json' ? { path: file } : { output_dir: dir };
      await configurePlugin(store, name, { ...settings, ...FAST, max_attempts: 1 }, jane);
      const real =
        name === 'json' ? new JsonSink({ path: file, pretty: false }) : new CsvSink({ output_dir: dir });
      // The poison event's write reached the file, then its sync failed: dead-lettered, marked.
      const { loop, poison, bad } = await deadLettered(store, name, real, 'write-then-fail');
      expect(await listDeadLetters(store, name)).toMatchObject([
        { position: bad.position, outcome_unknown: true },
      ]);
      poison.now = 'write';
      expect(await loop.requestRetry()).toEqual({ retried: 1, delivered: 1, failed: 0 });
      await loop.stop();
      const held =
        name === 'json'
          ? (await jsonPositions(file)).map(String)
          : await csvRows(path.join(dir, 'patient.csv'));
      const wanted = name === 'json' ? String(bad.position) : `${bad.aggregate_id}@1`;
      expect(held.filter((h) => h === wanted)).toHaveLength(1);
      expect(held).toHaveLength(4);
    });
  }

  it('a refused delivery that wrote nothing is not marked: retry writes it without reading the file', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST, max_attempts: 1 }, jane);
    const { loop } = await deadLettered(store, 'json', new JsonSink({ path: file, pretty: false }));
    expect((await listDeadLetters(store, 'json'))[0]).not.toHaveProperty('outcome_unknown');
    await loop.stop();
  });
});

describe('plugin retry when the store cannot be written', () => {
  it('the caller gets the error instead of waiting forever', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST, max_attempts: 1 }, jane);
    const { loop, poison } = await deadLettered(store, 'json', new JsonSink({ path: file, pretty: false }));
    poison.now = 'write';
    // The disk fails under the store (EIO): marking the dead letter before its delivery cannot be written.
    const write = store.engine.write.bind(store.engine);
    store.engine.write = () => Promise.reject(new Error('EIO: i/o error, write'));
    await expect(loop.requestRetry()).rejects.toThrow(/EIO/);
    store.engine.write = write;
    // The next request is served once the store can be written again.
    expect(await loop.requestRetry()).toMatchObject({ retried: 1, delivered: 1 });
    await loop.stop();
  });
});

describe('plugin retry of more dead letters than one page', () => {
  it('delivers every one, a page at a time, in position order', async () => {
    const dir = await tempDir();
    const store = await freshStore();
    const file = path.join(dir, 'events.jsonl');
    await configurePlugin(store, 'json', { path: file, ...FAST }, jane);
    const count = 2 * RETRY_PAGE + 7;
    const records = await store.appendMany(
      Array.from({ length: count }, (_, i) => ({
        aggregate_type: 'patient',
        aggregate_id: `p-${i}`,
        event_type: 'patient-added',
        payload: {},
      })),
      jane,
    );
    // What a long outage leaves: every event dead-lettered, the cursor past them all.
    const cursor = { position: store.size + 1 };
    for (const r of records) {
      await writeDeadLetter(
        store,
        {
          plugin: 'json',
          position: r.position,
          aggregate_type: r.aggregate_type,
          aggregate_id: r.aggregate_id,
          version: r.version,
          event_type: r.event_type,
          event_id: r.metadata.event_id,
          code: 'EDBX_ERR_PLUGIN_DELIVERY',
          reason: 'outage',
          attempts: 1,
          dead_lettered_at: r.metadata.created_at,
        },
        cursor,
      );
    }
    const config = (await readConfig(store, 'json'))!;
    const sink = new JsonSink({ path: file, pretty: false });
    const loop = new DeliveryLoop(store, config, sink, recordingLogger(), cursor);
    loop.start();
    expect(await loop.requestRetry()).toEqual({ retried: count, delivered: count, failed: 0 });
    await loop.stop();
    expect(await jsonPositions(file)).toEqual(records.map((r) => r.position));
    expect(await listDeadLetters(store, 'json')).toEqual([]);
  });
});
