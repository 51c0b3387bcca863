/**
 * The event record, exactly as the API serves it, and what is hashed into the Merkle tree.
 *
 * Leaf data is the RFC 8785 canonical JSON of the record without `hash` and `merkle_root`: anyone holding
 * a record as served can recompute its leaf hash (see `leafDataOf`).
 */
import { canonicalJson } from './canonical.js';
import { err } from './errors.js';
import { fieldName, isWellFormedText } from './names.js';

// The record shapes are the wire protocol's (one definition, shared with the client SDK).
import type { EventIssuer, EventRecord, Payload } from '../protocol/records.js';

export type { EventIssuer, EventMetadata, EventRecord, IssuedBy, Payload } from '../protocol/records.js';

export type UnsealedRecord = Omit<EventRecord, 'hash' | 'merkle_root'>;

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
/**
 * Default bound on an aggregate's state, measured as a payload is (`payloadBytes`): every append
 * re-seals and rewrites the whole state, and a read answers it whole, so its size is their cost.
 */
export const DEFAULT_MAX_STATE_BYTES = 16 * 1024 * 1024;

/** Bytes one field adds to a payload or state: its UTF-8 name and value, quotes and separators. */
export const fieldBytes = (name: string, value: string): number =>
  Buffer.byteLength(name) + Buffer.byteLength(value) + 6;

/** The size a payload (or an aggregate's state) is measured by against the configured limits. */
export function payloadBytes(payload: Payload): number {
  let size = 2;
  for (const [name, value] of Object.entries(payload)) size += fieldBytes(name, value);
  return size;
}

/**
 * Sizes of states already measured. A state is never changed in place (an append folds into a new
 * object), so a size, once known, stays true, and an append measures only the fields it sets.
 */
const stateSizes = new WeakMap<Payload, number>();

/** `payloadBytes` of a state, measured once per state object. */
export function stateBytes(state: Payload): number {
  let size = stateSizes.get(state);
  if (size === undefined) stateSizes.set(state, (size = payloadBytes(state)));
  return size;
}

/**
 * `foldState`, its result's size (`stateBytes`) worked out from `state`'s and the fields `payload`
 * sets, rather than measured again whole.
 */
export function foldSized(state: Payload, payload: Payload): Payload {
  let size = stateBytes(state);
  for (const [name, value] of Object.entries(payload)) {
    const old = Object.prototype.hasOwnProperty.call(state, name) ? state[name] : undefined;
    size += fieldBytes(name, value) - (old === undefined ? 0 : fieldBytes(name, old));
  }
  const folded = foldState(state, payload);
  stateSizes.set(folded, size);
  return folded;
}

/**
 * Memory a state held in a cache takes, estimated from its size: JavaScript strings take up to two
 * bytes a character, and each field a property slot besides (its 6 bytes, tripled, stand for it).
 * Caches bounded in bytes use it: one state may be a few bytes or tens of megabytes.
 */
export const stateMemoryBytes = (state: Payload): number => 3 * stateBytes(state);

const describe = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : `a${typeof v === 'object' ? 'n object' : ' ' + typeof v}`;

/**
 * String-only storage: strings stay, finite numbers and booleans become their string form, anything
 * else is refused naming the field. Keys come out sorted (the canonical order the record is hashed and
 * stored in), so a record reads back exactly as its append returned it.
 */
export function normalizePayload(input: unknown, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): Payload {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw err('EDBX_ERR_INVALID_PAYLOAD', { actual: describe(input) });
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let size = 2;
  const fields = input as Record<string, unknown>;
  for (const key of Object.keys(fields).sort()) {
    const value = fields[key];
    fieldName(key);
    let text: string;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'boolean') text = String(value);
    else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else
      throw err('EDBX_ERR_INVALID_FIELD_VALUE', {
        field: key,
        actual: typeof value === 'number' ? 'not a finite number' : describe(value),
      });
    if (!isWellFormedText(text)) {
      throw err('EDBX_ERR_INVALID_FIELD_VALUE', {
        field: key,
        reason: text.includes('\u0000')
          ? 'holds a NUL character (U+0000): remove it (payload values are text without NUL)'
          : 'holds a lone surrogate (half of a UTF-16 pair, not text): send the value as well-formed Unicode text',
      });
    }
    out[key] = text;
    size += fieldBytes(key, text);
  }
  if (size > maxBytes) throw err('EDBX_ERR_PAYLOAD_TOO_LARGE', { size, limit: maxBytes });
  return { ...out };
}

/** Canonical JSON hashed as the Merkle leaf of an event (the record without hash and root). */
export function leafJsonOf(record: UnsealedRecord | EventRecord): string {
  const { hash: _h, merkle_root: _r, ...rest } = record as EventRecord;
  return canonicalJson(rest);
}

const str = JSON.stringify;

/**
 * `leafJsonOf` for a record built by an append (exactly the fields of `UnsealedRecord`, payload values
 * strings), written out directly: the append hot path. Keys are in RFC 8785 order (UTF-16 code
 * units), strings as JSON.stringify writes them and integers as their decimal form, which is what
 * RFC 8785 prescribes; test/canonical.test.ts checks it equals `leafJsonOf` on random records.
 */
export function appendLeafJson(r: UnsealedRecord): string {
  const keys = Object.keys(r.payload).sort();
  let payload = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    payload += `${i === 0 ? '' : ','}${str(k)}:${str(r.payload[k])}`;
  }
  const m = r.metadata;
  const by = m.issued_by;
  // "group" < "token" < "user": the token id, when there is one, goes between the two.
  const token = by.token === undefined ? '' : `"token":${str(by.token)},`;
  return (
    `{"aggregate_id":${str(r.aggregate_id)},"aggregate_type":${str(r.aggregate_type)},` +
    `"event_type":${str(r.event_type)},"metadata":{"created_at":${str(m.created_at)},` +
    `"event_id":${str(m.event_id)},"issued_by":{"group":${str(by.group)},${token}` +
    `"user":${str(by.user)}}},"payload":{${payload}},"position":${r.position},` +
    `"version":${r.version}}`
  );
}

/**
 * Who wrote an event, as its record holds it: group, user and, when the write was made with a token,
 * the token's id (copied, so nothing else a caller's object carries ends up in the record).
 */
export const eventIssuer = (by: EventIssuer): EventIssuer =>
  by.token === undefined
    ? { group: by.group, user: by.user }
    : { group: by.group, user: by.user, token: by.token };

/** Canonical bytes hashed as the Merkle leaf of an event. */
export const leafDataOf = (record: UnsealedRecord | EventRecord): Buffer =>
  Buffer.from(leafJsonOf(record), 'utf8');

/** Fold payloads into state: later values overwrite earlier ones. */
export function foldState(state: Payload, payload: Payload): Payload {
  return { ...state, ...payload };
}

/** Structural equality of two payloads (same keys and values, order ignored). */
export function samePayload(a: Payload, b: Payload): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}
