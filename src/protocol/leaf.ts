/**
 * What an event's Merkle leaf is made of: the RFC 8785 canonical JSON of the record as served, without
 * `hash` and `merkle_root`. Anyone holding a record can recompute its leaf hash from it alone.
 *
 * Deliberately independent of the server's encoder (src/core/canonical.ts): the client checks the
 * server with a second implementation, and test/client/protocol.test.ts checks that the two agree.
 */
import canonicalize from 'canonicalize';
import type { EventRecord } from './records.js';

/**
 * The canonical bytes hashed (with the RFC 6962 0x00 leaf prefix) into the aggregate and ledger trees.
 *
 * @example
 * leafHash(leafBytes(record)).toString('hex') === record.hash; // for an untampered record
 */
export function leafBytes(record: EventRecord): Buffer {
  const { hash: _hash, merkle_root: _root, ...rest } = record;
  const text = canonicalize(rest);
  if (text === undefined) throw new TypeError('record cannot be canonicalized');
  return Buffer.from(text, 'utf8');
}
