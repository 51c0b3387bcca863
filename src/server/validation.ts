/**
 * JSON-schema (ajv) validation failures as registry errors: the documented specific code where one
 * exists (payload, field value, event type, event id, expected version), else EDBX_ERR_INVALID_ARGUMENT
 * naming the field (a missing one as required); always with the value that was sent (ajv runs with
 * `verbose`, so each error carries it).
 */
import type { FastifySchemaValidationError } from 'fastify';
import { type EventDbxError, err } from '../core/errors.js';

/** "null", "an array", "an object", "a string", … as the payload messages say it. */
export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const t = typeof v;
  return t === 'object' || t === 'undefined' ? `an ${t}` : `a ${t}`;
}

/** JSON Pointer (`/payload/a~1b`) → its segments (`['payload', 'a/b']`). */
const segments = (pointer: string): string[] =>
  pointer === ''
    ? []
    : pointer
        .slice(1)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));

export function fromValidation(v: FastifySchemaValidationError, context: string | undefined): EventDbxError {
  const path = segments(v.instancePath);
  const data = (v as { data?: unknown }).data;
  const last = path.at(-1);
  const parent = path.at(-2);
  if (context === 'body') {
    if (last === 'payload') return err('EDBX_ERR_INVALID_PAYLOAD', { actual: describeType(data) });
    if (parent === 'payload')
      return err('EDBX_ERR_INVALID_FIELD_VALUE', { field: last, actual: describeType(data) });
    if (last === 'event_type') return err('EDBX_ERR_INVALID_EVENT_TYPE', { value: data });
    if (last === 'event_id') return err('EDBX_ERR_INVALID_EVENT_ID', { value: data });
    if (last === 'expected_version') return err('EDBX_ERR_INVALID_EXPECTED_VERSION', { value: data });
    if (last === 'snapshot_threshold') return err('EDBX_ERR_INVALID_SNAPSHOT_THRESHOLD', { value: data });
  }
  const name = [context ?? 'request', ...path].join('.');
  if (v.keyword === 'additionalProperties') {
    const field = (v.params as { additionalProperty?: string }).additionalProperty;
    return err('EDBX_ERR_INVALID_ARGUMENT', {
      name: `${name}.${field}`,
      value: (data as Record<string, unknown> | undefined)?.[field!],
      reason: `unknown field ${JSON.stringify(field)}: remove it (/openapi.json lists the fields of each route)`,
    });
  }
  if (v.keyword === 'required') {
    const field = (v.params as { missingProperty?: string }).missingProperty;
    return err('EDBX_ERR_INVALID_ARGUMENT', { name: `${name}.${field}`, missing: true });
  }
  // A query parameter given twice arrives as an array.
  if ((context === 'querystring' || context === 'headers') && Array.isArray(data)) {
    return err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: data,
      reason: 'is given more than once: give it once',
    });
  }
  // A whole number beyond 2^53−1, kept as the digits sent (json-body.ts): "must be integer" would be wrong.
  const range = (v as { parentSchema?: { type?: unknown; minimum?: unknown; maximum?: unknown } })
    .parentSchema;
  if (typeof data === 'bigint' && (range?.type === 'integer' || range?.type === 'number')) {
    const min = typeof range?.minimum === 'number' ? range.minimum : 0;
    const max = typeof range?.maximum === 'number' ? range.maximum : Number.MAX_SAFE_INTEGER;
    return err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: data,
      reason: `use a whole number from ${min} to ${max}`,
    });
  }
  return err('EDBX_ERR_INVALID_ARGUMENT', { name, value: data, reason: v.message ?? 'is invalid' });
}
