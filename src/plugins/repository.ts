/**
 * Where plugin data lives in the store (X keys, values sealed with the store's codec): configuration
 * and mappings are written by audited exclusive jobs; cursors and dead letters are written by the
 * delivery host straight to the engine, off the writer, so delivery never queues behind appends nor
 * appends behind delivery. A cursor write is not fsync'd (it may be lost with the OS, which only means
 * redelivery), but it is only ever written after the sink acknowledged, so it never runs ahead.
 */
import { openJson, sealJson } from '../store/codec.js';
import type { EventStore } from '../store/index.js';
import * as K from '../store/keys.js';
import type { WriteTx } from '../store/tx.js';
import { prefixEnd } from '../storage/engine.js';
import {
  type CursorRecord,
  type DeadLetter,
  type Mappings,
  type PluginConfig,
  type StoredDeadLetter,
  EMPTY_MAPPINGS,
} from './types.js';

const get = async <T>(store: EventStore, key: Buffer, where: string): Promise<T | undefined> => {
  const v = await store.engine.get('main', key);
  return v ? openJson<T>(store.env.codec, v, where) : undefined;
};

export const readConfig = (store: EventStore, name: string): Promise<PluginConfig | undefined> =>
  get<PluginConfig>(store, K.pluginKey('config', name), `plugin ${name} config`);

/**
 * Every stored configuration, named by its key: the seal does not cover the key, so a record copied
 * onto another plugin's key is listed under that key (with the kind and settings it holds), and the
 * delivery host, reading it by that name, refuses it (see store/audit-plugins.ts).
 */
export async function listConfigs(store: EventStore): Promise<PluginConfig[]> {
  const prefix = K.pluginSectionPrefix('config');
  const out: PluginConfig[] = [];
  for await (const [k, v] of store.engine.range('main', { gte: prefix, lt: prefixEnd(prefix) })) {
    const name = K.decodePluginKey(k);
    out.push({ ...openJson<PluginConfig>(store.env.codec, v, `plugin ${name} config`), name });
  }
  return out;
}

export const readCursor = (store: EventStore, name: string): Promise<CursorRecord | undefined> =>
  get<CursorRecord>(store, K.pluginKey('cursor', name), `plugin ${name} cursor`);

export async function readMappings(store: EventStore): Promise<Mappings> {
  return {
    ...EMPTY_MAPPINGS,
    ...(await get<Mappings>(store, K.pluginKey('mappings', ''), 'plugin mappings')),
  };
}

/**
 * A plugin's dead letters as stored (with the host's bookkeeping: see `shownDeadLetter`), in position
 * order, from position `from` on.
 */
export async function listDeadLetters(
  store: EventStore,
  name: string,
  limit?: number,
  from = 0,
): Promise<StoredDeadLetter[]> {
  const prefix = K.deadLetterPrefix(name);
  const out: StoredDeadLetter[] = [];
  for await (const [, v] of store.engine.range('main', {
    gte: from > 0 ? K.deadLetterKey(name, from) : prefix,
    lt: prefixEnd(prefix),
    ...(limit === undefined ? {} : { limit }),
  }))
    out.push(openJson<StoredDeadLetter>(store.env.codec, v, `plugin ${name} dead letter`));
  return out;
}

/** A dead letter as people and API clients see it: the host's bookkeeping is its own. */
export const shownDeadLetter = ({ outcome_unknown: _, ...shown }: StoredDeadLetter): DeadLetter => shown;

export async function countDeadLetters(store: EventStore, name: string): Promise<number> {
  const prefix = K.deadLetterPrefix(name);
  let n = 0;
  // Keys only: a long outage can leave many dead letters, and status and /metrics count them.
  for await (const keys of store.engine.keyChunks('main', { gte: prefix, lt: prefixEnd(prefix) }))
    n += keys.length;
  return n;
}

/** Keys of a plugin's dead letters at or after `from`. */
async function deadLetterKeys(store: EventStore, name: string, from = 1): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for await (const [k] of store.engine.range('main', {
    gte: K.deadLetterKey(name, from),
    lt: prefixEnd(K.deadLetterPrefix(name)),
  }))
    keys.push(k);
  return keys;
}

// ------------------------------------------------------------ writes inside audited exclusive jobs

export const putConfig = (tx: WriteTx, store: EventStore, c: PluginConfig): void =>
  tx.put(K.pluginKey('config', c.name), sealJson(store.env.codec, c));

export const putCursor = (tx: WriteTx, store: EventStore, name: string, c: CursorRecord): void =>
  tx.put(K.pluginKey('cursor', name), sealJson(store.env.codec, c));

export const putMappings = (tx: WriteTx, store: EventStore, m: Mappings): void =>
  tx.put(K.pluginKey('mappings', ''), sealJson(store.env.codec, m));

/** Delete dead letters at or after `from` (a replay redelivers them). Returns how many. */
export async function dropDeadLetters(
  tx: WriteTx,
  store: EventStore,
  name: string,
  from = 1,
): Promise<number> {
  const keys = await deadLetterKeys(store, name, from);
  for (const k of keys) tx.del(k);
  return keys.length;
}

export function dropPlugin(tx: WriteTx, name: string): void {
  tx.del(K.pluginKey('config', name));
  tx.del(K.pluginKey('cursor', name));
}

// ------------------------------------------------------------ host writes (engine, off the writer)

export const writeCursor = (store: EventStore, name: string, c: CursorRecord): Promise<void> =>
  store.engine.write(
    [{ type: 'put', space: 'main', key: K.pluginKey('cursor', name), value: sealJson(store.env.codec, c) }],
    {
      sync: false,
    },
  );

/** Record a dead letter and move the cursor past it, atomically and durably. */
export const writeDeadLetter = (
  store: EventStore,
  d: StoredDeadLetter,
  cursor: CursorRecord,
): Promise<void> =>
  store.engine.write(
    [
      {
        type: 'put',
        space: 'main',
        key: K.deadLetterKey(d.plugin, d.position),
        value: sealJson(store.env.codec, d),
      },
      {
        type: 'put',
        space: 'main',
        key: K.pluginKey('cursor', d.plugin),
        value: sealJson(store.env.codec, cursor),
      },
    ],
    { sync: true },
  );

/** Rewrite a dead letter, durably (its mark must be on disk before the delivery it guards). */
export const updateDeadLetter = (store: EventStore, d: StoredDeadLetter): Promise<void> =>
  store.engine.write(
    [
      {
        type: 'put',
        space: 'main',
        key: K.deadLetterKey(d.plugin, d.position),
        value: sealJson(store.env.codec, d),
      },
    ],
    { sync: true },
  );

export const deleteDeadLetter = (store: EventStore, name: string, position: number): Promise<void> =>
  store.engine.write([{ type: 'del', space: 'main', key: K.deadLetterKey(name, position) }], { sync: true });
