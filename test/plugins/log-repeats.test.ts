/**
 * A dead destination does not flood the server log (QA qa2-ops item 7: a dead HTTP and TCP sink wrote
 * 480 warn lines in about 4 s, one per attempt and per dead letter). Identical failures are logged the
 * first time, then once a minute with the number left out.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DeliveryHost, configurePlugin, deadLetters } from '../../src/plugins/index.js';
import type { EventStore } from '../../src/store/index.js';
import {
  FAST,
  type HttpReceiver,
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
beforeEach(async () => {
  store = await openStore();
  rx = await httpReceiver();
});
afterEach(async () => {
  await host?.stop();
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
