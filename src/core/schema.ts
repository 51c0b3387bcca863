/**
 * Schemas: which events an aggregate type accepts, which fields each event may set, and locks. Pure:
 * the model, the changes the `schema` commands make, and the check of an append against a schema.
 *
 * An event with no declared fields accepts any field; an event with declared fields accepts only
 * those. A locked aggregate accepts no event; a locked field may be set by no event.
 *
 * @example
 * const body = newSchema('patient', parseNames('patient-added,patient-updated', 'event'), 100);
 * checkAppend(compileSchema({ ...body, version: 1 } as Schema), 'true',
 *   { aggregate_type: 'patient', event_type: 'patient-added', payload: { name: 'Jane' } });
 */
import { err } from './errors.js';
import type { IssuedBy, Payload } from './event.js';
import { aggregateType, eventType, fieldName, wholeNumber } from './names.js';

/** `true`: aggregates that have a schema are validated; `strict`: aggregates without one are refused too; `false`: nothing is validated. */
export type RestrictMode = 'true' | 'strict' | 'false';
export const RESTRICT_MODES: readonly RestrictMode[] = ['true', 'strict', 'false'];

export interface EventSchema {
  /** Fields the event may set; empty = any field. Sorted. */
  readonly fields: readonly string[];
}

/** What a schema says (the part the commands change). */
export interface SchemaBody {
  readonly aggregate: string;
  /** Event name → declaration. Read with `eventOf` (names like `constructor` are valid). */
  readonly events: Readonly<Record<string, EventSchema>>;
  /** No event may be appended to any aggregate of this type. */
  readonly locked: boolean;
  /** Fields no event may set. Sorted. */
  readonly locked_fields: readonly string[];
  /** Automatic snapshot every n events (0 = off). */
  readonly snapshot_threshold: number;
}

/** One stored version of a schema (every change writes a new version; older ones are kept). */
export interface Schema extends SchemaBody {
  /** 1-based; bumped by every change. */
  readonly version: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly updated_by: IssuedBy;
  /** What this version changed, e.g. `event patient-added: added fields name`. */
  readonly change: string;
}

/** A schema change: the new body and a one-line description (null = nothing would change). */
export type SchemaChange = { readonly body: SchemaBody; readonly change: string } | null;

export interface AlterRequest {
  readonly event?: unknown;
  readonly snapshotThreshold?: unknown;
  readonly lock?: unknown;
  readonly field?: unknown;
  readonly add?: unknown;
  readonly remove?: unknown;
}

/** A schema prepared for checking appends quickly. */
export interface CompiledSchema {
  readonly schema: Schema;
  /** Event → permitted fields (null = any field). */
  readonly events: ReadonlyMap<string, ReadonlySet<string> | null>;
  readonly lockedFields: ReadonlySet<string>;
}

export const eventOf = (s: SchemaBody, event: string): EventSchema | undefined =>
  Object.hasOwn(s.events, event) ? s.events[event] : undefined;

export const eventNames = (s: SchemaBody): string[] => Object.keys(s.events).sort();

