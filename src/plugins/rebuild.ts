/**
 * `plugin replay <name> --rebuild`: clear what a plugin wrote, so that delivering everything again
 * from position 1 leaves the destination equal to the store. It is the repair for a destination that
 * holds history the store does not have (EDBX_ERR_PLUGIN_DIVERGED: the store was restored from a
 * backup, or another store wrote there), which a plain replay cannot mend: the sinks skip, or guard
 * against, what they already hold. Destructive, so only ever asked for by name: the SQL sinks drop
 * the tables they created (and those of the store's aggregate types) with their bookkeeping; the file
 * sinks move their files aside under a timestamped name, never deleting them.
 */
import { err, isEventDbxError } from '../core/errors.js';
import type { EventStore } from '../store/index.js';
import * as K from '../store/keys.js';
import { prefixEnd } from '../storage/engine.js';
import { readMappings } from './repository.js';
import { createSink } from './sinks.js';
import { type PluginConfig, DeliveryFailure, reasonOf } from './types.js';

/** The store's aggregate types (system ones included: the sinks leave them out). */
async function aggregateTypes(store: EventStore): Promise<string[]> {
  const prefix = K.metaPrefix();
  const types = new Set<string>();
  for await (const keys of store.engine.keyChunks('main', { gte: prefix, lt: prefixEnd(prefix) }))
    for (const k of keys) types.add(K.decodeMetaKey(k).type);
  return [...types];
}

/** Clear the destination of `config` (see above). Says what was done, one line per table or file. */
export async function clearDestination(store: EventStore, config: PluginConfig): Promise<string[]> {
  const sink = createSink(config, {
    log: { info() {}, warn() {}, error() {} },
    mappings: await readMappings(store),
  });
  try {
    if (!sink.clear)
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: '--rebuild',
        value: config.name,
        reason: `the ${config.kind} plugin keeps nothing to rebuild: replay it without --rebuild`,
      });
    // A name that sorts and reads as a time: moved-aside files of several rebuilds stay apart.
    const suffix = `before-rebuild-${store.env
      .now()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}`;
    return await sink.clear(await aggregateTypes(store), suffix);
  } catch (e) {
    if (isEventDbxError(e)) throw e;
    const reason = e instanceof DeliveryFailure ? e.error.message : reasonOf(e);
    throw err('EDBX_ERR_PLUGIN_DELIVERY', {
      plugin: config.name,
      reason: `the destination could not be cleared for the rebuild (nothing was replayed): ${reason}`,
    });
  } finally {
    await sink.close();
  }
}
