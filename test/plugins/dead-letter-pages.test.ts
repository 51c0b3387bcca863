/**
 * Dead letters a page at a time: after a long outage a plugin can hold very many, and
 * `GET /v1/plugins/{name}/dead-letters` answered them all in one response. Now at most `take`
 * (default and most 1000) from `from` on, with `next_from` for the next page.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configurePlugin, deadLetters } from '../../src/plugins/index.js';
import { writeDeadLetter } from '../../src/plugins/repository.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { EventStore } from '../../src/store/index.js';
import { pluginFeature } from '../../src/server/routes/plugins.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { jane } from './fixtures.js';

const letter = (position: number) => ({
  plugin: 'log',
  position,
  aggregate_type: 'order',
  aggregate_id: `o-${position}`,
  version: 1,
  event_type: 'placed',
  event_id: `e-${position}`,
  code: 'EDBX_ERR_PLUGIN_DELIVERY',
  reason: 'answered 500',
  attempts: 3,
  dead_lettered_at: '2026-11-28T00:00:00.000Z',
});

async function withLetters(store: EventStore, positions: readonly number[]) {
  await configurePlugin(store, 'log', { level: 'info' }, jane);
  for (const p of positions) await writeDeadLetter(store, letter(p), { position: p + 1 });
}

describe('dead letters a page at a time', () => {
  let store: EventStore;
  beforeEach(async () => {
    store = await EventStore.open({ engine: new MemoryEngine() });
  });
  afterEach(() => store.close());

  it('pages with take and from, next_from naming the next page until the last', async () => {
    await withLetters(store, [3, 5, 8, 13, 21]);
    const first = await deadLetters(store, 'log', 2);
    expect([first.total, first.dead_letters.map((d) => d.position), first.next_from]).toEqual([5, [3, 5], 8]);
    const second = await deadLetters(store, 'log', 2, first.next_from!);
    expect([second.dead_letters.map((d) => d.position), second.next_from]).toEqual([[8, 13], 21]);
    const last = await deadLetters(store, 'log', 2, second.next_from!);
    expect([last.dead_letters.map((d) => d.position), last.next_from]).toEqual([[21], null]);
    // Without take (the CLI's `plugin dead-letters`): all of them.
    expect((await deadLetters(store, 'log')).dead_letters).toHaveLength(5);
  });
});

describe('GET /v1/plugins/{name}/dead-letters', () => {
  let s: TestServer;
  beforeEach(async () => {
    s = await testServer({
      extraRoutes: [(app, ctx) => pluginFeature.routes!(app, ctx, undefined as never)],
    });
    await withLetters(
      s.store,
      Array.from({ length: 1005 }, (_, i) => i + 1),
    );
  });
  afterEach(() => s.close());
  const get = async (query: string) => {
    const res = await fetch(`${s.url}/v1/plugins/log/dead-letters${query}`, {
      headers: { authorization: `Bearer ${s.token}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('answers at most 1000 by default, and the rest from next_from', async () => {
    const first = await get('');
    expect([first.status, first.body.total, first.body.dead_letters.length, first.body.next_from]).toEqual([
      200, 1005, 1000, 1001,
    ]);
    const rest = await get(`?from=${first.body.next_from}`);
    expect([
      rest.body.dead_letters.map((d: { position: number }) => d.position),
      rest.body.next_from,
    ]).toEqual([[1001, 1002, 1003, 1004, 1005], null]);
  });

  it('refuses a take over 1000 and a from below 1, naming the value', async () => {
    for (const q of ['?take=1001', '?take=0', '?from=0', '?from=x']) {
      const r = await get(q);
      expect([q, r.status, r.body.code]).toEqual([q, 400, 'EDBX_ERR_INVALID_ARGUMENT']);
    }
  });
});
