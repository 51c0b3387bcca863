/**
 * How an event is stored (the plaintext, before the record codec seals it):
 *
 *   0x01 | hash (32) | merkle_root (32) | 0x00 | RFC 8785 canonical JSON of the record without
 *                                               `hash` and `merkle_root` (the leaf data)
 *
 * The stored bytes are the leaf data itself, so an append canonicalises once and serialises nothing
 * else, and verification hashes the stored bytes directly: `0x00 | leaf data` is exactly the RFC 6962
 * leaf-hash input, hashed in place without a copy. Since the leaf hash is a SHA-256 of these bytes,
 * any change to them shows, whatever it is.
 *
 * Records written before this format (plain JSON of the whole record, first byte `{`) still open.
 */
import { err } from '../core/errors.js';
import { type EventRecord, eventIssuer, leafJsonOf } from '../core/event.js';
import { HASH_BYTES, sha256 } from '../core/merkle/index.js';
import type { RecordCodec } from './codec.js';

const FORMAT = 0x01;
const LEGACY_JSON = 0x7b; // '{'
const HASH_AT = 1;
const ROOT_AT = HASH_AT + HASH_BYTES;
const LEAF_INPUT_AT = ROOT_AT + HASH_BYTES;

/** An event being written: its stored bytes, with the hashes filled in once known. */
export class StoredEventBuilder {
  readonly plain: Buffer;

  constructor(leafJson: string) {
    const bytes = Buffer.byteLength(leafJson);
    this.plain = Buffer.allocUnsafe(LEAF_INPUT_AT + 1 + bytes);
    this.plain[0] = FORMAT;
    this.plain[LEAF_INPUT_AT] = 0x00;
    this.plain.write(leafJson, LEAF_INPUT_AT + 1, bytes, 'utf8');
  }

  /** The RFC 6962 leaf hash: SHA-256(0x00 | leaf data). */
  leafHash(): Buffer {
    return sha256(this.plain.subarray(LEAF_INPUT_AT));
  }

  finish(hash: Buffer, root: Buffer): Buffer {
    hash.copy(this.plain, HASH_AT);
    root.copy(this.plain, ROOT_AT);
    return this.plain;
  }
}

/** A stored event, opened: its fields plus the raw hashes and leaf-hash input. */
export interface OpenedEvent {
  /** The record's fields as stored (without `hash` and `merkle_root`; see `servedRecord`). */
  readonly fields: LeafFields;
  /** The stored leaf hash and root (what `hash` and `merkle_root` say), as bytes. */
  readonly hash: Buffer;
  readonly root: Buffer;
  /** SHA-256 of this is the leaf hash the stored bytes really have. */
  readonly leafInput: Buffer;
}

export interface LeafFields {
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  payload: EventRecord['payload'];
  metadata: EventRecord['metadata'];
  version: number;
  position: number;
}

/** Decode stored plaintext. Throws EDBX_ERR_INTEGRITY naming `where` when it is malformed. */
export function decodeEvent(plain: Buffer, where: string): OpenedEvent {
  const bad = (reason: string) => err('EDBX_ERR_INTEGRITY', { where, reason });
  if (plain[0] === LEGACY_JSON) return decodeLegacy(plain, bad);
  if (plain[0] !== FORMAT || plain.length <= LEAF_INPUT_AT + 1 || plain[LEAF_INPUT_AT] !== 0x00) {
    throw bad('the stored event is malformed');
  }
  let p: LeafFields;
  try {
    p = JSON.parse(plain.toString('utf8', LEAF_INPUT_AT + 1)) as LeafFields;
  } catch {
    throw bad('the stored event is not valid JSON');
  }
  if (typeof p !== 'object' || p === null || typeof p.metadata !== 'object' || p.metadata === null) {
    throw bad('the stored event lacks its fields');
  }
  return {
    fields: p,
    hash: plain.subarray(HASH_AT, ROOT_AT),
    root: plain.subarray(ROOT_AT, LEAF_INPUT_AT),
    leafInput: plain.subarray(LEAF_INPUT_AT),
  };
}

/** The record as served, fields in the documented order (the canonical form sorts them). */
export function servedRecord(e: OpenedEvent): EventRecord {
  const p = e.fields;
  return {
    aggregate_type: p.aggregate_type,
    aggregate_id: p.aggregate_id,
    event_type: p.event_type,
    payload: p.payload,
    metadata: {
      event_id: p.metadata.event_id,
      created_at: p.metadata.created_at,
      issued_by: eventIssuer(p.metadata.issued_by),
    },
    version: p.version,
    position: p.position,
    hash: e.hash.toString('hex'),
    merkle_root: e.root.toString('hex'),
  };
}

function decodeLegacy(plain: Buffer, bad: (reason: string) => Error): OpenedEvent {
  let record: EventRecord;
  try {
    record = JSON.parse(plain.toString('utf8')) as EventRecord;
  } catch {
    throw bad('the stored event is not valid JSON');
  }
  const hex = (s: unknown) => Buffer.from(typeof s === 'string' ? s : '', 'hex');
  // Legacy records hold the whole record; its leaf data is recomputed by the caller that needs it.
  return {
    fields: record,
    hash: hex(record.hash),
    root: hex(record.merkle_root),
    leafInput: Buffer.alloc(0),
  };
}

/** Whether `decodeEvent` returned a legacy record (its `leafInput` is empty: recompute the leaf). */
export const isLegacy = (e: OpenedEvent): boolean => e.leafInput.length === 0;

/** Unseal and decode a stored event. */
export const openStoredEvent = (codec: RecordCodec, sealed: Buffer, where: string): OpenedEvent =>
  decodeEvent(codec.open(sealed, where), where);

/** Unseal a stored event into the record as served. */
export const openEvent = (codec: RecordCodec, sealed: Buffer, where: string): EventRecord =>
  servedRecord(openStoredEvent(codec, sealed, where));

/** Whether a record names the coordinates of the key it is stored at. */
export const belongsAt = (
  e: { readonly aggregate_type: string; readonly aggregate_id: string; readonly version: number },
  type: string,
  id: string,
  version: number,
): boolean => e.aggregate_type === type && e.aggregate_id === id && e.version === version;

/**
 * Unseal the event stored at `type/id@version`, refusing a record that names other coordinates (one
 * copied or moved onto this key): reads never serve it as this event.
 */
export function openEventAt(
  codec: RecordCodec,
  sealed: Buffer,
  type: string,
  id: string,
  version: number,
): EventRecord {
  const where = `event ${type}/${id}@${version}`;
  const e = openEvent(codec, sealed, where);
  if (!belongsAt(e, type, id, version))
    throw err('EDBX_ERR_INTEGRITY', { where, reason: 'the record stored there is another event' });
  return e;
}

/**
 * Stored bytes of a record as given (its `hash` and `merkle_root` taken as they are, not recomputed):
 * for tools that move or rewrite events, and for tests that forge them.
 */
export function sealEvent(codec: RecordCodec, record: EventRecord): Buffer {
  const stored = new StoredEventBuilder(leafJsonOf(record));
  return codec.seal(stored.finish(Buffer.from(record.hash, 'hex'), Buffer.from(record.merkle_root, 'hex')));
}
