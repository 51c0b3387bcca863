/** Plugin operations and their human-readable output. */
import { err } from '../../core/errors.js';
import { MAX_WHOLE, wholeNumber } from '../../core/names.js';
import { configurePlugin, mapField, removePlugin, replayPlugin, retryPlugin } from '../../plugins/admin.js';
import {
  type PluginStatus,
  type PluginView,
  deadLetters,
  listPlugins,
  pluginStatus,
} from '../../plugins/views.js';
import type { PluginInput } from '../../plugins/settings.js';
import { type DeadLetter, type Mappings, type RetryOutcome, PLUGIN_KINDS } from '../../plugins/types.js';
import { bold, count, dim, red, table } from '../output.js';
import type { Op, OpArgs, Renderer } from './types.js';

/** commander's camelCase options → the plugin input. */
const input = (a: OpArgs): PluginInput => ({
  connection: a.connection,
  path: a.path,
  output_dir: a.outputDir,
  host: a.host,
  port: a.port,
  endpoint: a.endpoint,
  headers: a.header,
  keep_headers: a.keepHeaders,
  pretty: a.pretty,
  level: a.level,
  template: a.template,
  disable: a.disable,
  from_now: a.fromNow,
  max_attempts: a.maxAttempts,
  backoff_ms: a.backoff,
  backoff_max_ms: a.backoffMax,
  on_failure: a.onFailure,
  timeout_ms: a.timeout,
});

function take(a: OpArgs): number | undefined {
  if (a.take === undefined) return undefined;
  const n = wholeNumber(a.take);
  if (n === undefined || n < 1)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: '--take',
      value: a.take,
      reason: `use a whole number from 1 to ${MAX_WHOLE}`,
    });
  return n;
}

export const PLUGIN_OPS: Record<string, Op> = {
  ...Object.fromEntries(
    PLUGIN_KINDS.map((kind): [string, Op] => [
      `plugin.${kind}`,
      ({ store }, a, ctx) => configurePlugin(store, kind, input(a), ctx),
    ]),
  ),
  'plugin.map': ({ store }, a, ctx) =>
    mapField(store, { aggregate: a.aggregate, field: a.field, datatype: a.datatype, plugin: a.plugin }, ctx),
  'plugin.list': ({ store }) => listPlugins(store),
  'plugin.status': ({ store }) => pluginStatus(store),
  'plugin.replay': ({ store }, a, ctx) => replayPlugin(store, a.name, a.from, ctx, '--from', a.rebuild),
  'plugin.dead-letters': ({ store }, a) => deadLetters(store, a.name, take(a)),
  'plugin.retry': ({ store }, a, ctx) => retryPlugin(store, a.name, ctx),
  'plugin.remove': ({ store }, a, ctx) => removePlugin(store, a.name, ctx),
};

const NOT_RUNNING =
  'no server is running: this is recorded, and delivery happens when the server runs (`eventdbx start`)';
const afterChange = (running: unknown) =>
  running ? dim('applied by the running server (no restart needed)') : NOT_RUNNING;

const configured: Renderer = (r) => {
  const p = r.plugin as PluginView;
  const cursor = r.cursor as number;
  const head = r.head as number;
  const lines = [
    p.enabled
      ? `plugin ${bold(p.name)} ${r.created ? 'added' : 'updated'}: ${p.target}`
      : `plugin ${bold(p.name)} disabled (configuration kept; run the command without --disable to enable): ${p.target}`,
  ];
  const dropped = r.dropped_headers as string[] | undefined;
  if (dropped?.length)
    lines.push(
      `dropped header(s) ${dropped.join(', ')}: the endpoint moved to another origin, and they may be the old receiver's credentials; give them again with --header KEY=VALUE (or move with --keep-headers to keep them)`,
    );
  if (p.enabled) {
    lines.push(
      cursor <= head
        ? `delivers from position ${cursor} (the store is at position ${head}), then every new event`
        : `delivers every event committed from now on (position ${cursor})`,
    );
  }
  lines.push(afterChange(r.running));
  return lines.join('\n');
};

const mappingRows = (m: Mappings) =>
  (['base', 'postgres', 'sqlite'] as const).flatMap((plugin) =>
    Object.entries(m[plugin]).flatMap(([aggregate, fields]) =>
      Object.entries(fields).map(([field, datatype]) => ({
        aggregate,
        field,
        datatype,
        plugin: plugin === 'base' ? 'postgres, sqlite' : plugin,
      })),
    ),
  );

