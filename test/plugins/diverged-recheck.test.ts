/**
 * A plugin whose destination diverged (EDBX_ERR_PLUGIN_DIVERGED) reads its destination again only when
 * someone acts: it compared it every backoff_max_ms, for ever, for nothing. `plugin retry` compares
 * it again, is refused while it still differs and resumes delivery once it was put right by hand; a
 * plain `plugin replay` is refused before anything changes; `plugin list` shows why. With a real JSON
 * Lines file made to hold an event the store does not have (as a destination another store writes to).
 */
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type DeliveryHost,
  configurePlugin,
  listPlugins,
  replayPlugin,
  retryPlugin,
} from '../../src/plugins/index.js';
import { JsonSink } from '../../src/plugins/json/sink.js';
import { readCursor } from '../../src/plugins/repository.js';
import type { EventStore } from '../../src/store/index.js';
import { tempDirs } from '../helpers/temp.js';
import {
  FAST,
  caughtUp,
  jane,
  openStore,
  recordingLogger,
  startHost,
  statusOf,
  userEvents,
  waitFor,
} from './fixtures.js';

let dir: string;
let file: string;
let store: EventStore;
let host: DeliveryHost | undefined;
const tempDir = tempDirs('edbx-diverged-');
beforeEach(async () => {
  dir = await tempDir();
  file = path.join(dir, 'events.jsonl');
  store = await openStore();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await host?.stop();
  host = undefined;
  await store.close();
});

const append = (n: number) =>
  store.append(
    { aggregate_type: 'patient', aggregate_id: `p-${n}`, event_type: 'added', payload: { n: String(n) } },
    jane,
  );

/** Three events delivered, then a record of an event the store does not have appended to the file. */
async function diverge(): Promise<{ delivered: string }> {
  // backoff_max_ms 50: the loop used to compare the destination again every 50 ms.
  await configurePlugin(store, 'json', { path: file, ...FAST }, jane);
  host = await startHost(store);
  for (let i = 0; i < 3; i++) await append(i);
  await caughtUp(store, 'json');
  await host.stop();
  host = undefined;
  const delivered = await readFile(file, 'utf8');
  const last = JSON.parse(delivered.trim().split('\n').at(-1)!) as Record<string, unknown>;
  await appendFile(file, `${JSON.stringify({ ...last, position: 999, hash: 'f'.repeat(64) })}\n`);
  return { delivered };
}

const failed = () =>
  waitFor('the plugin to refuse', async () => {
    const s = await statusOf(store, 'json');
    return s.state === 'failed' ? s : undefined;
  });

describe('a diverged plugin', () => {
  it('reads its destination again only when retried, and resumes once it was put right by hand', async () => {
    const { delivered } = await diverge();
    const held = vi.spyOn(JsonSink.prototype, 'held');
    const log = recordingLogger();
    host = await startHost(store, log);
    const s = await failed();
    expect(s.last_error!.message).toContain('holds the event at position 999');
    // Forty times the longest retry delay: compared once, at start, and logged once.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(held).toHaveBeenCalledTimes(1);
    expect(log.lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([s.last_error!.message]);

    // `plugin retry` compares again: still diverged, refused with why and what to run.
    await expect(retryPlugin(store, 'json', jane)).rejects.toMatchObject({
      code: 'EDBX_ERR_PLUGIN_DIVERGED',
      message: expect.stringContaining('`eventdbx plugin replay json --rebuild`'),
    });
    expect(held).toHaveBeenCalledTimes(2);
    expect((await statusOf(store, 'json')).state).toBe('failed');

    // Put right by hand (the foreign record removed): a retry compares again and delivery resumes.
    await writeFile(file, delivered);
    await append(3);
    await expect(retryPlugin(store, 'json', jane)).resolves.toMatchObject({ running: true });
    await caughtUp(store, 'json');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { aggregate_id: string }).aggregate_id)).toEqual(
      (await userEvents(store)).map((e) => e.aggregate_id),
    );
  }, 30_000);

  it('answers a retry whose comparison cannot read the destination with the coded reason', async () => {
    await diverge();
    host = await startHost(store);
    await failed();
    // The file replaced by a directory: it cannot be read to compare it.
    await rm(file);
    await mkdir(file);
    await expect(retryPlugin(store, 'json', jane)).rejects.toMatchObject({
      code: 'EDBX_ERR_PLUGIN_DELIVERY',
      message: expect.stringContaining(file),
    });
  });

  it('refuses a plain replay before anything changes, and `plugin list` says why', async () => {
    await diverge();
    host = await startHost(store);
    const s = await failed();
    const before = await readCursor(store, 'json');
    await expect(replayPlugin(store, 'json', undefined, jane)).rejects.toMatchObject({
      code: 'EDBX_ERR_PLUGIN_DIVERGED',
      message: s.last_error!.message,
    });
    expect(await readCursor(store, 'json')).toEqual(before);
    expect((await failed()).last_error!.code).toBe('EDBX_ERR_PLUGIN_DIVERGED');
    const [view] = (await listPlugins(store)).plugins;
    expect(view!.failure).toMatchObject({ code: 'EDBX_ERR_PLUGIN_DIVERGED', message: s.last_error!.message });
  });

  it('is refused by `plugin retry` and `plugin replay` on the data dir, with no server running', async () => {
    await diverge();
    const before = await readCursor(store, 'json');
    for (const command of [
      () => retryPlugin(store, 'json', jane),
      () => replayPlugin(store, 'json', undefined, jane),
    ])
      await expect(command()).rejects.toMatchObject({
        code: 'EDBX_ERR_PLUGIN_DIVERGED',
        message: expect.stringMatching(
          /^json destination .* holds the event at position 999, which this store does not have \(its last position is \d+\).*`eventdbx plugin replay json --rebuild`$/,
        ),
      });
    // Nothing recorded: no retry waits for the server, the cursor did not move.
    expect(await readCursor(store, 'json')).toEqual(before);
  });
});

describe('the comparison at start', () => {
  it('does not hold back an event committed while the destination is read', async () => {
    await configurePlugin(store, 'json', { path: file, ...FAST }, jane);
    const read = JsonSink.prototype.held;
    vi.spyOn(JsonSink.prototype, 'held').mockImplementationOnce(async function (this: JsonSink) {
      await append(0);
      return read.call(this);
    });
    host = await startHost(store);
    // Well within the idle poll (5 s), which it used to wait for: the commit's wake-up was missed.
    await waitFor('the event delivered', async () => (await readFile(file, 'utf8')).includes('"p-0"'), 3_000);
  });
});
