/**
 * Whether a destination holds history this store does not have. A store restored from a backup
 * writes again at positions and versions the lost history (appended after the backup) already had,
 * and its events there are other events: sinks that skip what they "already hold" (the SQL upsert's
 * version guard, the file sinks' position and version checks) would silently drop every one of them,
 * while status showed no lag and no dead letters. So before a sink that keeps what it delivered
 * writes anything, the newest events it says it holds (`Sink.held`) are compared with the store's:
 * one beyond the store's last position, or one that is another event than the store's at that
 * position (hash) or version (event id), stops the plugin with EDBX_ERR_PLUGIN_DIVERGED. Nothing is
 * delivered and nothing dead-lettered until `plugin replay --rebuild` clears the destination.
 */
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import type { EventStore } from '../store/index.js';
import { readMappings } from './repository.js';
import { describeTarget } from './settings.js';
import { createSink } from './sinks.js';
import { type HeldEvent, type PluginConfig, type Sink, DeliveryFailure, HOST_TIMED_KINDS } from './types.js';
import { Watchdog, closeWithin } from './watchdog.js';

/** What the destination holds, as the message names it. */
const named = (h: HeldEvent): string =>
  'position' in h
    ? `the event at position ${h.position}`
    : `${h.aggregate_type}/${h.aggregate_id} v${h.version} (event id ${h.event_id})`;

/** Why the store does not have `h`, or undefined when it does. */
async function missing(store: EventStore, h: HeldEvent): Promise<string | undefined> {
  if ('position' in h) {
    const size = store.size;
    if (h.position > size) return `its last position is ${size}`;
    if (h.hash === undefined) return undefined;
    const [record] = await store.readLog(h.position, 1);
    if (record?.position !== h.position) return `it has no event at position ${h.position}`;
    return record.hash === h.hash ? undefined : `its event at position ${h.position} is another one`;
  }
  try {
    const record = await store.event(h.aggregate_type, h.aggregate_id, h.version);
    return record.metadata.event_id === h.event_id
      ? undefined
      : `its ${h.aggregate_type}/${h.aggregate_id} v${h.version} is another event`;
  } catch (e) {
    if (isEventDbxError(e, 'EDBX_ERR_AGGREGATE_NOT_FOUND') || isEventDbxError(e, 'EDBX_ERR_EVENT_NOT_FOUND'))
      return e.message;
    throw e;
  }
}

/**
 * EDBX_ERR_PLUGIN_DIVERGED when the destination of `sink` holds an event this store does not have;
 * undefined when it holds none or only the store's. Throws what reading the destination throws.
 */
export async function divergence(
  store: EventStore,
  config: PluginConfig,
  sink: Sink,
): Promise<EventDbxError | undefined> {
  if (!sink.held) return undefined;
  for (const h of await sink.held()) {
    const why = await missing(store, h);
    if (why !== undefined)
      return err('EDBX_ERR_PLUGIN_DIVERGED', {
        plugin: config.name,
        target: describeTarget(config),
        held: named(h),
        why,
      });
  }
  return undefined;
}

/**
 * Throw EDBX_ERR_PLUGIN_DIVERGED when the destination of `config` holds an event this store does not
 * have, compared now with a sink of its own: for the commands that cannot mend it (`plugin retry`
 * while no loop delivers the plugin, a replay without --rebuild), run while no loop delivers it, so
 * that they say why instead of succeeding while the plugin stays `failed`. A destination that cannot
 * be read now (a database down, a read that does not finish within --timeout) passes: the plugin's
 * loop compares it before it delivers anything. The sink is let go of if it does not close in time.
 */
export async function refuseDiverged(store: EventStore, config: PluginConfig): Promise<void> {
  const sink = createSink(config, {
    log: { info() {}, warn() {}, error() {} },
    mappings: await readMappings(store),
  });
  let diverged: EventDbxError | undefined;
  try {
    const timeout = HOST_TIMED_KINDS.includes(config.kind) ? config.delivery.timeout_ms : undefined;
    diverged = await new Watchdog(config.name, timeout)
      .run('reading the destination', () => divergence(store, config, sink))
      .catch((e: unknown) => {
        if (e instanceof DeliveryFailure) return undefined;
        throw e;
      });
  } finally {
    await closeWithin(sink);
  }
  if (diverged) throw diverged;
}