/** Positions, not events: the system events among them (audit entries) are skipped, not delivered. */
const replayed = (from: number, head: number): string =>
  from > head
    ? 'the events committed from now on'
    : `positions ${from} to ${head}; system events such as audit entries among them are skipped`;

const shorten = (s: string, n = 60) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The plugins the server refused to start, each with its whole reason (a table cell is cut short). */
const failures = (
  plugins: ReadonlyArray<{ name: string; failure?: { code?: string; message: string } | undefined }>,
): string[] =>
  plugins.flatMap((p) =>
    p.failure
      ? [
          // A diverged destination's plugin runs, and delivers nothing until it is rebuilt.
          red(
            `${p.name} ${p.failure.code === 'EDBX_ERR_PLUGIN_DIVERGED' ? 'not delivering' : 'not started'}: ${p.failure.message}`,
          ),
        ]
      : [],
  );

export const PLUGIN_HUMAN: Record<string, Renderer> = {
  ...Object.fromEntries(PLUGIN_KINDS.map((kind) => [`plugin.${kind}`, configured])),
  'plugin.map': (r) => {
    const m = r.mapping as { aggregate: string; field: string; datatype: string; plugin: string };
    return [
      `mapped ${m.aggregate}.${m.field} to ${m.datatype} for ${m.plugin === 'base' ? 'postgres and sqlite' : m.plugin}`,
      dim(
        'applies to columns created from now on; to retype an existing column, drop it and run `eventdbx plugin replay <name>`',
      ),
      afterChange(r.running),
    ].join('\n');
  },
  'plugin.list': (r) => {
    const plugins = table(
      (r.plugins as PluginView[]).map((p) => ({
        name: p.name,
        enabled: p.enabled ? 'yes' : 'no',
        target: p.target,
        retries: `${count(p.delivery.max_attempts, 'attempt')}, then ${p.delivery.on_failure}`,
      })),
    );
    const rows = mappingRows(r.mappings as Mappings);
    const out = [plugins, ...failures(r.plugins as PluginView[])].join('\n');
    return rows.length ? `${out}\n\n${bold('field mappings')}\n${table(rows)}` : out;
  },
  'plugin.status': (r) => {
    const out = table(
      (r.plugins as PluginStatus[]).map((p) => ({
        name: p.name,
        state: p.state,
        cursor: p.cursor,
        lag: p.lag,
        delivered: p.delivered,
        retries: p.retries,
        dead_letters: p.dead_letters,
        last_error: p.last_error ? shorten(`${p.last_error.at} ${p.last_error.message}`) : '',
      })),
    );
    if (!r.running) return `${out}\n${dim('no server is running: plugins deliver while the server runs')}`;
    const failed = (r.plugins as PluginStatus[]).filter((p) => p.state === 'failed');
    return [out, ...failures(failed.map((p) => ({ name: p.name, failure: p.last_error })))].join('\n');
  },
  'plugin.replay': (r) =>
    [
      ...((r.rebuilt as string[] | undefined) ?? []),
      `plugin ${bold(String(r.plugin))} delivers again from position ${r.from} (${replayed(r.from as number, r.head as number)})${(r.cleared_dead_letters as number) > 0 ? `; ${r.cleared_dead_letters} dead letter(s) cleared` : ''}`,
      afterChange(r.running),
    ].join('\n'),
  'plugin.dead-letters': (r) => {
    const list = r.dead_letters as DeadLetter[];
    const t = table(
      list.map((d) => ({
        position: d.position,
        aggregate: `${d.aggregate_type}/${d.aggregate_id}`,
        version: d.version,
        event: d.event_type,
        attempts: d.attempts,
        reason: d.reason,
      })),
    );
    return list.length < (r.total as number) ? `${t}\n${dim(`(${list.length} of ${r.total})`)}` : t;
  },
  'plugin.retry': (r) => {
    if (!r.running)
      return `${r.queued} dead letter(s) of ${r.plugin} will be retried when the server runs (\`eventdbx start\`)`;
    const o = r.outcome as RetryOutcome;
    return `retried ${o.retried} dead letter(s) of ${r.plugin}: ${o.delivered} delivered, ${o.failed} still failing`;
  },
  'plugin.remove': (r) =>
    `removed plugin ${r.plugin} with its cursor and dead letters (what it delivered stays in place)\n${afterChange(r.running)}`,
};
