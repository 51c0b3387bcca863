/**
 * A dead destination does not flood the server log (QA qa2-ops item 7: a dead HTTP and TCP sink wrote
 * 480 warn lines in about 4 s, one per attempt and per dead letter). Identical failures are logged the
 * first time, then once a minute with the number left out; what was left out is logged all the same,
 * once the minute has passed or delivery recovers (QA-dev finding 6: 1 of 5 dead letters logged, the
 * other 4 never counted, as no later line came to carry the count).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryHost, EMPTY_MAPPINGS, configurePlugin, deadLetters } from '../../src/plugins/index.js';
import { DeliveryLoop } from '../../src/plugins/loop.js';
import { readConfig } from '../../src/plugins/repository.js';
import { createSink } from '../../src/plugins/sinks.js';
import type { EventStore } from '../../src/store/index.js';
import {
  FAST,
  type HttpReceiver,
  type LogLine,
  caughtUp,
  httpReceiver,
  jane,
  openStore,
  recordingLogger,
  startHost,
  waitFor,
} from './fixtures.js';

let store: EventStore;
let host: DeliveryHost | undefined;
let rx: HttpReceiver;
const closing: Array<() => Promise<unknown>> = [];
beforeEach(async () => {
  store = await openStore();
  rx = await httpReceiver();
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  for (const close of closing.splice(0).reverse()) await close();
  await rx.close();
  await store.close();
});

describe('plugin failure warnings (qa2-ops #7)', () => {
  it('a destination failing every event logs its failure and its dead letters once, not per event', async () => {
    rx.respond = () => 500;
    const log = recordingLogger();
    host = await startHost(store, log);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 2 }, jane);
    for (let i = 0; i < 8; i++)
      await store.append(
        { aggregate_type: 'patient', aggregate_id: `p-${i}`, event_type: 'added', payload: { n: String(i) } },
        jane,
      );
    await waitFor('every event dead-lettered', async () => (await deadLetters(store, 'http')).total === 8);
    // 16 failed attempts and 8 dead letters: one line for each kind (the test ends well within a minute).
    const warns = log.lines.filter((l) => l.level === 'warn');
    expect(warns.map((l) => l.msg)).toEqual([
      expect.stringContaining('answered 500'),
      expect.stringContaining('event dead-lettered after 2 attempt(s)'),
    ]);
    expect(rx.requests.length).toBe(16);
  });
});

const append = (id: string, n: number) =>
  store.append(
    { aggregate_type: 'patient', aggregate_id: id, event_type: 'added', payload: { n: String(n) } },
    jane,
  );

/** Every occurrence a log line stands for: itself and the `repeated` ones left out before it. */
const occurrences = (lines: readonly LogLine[], msg: string) =>
  lines
    .filter((l) => l.msg.includes(msg))
    .reduce((n, l) => n + 1 + ((l.obj as { repeated?: number }).repeated ?? 0), 0);

describe('collapsed log lines are all counted (qa-dev #6)', () => {
  it('when delivery recovers: the counts left out, then a line saying it resumed', async () => {
    rx.respond = () => 400;
    const log = recordingLogger();
    host = await startHost(store, log);
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 2 }, jane);
    for (let i = 0; i < 5; i++) await append(`p-${i}`, i);
    await waitFor('5 dead letters', async () => (await deadLetters(store, 'http')).total === 5);
    // Well within a minute: one line of each kind so far.
    expect(occurrences(log.lines, 'dead-lettered')).toBe(1);

    rx.respond = () => 200;
    await append('p-5', 5);
    await caughtUp(store, 'http');
    expect(occurrences(log.lines, 'dead-lettered')).toBe(5);
    expect(occurrences(log.lines, 'answered 400')).toBe(10);
    const resumed = log.lines.filter((l) => l.msg.includes('delivery resumed'));
    expect(resumed).toEqual([
      expect.objectContaining({ level: 'info', msg: 'http delivery resumed after 10 failed attempt(s)' }),
    ]);
    // The counts come first: whoever reads the log sees the whole failure before its end.
    expect(log.lines.at(-1)).toBe(resumed[0]);
  });

  it('when the interval passes with nothing else to log, the counts left out are logged anyway', async () => {
    rx.respond = () => 400;
    await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 2 }, jane);
    const config = (await readConfig(store, 'http'))!;
    const log = recordingLogger();
    const sink = createSink(config, { log, mappings: EMPTY_MAPPINGS });
    // Repeats collapsed for 300 ms instead of a minute.
    const loop = new DeliveryLoop(store, config, sink, log, { position: 1 }, undefined, 300);
    closing.push(() => loop.stop());
    store.onCommit(() => loop.notifyCommit());
    loop.start();
    for (let i = 0; i < 4; i++) await append(`p-${i}`, i);
    await waitFor('4 dead letters', async () => (await deadLetters(store, 'http')).total === 4);
    // Nothing else happens: no later line carries the counts, the timer logs them.
    const counted = (msg: string, n: number) => () => occurrences(log.lines, msg) === n;
    await waitFor('every dead letter in the log', counted('dead-lettered', 4), 5_000);
    await waitFor('every failed attempt in the log', counted('answered 400', 8), 5_000);
  });
});