const listText = (xs: readonly string[]): string => (xs.length ? xs.join(', ') : '(none)');
const sortedEvents = (events: Iterable<[string, EventSchema]>): Record<string, EventSchema> =>
  Object.fromEntries([...events].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * Parse a list of event or field names: `a,b,c` (the CLI's lists, whose items are trimmed: `a, b`) or
 * an array (JSON, taken as sent: nothing is coerced silently); duplicates are dropped, order kept.
 * A field name in `stored` (one the schema already holds, to remove) is taken as it is: a name stored
 * before the rule of visible characters can still be removed. A new field name holds no comma: the
 * CLI's `--add`/`--remove` lists could never name it.
 */
export function parseNames(
  value: unknown,
  kind: 'event' | 'field',
  stored: ReadonlySet<string> = new Set(),
): string[] {
  const items = Array.isArray(value)
    ? (value as unknown[])
    : typeof value === 'string'
      ? value.split(',').map((v) => v.trim())
      : [value];
  const check = kind === 'event' ? eventType : (v: unknown) => declaredField(String(v), stored);
  const names = items.map((v) => check(v) as string);
  return [...new Set(names)];
}

/** A field name to declare for an event (or one of `stored`, the event's own, to remove). */
function declaredField(value: string, stored: ReadonlySet<string>): string {
  if (stored.has(value)) return value;
  fieldName(value);
  if (value.includes(','))
    throw err('EDBX_ERR_INVALID_FIELD_NAME', {
      value,
      reason:
        "a field a schema declares cannot hold a comma: the command line's lists of fields are comma-separated, so no command could name it; rename the field",
    });
  return value;
}

export function parseThreshold(value: unknown): number {
  const n = wholeNumber(value);
  if (n === undefined) throw err('EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD', { value });
  return n;
}

export function parseLock(value: unknown): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw err('EDBX_ERR_INVALID_ARGUMENT', { name: 'lock', value, reason: 'use true or false' });
}

/** The first version of a schema. */
export function newSchema(aggregate: string, events: readonly string[], threshold: number): SchemaBody {
  return {
    aggregate: aggregateType(aggregate),
    events: sortedEvents(events.map((e) => [e, { fields: [] }])),
    locked: false,
    locked_fields: [],
    snapshot_threshold: threshold,
  };
}

export function addEvents(s: SchemaBody, events: readonly string[]): SchemaChange {
  for (const e of events) {
    if (eventOf(s, e)) throw err('EDBX_ERR_SCHEMA_EVENT_EXISTS', { aggregate: s.aggregate, event: e });
  }
  const next = [
    ...Object.entries(s.events),
    ...events.map((e): [string, EventSchema] => [e, { fields: [] }]),
  ];
  return { body: { ...s, events: sortedEvents(next) }, change: `added events ${events.join(', ')}` };
}

export function removeEvent(s: SchemaBody, event: string): SchemaChange {
  requireEvent(s, event);
  if (Object.keys(s.events).length === 1)
    throw err('EDBX_ERR_SCHEMA_LAST_EVENT', { aggregate: s.aggregate, event });
  const rest = Object.entries(s.events).filter(([e]) => e !== event);
  return { body: { ...s, events: sortedEvents(rest) }, change: `removed event ${event}` };
}

function requireEvent(s: SchemaBody, event: string): EventSchema {
  const e = eventOf(s, event);
  if (!e) {
    throw err('EDBX_ERR_SCHEMA_EVENT_NOT_FOUND', {
      aggregate: s.aggregate,
      event,
      declared: listText(eventNames(s)),
    });
  }
  return e;
}

const usage = (reason: string) => err('EDBX_ERR_USAGE', { reason });
const given = (v: unknown): boolean => v !== undefined && v !== null;

/**
 * `schema alter`: `event` + `add`/`remove` edit an event's fields; `lock` without `field` locks the
 * aggregate type; `field` + `lock` locks one field; `snapshotThreshold` sets automatic snapshots.
 */
export function alterSchema(s: SchemaBody, req: AlterRequest): SchemaChange {
  const hasFields = given(req.add) || given(req.remove);
  if (
    !given(req.event) &&
    !hasFields &&
    !given(req.lock) &&
    !given(req.snapshotThreshold) &&
    !given(req.field)
  )
    throw usage(
      'schema alter needs a change: an event with fields to add and/or remove, a lock (true or false; with a field to lock just that field), or a snapshot threshold',
    );
  if (hasFields && !given(req.event))
    throw usage('fields to add or remove belong to one event: also give the event');
  // The lock rule first: an event with a lock (and no field) is that mistake, not a missing field list.
  if (given(req.lock) && !given(req.field) && given(req.event))
    throw usage(
      'a lock without a field locks the whole aggregate type, not one event: drop the event, or give a field to lock',
    );
  if (given(req.event) && !hasFields) throw usage('an event needs fields to add and/or remove');
  if (given(req.field) && !given(req.lock))
    throw usage('a field needs a lock (true: no event may set the field, false: unlock it)');

  let body: SchemaBody = s;
  const changes: string[] = [];
  if (given(req.event)) {
    const event = eventType(req.event);
    const decl = requireEvent(s, event);
    const add = given(req.add) ? parseNames(req.add, 'field') : [];
    const remove = given(req.remove) ? parseNames(req.remove, 'field', new Set(decl.fields)) : [];
    const both = add.find((f) => remove.includes(f));
    if (both !== undefined) throw usage(`field ${JSON.stringify(both)} is both added and removed`);
    const fields = new Set(decl.fields);
    for (const f of remove) {
      if (!fields.delete(f)) {
        throw err('EDBX_ERR_SCHEMA_FIELD_NOT_FOUND', {
          aggregate: s.aggregate,
          event,
          field: f,
          declared: listText(decl.fields),
        });
      }
    }
    // Adding a field the event already declares asks for what the schema says: no change.
    const added = add.filter((f) => !fields.has(f));
    for (const f of added) fields.add(f);
    if (fields.size === 0 && decl.fields.length > 0)
      throw err('EDBX_ERR_SCHEMA_LAST_FIELD', {
        aggregate: s.aggregate,
        event,
        fields: listText(remove),
      });
    const parts = [
      ...(added.length ? [`added fields ${added.join(', ')}`] : []),
      ...(remove.length ? [`removed fields ${remove.join(', ')}`] : []),
    ];
    if (parts.length) {
      const events = Object.entries(s.events).map(([e, d]): [string, EventSchema] =>
        e === event ? [e, { fields: [...fields].sort() }] : [e, d],
      );
      body = { ...body, events: sortedEvents(events) };
      changes.push(`event ${event}: ${parts.join(', ')}`);
    }
  }
  if (given(req.lock)) {
    const lock = parseLock(req.lock);
    if (given(req.field)) {
      const locked = new Set(body.locked_fields);
      // A name locked before the rule of visible characters can still be unlocked.
      const field = lock || !locked.has(String(req.field)) ? fieldName(String(req.field)) : String(req.field);
      if (locked.has(field) !== lock) {
        if (lock) locked.add(field);
        else locked.delete(field);
        body = { ...body, locked_fields: [...locked].sort() };
        changes.push(`${lock ? 'locked' : 'unlocked'} field ${field}`);
      }
    } else if (body.locked !== lock) {
      body = { ...body, locked: lock };
      changes.push(lock ? 'locked the aggregate type' : 'unlocked the aggregate type');
    }
  }
  if (given(req.snapshotThreshold)) {
    const n = parseThreshold(req.snapshotThreshold);
    if (n !== body.snapshot_threshold) {
      body = { ...body, snapshot_threshold: n };
      changes.push(n === 0 ? 'automatic snapshots off' : `snapshot every ${n} events`);
    }
  }
  return changes.length ? { body, change: changes.join('; ') } : null;
}

export function compileSchema(schema: Schema): CompiledSchema {
  return {
    schema,
    events: new Map(
      Object.entries(schema.events).map(([e, d]) => [e, d.fields.length ? new Set(d.fields) : null]),
    ),
    lockedFields: new Set(schema.locked_fields),
  };
}

/**
 * Check an append against the schema of its aggregate type; throws a coded error naming the
 * aggregate, event and field to refuse it. System aggregates (types starting with '$') are exempt.
 */
export function checkAppend(
  compiled: CompiledSchema | undefined,
  mode: RestrictMode,
  req: { readonly aggregate_type: string; readonly event_type: string; readonly payload: Payload },
): void {
  if (mode === 'false' || req.aggregate_type.startsWith('$')) return;
  const aggregate = req.aggregate_type;
  const event = req.event_type;
  if (!compiled) {
    if (mode === 'strict') throw err('EDBX_ERR_SCHEMA_REQUIRED', { aggregate, event });
    return;
  }
  if (compiled.schema.locked) throw err('EDBX_ERR_AGGREGATE_LOCKED', { aggregate, event });
  const permitted = compiled.events.get(event);
  if (permitted === undefined) {
    throw err('EDBX_ERR_EVENT_NOT_IN_SCHEMA', {
      aggregate,
      event,
      declared: listText(eventNames(compiled.schema)),
    });
  }
  const keys = Object.keys(req.payload);
  for (const field of keys) {
    if (compiled.lockedFields.has(field)) throw err('EDBX_ERR_FIELD_LOCKED', { aggregate, event, field });
  }
  if (permitted === null) return;
  for (const field of keys) {
    if (!permitted.has(field)) {
      throw err('EDBX_ERR_FIELD_NOT_PERMITTED', {
        aggregate,
        event,
        field,
        // A locked field is not permitted, declared or not (writing it is EDBX_ERR_FIELD_LOCKED).
        permitted: listText([...permitted].filter((f) => !compiled.lockedFields.has(f)).sort()),
      });
    }
  }
}
