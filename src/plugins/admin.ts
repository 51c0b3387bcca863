/**
 * Plugin administration, the changes: configure, map, replay, retry, remove (the read side is in
 * views.ts). Pure store
 * operations shared by the CLI (locally or inside the server over the control socket) and the REST
 * API. Every change is an audited exclusive job; when the server's delivery host runs on this store,
 * the change goes through it and takes effect at once. Without a server the configuration is only
 * recorded (results say `running: false`).
 */
import { randomBytes } from 'node:crypto';
import { err } from '../core/errors.js';
import { aggregateType, fieldName, wholeNumber } from '../core/names.js';
import { pluginConfigDigest } from '../store/audit-plugins.js';
import { AUDIT_ID, AUDIT_TYPE, type EventStore } from '../store/index.js';
import type { WriteContext } from '../store/types.js';
import { refuseDiverged } from './divergence.js';
import { clearDestination } from './rebuild.js';
import { hostFor } from './registry.js';
import {
  countDeadLetters,
  dropDeadLetters,
  dropPlugin,
  putConfig,
  putCursor,
  putMappings,
  readConfig,
  readCursor,
  readMappings,
} from './repository.js';
import {
  type PluginInput,
  buildDelivery,
  buildSettings,
  describeTarget,
  droppedHeaders,
  pluginKind,
} from './settings.js';
import { parseDataType } from './sql/datatypes.js';
import { checkTarget } from './targets.js';
import type { ReplayResult, RetryResult } from '../protocol/plugins.js';
import type { Mappings, PluginConfig } from './types.js';
import { type PluginView, requireConfig, viewOf } from './views.js';

const AUDIT: ReadonlyArray<readonly [string, string]> = [[AUDIT_TYPE, AUDIT_ID]];

/** Run a change through the running host (so it takes effect now), or directly when none runs. */
function apply<T>(store: EventStore, names: readonly string[], change: () => Promise<T>): Promise<T> {
  const host = hostFor(store);
  return host ? host.reconfigure(names, change) : change();
}

/**
 * Add, change, enable or disable (`disable`) a plugin. A new plugin delivers from the first event
 * (backfill) unless `from_now`. Settings and retry options given are changed, the others kept, except
 * HTTP headers when the endpoint moves to another origin: those are dropped unless `keep_headers`,
 * and `dropped_headers` names them (as does the audit entry).
 */
export async function configurePlugin(
  store: EventStore,
  kindName: string,
  input: PluginInput,
  ctx: WriteContext,
): Promise<{
  plugin: PluginView;
  created: boolean;
  cursor: number;
  head: number;
  running: boolean;
  dropped_headers?: string[];
}> {
  const kind = pluginKind(kindName);
  const name = kind;
  const disable = input.disable === true || input.disable === 'true';
  const fromNow = input.from_now === true || input.from_now === 'true';
  const result = await apply(store, [name], () =>
    store.exclusive(AUDIT, async (tx) => {
      const prev = await readConfig(store, name);
      const settings = buildSettings(kind, input, prev?.kind === kind ? prev.settings : undefined);
      const dropped = droppedHeaders(kind, input, prev, settings);
      // A target given now is checked; one kept from before is not (a --disable must not fail on it).
      if (JSON.stringify(settings) !== JSON.stringify(prev?.settings)) await checkTarget(kind, settings);
      const now = store.env.now().toISOString();
      const config = {
        name,
        kind,
        enabled: !disable,
        settings,
        delivery: buildDelivery(kind, input, prev?.delivery),
        created_at: prev?.created_at ?? now,
        updated_at: now,
        salt: randomBytes(16).toString('base64url'),
      } as PluginConfig;
      putConfig(tx, store, config);
      const stored = await readCursor(store, name);
      let cursor = stored ?? { position: 1 };
      if (fromNow) cursor = { ...cursor, position: store.size + 1 };
      // The last error was about the old target: a new one starts with a clean slate.
      if (prev && cursor.last_error && JSON.stringify(prev.settings) !== JSON.stringify(settings)) {
        const { last_error: _, ...rest } = cursor;
        cursor = rest;
      }
      if (cursor !== stored) putCursor(tx, store, name, cursor);
      store.audit(tx, ctx, disable ? 'plugin-disabled' : 'plugin-configured', {
        plugin: name,
        target: describeTarget(config),
        enabled: String(!disable),
        cursor: String(cursor.position),
        // Names only, like `target`: the values may be credentials.
        ...(dropped.length ? { dropped_headers: dropped.join(', ') } : {}),
        // What the delivery host and `audit verify` compare the stored record with.
        config_digest: pluginConfigDigest(config),
      });
      return { config, created: !prev, cursor: cursor.position, dropped };
    }),
  );
  return {
    plugin: viewOf(result.config),
    created: result.created,
    cursor: result.cursor,
    head: store.size,
    running: hostFor(store) !== undefined,
    ...(result.dropped.length ? { dropped_headers: result.dropped } : {}),
  };
}

