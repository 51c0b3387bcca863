/**
 * `plugin status` while a dead letter is being stored: the cursor moved past the event before its dead
 * letter was written, so for the length of that write the status said "caught up" (lag 0) with no
 * dead letter — a script waiting for lag 0 then found none (a flaky SDK test showed it). The cursor now
 * moves with the dead letter, in the same write.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type DeliveryHost, configurePlugin, pluginStatus } from '../../src/plugins/index.js';
import type { WriteOp, WriteOptions } from '../../src/storage/engine.js';
import * as K from '../../src/store/keys.js';
import type { EventStore } from '../../src/store/index.js';
import { FAST, type HttpReceiver, httpReceiver, jane, openStore, startHost, waitFor } from './fixtures.js';

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

it('never shows an event passed (lag 0) before its dead letter is stored', async () => {
  rx.respond = () => 400;
  // Hold the write that stores the dead letter (with the cursor) until the status was read.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let holding = false;
  const write = store.engine.write.bind(store.engine);
  const prefix = K.deadLetterPrefix('http');
  store.engine.write = async (ops: readonly WriteOp[], o: WriteOptions) => {
    if (ops.some((op) => op.key.subarray(0, prefix.length).equals(prefix))) {
      holding = true;
      await held;
    }
    return write(ops, o);
  };
  const e = await store.append(
    { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'added', payload: { n: '1' } },
    jane,
  );
  host = await startHost(store);
  await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST, max_attempts: 1 }, jane);
  await waitFor('the dead letter write', async () => holding);
  const during = (await pluginStatus(store)).plugins.find((p) => p.name === 'http')!;
  expect(during).toMatchObject({ cursor: e.position, dead_letters: 0 });
  expect(during.lag).toBeGreaterThan(0);
  release();
  const after = await waitFor('the dead letter', async () => {
    const s = (await pluginStatus(store)).plugins.find((p) => p.name === 'http')!;
    return s.lag === 0 ? s : undefined;
  });
  expect(after).toMatchObject({ cursor: after.head + 1, dead_letters: 1 });
});
