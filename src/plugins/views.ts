/**
 * The read side of plugin administration: configuration as shown (secrets masked), delivery status
 * (stored cursor and dead letters, plus the live figures of the running host), and dead letters.
 */
import { err } from '../core/errors.js';
import type { EventStore } from '../store/index.js';
import { hostFor } from './registry.js';
import {
  countDeadLetters,
  listConfigs,
  listDeadLetters,
  readConfig,
  readCursor,
  readMappings,
  shownDeadLetter,
} from './repository.js';
import { describeTarget, maskedSettings, pluginKind } from './settings.js';
import type {
  DeadLetterPage,
  PluginList,
  PluginStatus,
  PluginStatusList,
  PluginView,
} from '../protocol/plugins.js';
import {
  type DeliveryError,
  type DeliveryOptions,
  type LoopStats,
  type PluginConfig,
  TIMEOUT_KINDS,
} from './types.js';

export type { PluginStatus, PluginView } from '../protocol/plugins.js';

const withoutTimeout = ({ timeout_ms: _, ...rest }: DeliveryOptions): Omit<DeliveryOptions, 'timeout_ms'> =>
  rest;

export const viewOf = (c: PluginConfig): PluginView => ({
  name: c.name,
  kind: c.kind,
  enabled: c.enabled,
  target: describeTarget(c),
  settings: maskedSettings(c),
  // The log plugin waits on nothing: no timeout is shown for it.
  delivery: TIMEOUT_KINDS.includes(c.kind) ? c.delivery : withoutTimeout(c.delivery),
  created_at: c.created_at,
  updated_at: c.updated_at,
});

export async function requireConfig(store: EventStore, name: string): Promise<PluginConfig> {
  const c = await readConfig(store, name);
  if (!c) throw err('EDBX_ERR_PLUGIN_NOT_FOUND', { name });
  return c;
}

export async function listPlugins(store: EventStore): Promise<PluginList> {
  const host = hostFor(store);
  const plugins = (await listConfigs(store)).map((c): PluginView => {
    const failure = host?.failure(c.name);
    return failure ? { ...viewOf(c), failure } : viewOf(c);
  });
  return { plugins, mappings: await readMappings(store) };
}

function stateOf(
  c: PluginConfig,
  hosted: boolean,
  live: LoopStats | undefined,
  failure: DeliveryError | undefined,
): string {
  if (failure) return 'failed';
  if (!c.enabled) return 'disabled';
  if (!hosted) return 'not running';
  return live?.state ?? 'stopped';
}

export async function pluginStatus(store: EventStore): Promise<PluginStatusList> {
  const host = hostFor(store);
  const head = store.size;
  const out: PluginStatus[] = [];
  for (const c of await listConfigs(store)) {
    const stored = await readCursor(store, c.name);
    const live: LoopStats | undefined = host?.stats(c.name);
    const failure = host?.failure(c.name);
    const cursor = live?.cursor ?? stored?.position ?? 1;
    const lastError = failure ?? live?.last_error ?? stored?.last_error;
    out.push({
      name: c.name,
      kind: c.kind,
      enabled: c.enabled,
      target: describeTarget(c),
      state: stateOf(c, host !== undefined, live, failure),
      cursor,
      head,
      lag: Math.max(0, head - (cursor - 1)),
      attempts: live?.attempts ?? 0,
      delivered: live?.delivered ?? 0,
      retries: live?.retries ?? 0,
      dead_letters: await countDeadLetters(store, c.name),
      ...(lastError ? { last_error: lastError } : {}),
      ...(live?.last_delivered_at ? { last_delivered_at: live.last_delivered_at } : {}),
      ...(live?.next_retry_at && live.state !== 'idle' && live.state !== 'delivering'
        ? { next_retry_at: live.next_retry_at }
        : {}),
    });
  }
  return { plugins: out, running: host !== undefined };
}

/**
 * A plugin's dead letters, oldest first: at most `take` (all without it) from position `from` on, and
 * `next_from`, the `from` of the next page (null after the last).
 */
export async function deadLetters(
  store: EventStore,
  nameArg: unknown,
  take?: number,
  from?: number,
): Promise<DeadLetterPage> {
  const name = pluginKind(nameArg);
  await requireConfig(store, name);
  const rows = await listDeadLetters(store, name, take === undefined ? undefined : take + 1, from);
  const next = take !== undefined && rows.length > take ? rows[take]! : undefined;
  return {
    plugin: name,
    total: await countDeadLetters(store, name),
    dead_letters: (next ? rows.slice(0, take) : rows).map(shownDeadLetter),
    next_from: next ? next.position : null,
  };
}