/** Record the column type of a field for the SQL plugins (`plugin` = override for that one only). */
export async function mapField(
  store: EventStore,
  input: { aggregate: unknown; field: unknown; datatype: unknown; plugin?: unknown },
  ctx: WriteContext,
): Promise<{
  mapping: { aggregate: string; field: string; datatype: string; plugin: string };
  running: boolean;
}> {
  const aggregate = aggregateType(input.aggregate);
  const field = fieldName(String(input.field ?? ''));
  const type = parseDataType(String(input.datatype ?? ''));
  const target = input.plugin === undefined ? 'base' : input.plugin;
  if (target !== 'base' && target !== 'postgres' && target !== 'sqlite') {
    throw err('EDBX_ERR_PLUGIN_CONFIG_INVALID', {
      plugin: String(target),
      reason: '--plugin: mappings apply to the SQL plugins, postgres or sqlite',
    });
  }
  await apply(store, ['postgres', 'sqlite'], () =>
    store.exclusive(AUDIT, async (tx) => {
      const m = await readMappings(store);
      const next: Mappings = {
        ...m,
        [target]: { ...m[target], [aggregate]: { ...m[target][aggregate], [field]: type.name } },
      };
      putMappings(tx, store, next);
      store.audit(tx, ctx, 'plugin-mapped', { aggregate, field, datatype: type.name, plugin: target });
    }),
  );
  return {
    mapping: { aggregate, field, datatype: type.name, plugin: target },
    running: hostFor(store) !== undefined,
  };
}

/**
 * Deliver again from `from` (default 1, the first event); dead letters from there are cleared.
 * `fromName` is how the caller's user gave `from` (the CLI flag, or the HTTP body field). With
 * `rebuild`, the destination is cleared first (see rebuild.ts) and everything is delivered again:
 * the repair for a destination that holds history the store does not have.
 */
export async function replayPlugin(
  store: EventStore,
  nameArg: unknown,
  from: unknown,
  ctx: WriteContext,
  fromName = '--from',
  rebuildArg: unknown = false,
): Promise<ReplayResult> {
  const name = pluginKind(nameArg);
  const rebuild = rebuildArg === true || rebuildArg === 'true';
  if (rebuild && from !== undefined && wholeNumber(from) !== 1)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: fromName,
      value: from,
      reason: 'a rebuild delivers everything again, from position 1: leave it out',
    });
  const position = from === undefined ? 1 : wholeNumber(from);
  if (position === undefined || position < 1 || position > store.size + 1) {
    // Positions number the ledger, whose entries include the audit log's.
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: fromName,
      value: from,
      reason: `use a position from 1 to ${store.size + 1} (the ledger holds ${store.size} positions, audit entries included)`,
    });
  }
  const { cleared, rebuilt } = await apply(store, [name], async () => {
    // A destination holding history the store lacks keeps it through a plain replay: refused, saying
    // so, before anything changes (compared while the plugin's loop is stopped).
    if (!rebuild) await refuseDiverged(store, await requireConfig(store, name));
    return store.exclusive(AUDIT, async (tx) => {
      const config = await requireConfig(store, name);
      // Cleared while the plugin's loop is stopped: nothing writes there meanwhile.
      const rebuilt = rebuild ? await clearDestination(store, config) : undefined;
      const cursor = await readCursor(store, name);
      // A rebuilt destination starts afresh: the error that asked for it no longer applies.
      const { last_error: _, ...kept } = cursor ?? { position };
      putCursor(tx, store, name, { ...(rebuild ? kept : cursor), position });
      const n = await dropDeadLetters(tx, store, name, position);
      store.audit(tx, ctx, 'plugin-replayed', {
        plugin: name,
        from: String(position),
        ...(rebuild ? { rebuild: 'true' } : {}),
      });
      return { cleared: n, rebuilt };
    });
  });
  return {
    plugin: name,
    from: position,
    head: store.size,
    cleared_dead_letters: cleared,
    ...(rebuilt ? { rebuilt } : {}),
    running: hostFor(store) !== undefined,
  };
}

/**
 * Deliver the dead letters again (and retry a blocked event at once). With the server running this
 * happens now and the outcome is returned; otherwise it is recorded and happens when the server starts.
 */
export async function retryPlugin(
  store: EventStore,
  nameArg: unknown,
  ctx: WriteContext,
): Promise<RetryResult> {
  const name = pluginKind(nameArg);
  const config = await requireConfig(store, name);
  const audit = (details: Record<string, string>) =>
    store.exclusive(
      AUDIT,
      async (tx) => void store.audit(tx, ctx, 'plugin-retried', { plugin: name, ...details }),
    );
  const host = hostFor(store);
  // Not run because the audit log does not vouch for it: retrying later would not happen either.
  const refused = host?.refusal(name);
  if (refused) throw refused;
  const live = host?.retry(name);
  if (live) {
    const outcome = await live;
    await audit({ retried: String(outcome.retried), delivered: String(outcome.delivered) });
    return { plugin: name, running: true, queued: 0, outcome };
  }
  const queued = await countDeadLetters(store, name);
  await apply(store, [name], async () => {
    // The loop compares a diverged destination again when retried (loop.ts); without one, it is
    // compared here, or the retry would be recorded for a plugin that cannot deliver it.
    await refuseDiverged(store, config);
    await store.exclusive(AUDIT, async (tx) => {
      const cursor = await readCursor(store, name);
      putCursor(tx, store, name, { ...cursor, position: cursor?.position ?? 1, retry_requested: true });
      store.audit(tx, ctx, 'plugin-retried', { plugin: name, queued: String(queued) });
    });
  });
  return { plugin: name, running: false, queued };
}

/** Remove a plugin with its cursor and dead letters (what it delivered stays where it is). */
export async function removePlugin(
  store: EventStore,
  nameArg: unknown,
  ctx: WriteContext,
): Promise<{ plugin: string; running: boolean }> {
  const name = pluginKind(nameArg);
  await apply(store, [name], () =>
    store.exclusive(AUDIT, async (tx) => {
      await requireConfig(store, name);
      dropPlugin(tx, name);
      await dropDeadLetters(tx, store, name);
      store.audit(tx, ctx, 'plugin-removed', { plugin: name });
    }),
  );
  return { plugin: name, running: hostFor(store) !== undefined };
}
