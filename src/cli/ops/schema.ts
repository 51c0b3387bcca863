/** Schema operations and their human-readable output. */
import type { Schema } from '../../core/schema.js';
import {
  addSchemaEvents,
  alterSchema,
  createSchema,
  getSchema,
  removeSchemaEvent,
  schemaHistory,
} from '../../store/schemas.js';
import { bold, dim, keyValues, table } from '../output.js';
import type { Op, Renderer } from './types.js';

export const SCHEMA_OPS: Record<string, Op> = {
  'schema.create': async ({ store }, a, ctx) =>
    createSchema(
      store,
      { aggregate: a.aggregate, events: a.events, snapshotThreshold: a.snapshotThreshold },
      ctx,
    ),
  'schema.add': async ({ store }, a, ctx) => addSchemaEvents(store, a.aggregate, a.events, ctx),
  'schema.alter': async ({ store }, a, ctx) =>
    alterSchema(
      store,
      a.aggregate,
      {
        event: a.event,
        snapshotThreshold: a.snapshotThreshold,
        lock: a.lock,
        field: a.field,
        add: a.add,
        remove: a.remove,
      },
      ctx,
    ),
  'schema.remove': async ({ store }, a, ctx) => removeSchemaEvent(store, a.aggregate, a.event, ctx),
  'schema.show': async ({ store }, a) => ({
    schema: await getSchema(store, a.aggregate),
    ...(a.history ? { history: await schemaHistory(store, a.aggregate) } : {}),
  }),
};

/** The row of a schema in `schema list` (HUMAN_LISTS in human.ts). */
export const schemaRow = (s: Schema) => ({
  aggregate: s.aggregate,
  version: s.version,
  events: Object.keys(s.events).join(','),
  locked: s.locked ? 'yes' : s.locked_fields.length ? `fields ${s.locked_fields.join(',')}` : 'no',
  snapshots: thresholdText(s.snapshot_threshold),
});

const fieldsText = (fields: readonly string[]): string => (fields.length ? fields.join(', ') : '(any)');
const thresholdText = (n: number): string => (n === 0 ? 'off' : `every ${n} events`);

function describe(s: Schema): string {
  const head = keyValues({
    aggregate: s.aggregate,
    version: s.version,
    status: s.locked ? 'locked (no appends)' : 'open',
    locked_fields: s.locked_fields.length ? s.locked_fields.join(', ') : '(none)',
    snapshots: thresholdText(s.snapshot_threshold),
    updated: `${s.updated_at} by ${s.updated_by.group}/${s.updated_by.user}`,
  });
  const events = table(
    Object.entries(s.events).map(([event, d]) => ({ event, fields: fieldsText(d.fields) })),
  );
  return `${head}\n\n${bold('events')}\n${events}`;
}

const changed: Renderer = (r) => {
  const s = r.schema as Schema;
  if (r.changed === false) return `schema ${s.aggregate} unchanged (version ${s.version}): nothing to change`;
  return `changed schema ${s.aggregate} (version ${s.version}): ${s.change}\n\n${describe(s)}`;
};

export const SCHEMA_HUMAN: Record<string, Renderer> = {
  'schema.create': (r) => {
    const s = r.schema as Schema;
    return `created schema ${s.aggregate} (version ${s.version})\n\n${describe(s)}`;
  },
  'schema.add': changed,
  'schema.alter': changed,
  'schema.remove': changed,
  'schema.show': (r) => {
    const main = describe(r.schema as Schema);
    const history = r.history as Schema[] | undefined;
    if (!history) return main;
    const rows = history.map((h) => ({
      version: h.version,
      at: h.updated_at,
      by: `${h.updated_by.group}/${h.updated_by.user}`,
      change: h.change,
    }));
    return `${main}\n\n${bold('history')} ${dim('(oldest first)')}\n${table(rows)}`;
  },
};
