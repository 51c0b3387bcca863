/**
 * Key layout (one byte tag, then fields; `\0` separates text fields, numbers are 8-byte big-endian so
 * byte order = numeric order). Names never contain `\0` (control characters are refused), so keys are
 * unambiguous and every aggregate's events form one contiguous, ordered range.
 *
 *   M type \0 id                    aggregate meta (version, state, Merkle frontier, archive flag)
 *   E type \0 id \0 version         event record
 *   N type \0 id \0 version         the perfect Merkle subtree hashes of the aggregate tree that the
 *                                   append of `version` completed: levels 0..t, 32 bytes each (level 0
 *                                   is the event's leaf hash; t = trailing one bits of version - 1)
 *   S type \0 id \0 version         snapshot of the state at version
 *   P position                      ledger entry: the perfect subtree hashes of the ledger tree this
 *                                   position completed (levels 0..t as for N; level 0 is the event
 *                                   hash), then `type \0 id \0 version`
 *   I event_id                      idempotency index: `type \0 id \0 version` of the event with that id
 *   G name                          store-wide metadata (layout version, ledger frontier, staged sequence)
 *   T seq                           staged (not yet committed) append
 *   K token-hash                    access token record (the token itself is never stored)
 *   H aggregate \0 version          schema of an aggregate type, one entry per version (sealed)
 *   X section name [\0 position]   plugins: config (c), delivery cursor (p), dead letters (d), field
 *                                   type mappings (m); values sealed (connection strings, headers)
 */

const SEP = Buffer.from([0]);

export const TAG = {
  meta: 0x4d, // M
  event: 0x45, // E
  node: 0x4e, // N
  snapshot: 0x53, // S
  position: 0x50, // P
  idempotency: 0x49, // I
  global: 0x47, // G
  staged: 0x54, // T
  token: 0x4b, // K
  schema: 0x48, // H
  plugin: 0x58, // X
} as const;

const TWO_32 = 0x1_0000_0000;

/** Writes a safe integer as 8 bytes big-endian (two 32-bit halves: no BigInt on the append path). */
function writeU64(b: Buffer, n: number, at: number): void {
  b.writeUInt32BE(Math.floor(n / TWO_32), at);
  b.writeUInt32BE(n % TWO_32, at + 4);
}

export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
}

export const readU64 = (b: Buffer, offset = 0): number =>
  b.readUInt32BE(offset) * TWO_32 + b.readUInt32BE(offset + 4);

/** The version that ends an event, node, snapshot or schema key (and an event reference). */
export const keyVersion = (key: Buffer): number => readU64(key, key.length - 8);

const tag = (t: number): Buffer => Buffer.from([t]);
const text = (s: string): Buffer => Buffer.from(s, 'utf8');

/**
 * `[tag] type \0 id [\0 version]` in one allocation: the keys (and event references) written for
 * every event. `tag` -1 = none.
 */
function aggregateKey(tagByte: number, type: string, id: string, version?: number): Buffer {
  const head = tagByte < 0 ? 0 : 1;
  const typeBytes = Buffer.byteLength(type);
  const idAt = head + typeBytes + 1;
  const idBytes = Buffer.byteLength(id);
  const end = idAt + idBytes;
  const b = Buffer.allocUnsafe(version === undefined ? end : end + 9);
  if (head) b[0] = tagByte;
  b.write(type, head, typeBytes, 'utf8');
  b[idAt - 1] = 0;
  b.write(id, idAt, idBytes, 'utf8');
  if (version !== undefined) {
    b[end] = 0;
    writeU64(b, version, end + 1);
  }
  return b;
}

/** `type \0 id` — the aggregate part shared by M, E, N and S keys. */
export const aggregatePart = (type: string, id: string): Buffer => aggregateKey(-1, type, id);

export const metaKey = (type: string, id: string): Buffer => aggregateKey(TAG.meta, type, id);
export const metaPrefix = (): Buffer => tag(TAG.meta);

export const eventPrefix = (type: string, id: string): Buffer =>
  Buffer.concat([tag(TAG.event), aggregatePart(type, id), SEP]);
export const eventKey = (type: string, id: string, version: number): Buffer =>
  aggregateKey(TAG.event, type, id, version);

export const nodePrefix = (type: string, id: string): Buffer =>
  Buffer.concat([tag(TAG.node), aggregatePart(type, id), SEP]);
export const nodeKey = (type: string, id: string, version: number): Buffer =>
  aggregateKey(TAG.node, type, id, version);

/**
 * The 1-based leaf (version or position) whose append completed the perfect node `(level, index)`:
 * its N (or P) entry holds that node at byte offset `32 * level`.
 */
export const completingLeaf = (level: number, index: number): number => (index + 1) * 2 ** level;

/** How many perfect nodes (levels 0..t) the append of 1-based leaf `n` completes: 1 + trailing ones of n - 1. */
export function completedCount(n: number): number {
  let count = 1;
  for (let rest = n - 1; rest % 2 === 1; rest = Math.floor(rest / 2)) count++;
  return count;
}

export const snapshotPrefix = (type: string, id: string): Buffer =>
  Buffer.concat([tag(TAG.snapshot), aggregatePart(type, id), SEP]);
export const snapshotKey = (type: string, id: string, version: number): Buffer =>
  aggregateKey(TAG.snapshot, type, id, version);

export function positionKey(position: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = TAG.position;
  writeU64(b, position, 1);
  return b;
}
export const positionPrefix = (): Buffer => tag(TAG.position);

/** A P entry: the ledger nodes completed at this position (level 0 first) and the event's reference. */
export interface LedgerEntry {
  /** The event hash (the ledger leaf). */
  readonly leaf: Buffer;
  /** Every completed node, levels 0..t, 32 bytes each. */
  readonly nodes: Buffer;
  readonly ref: EventRef;
}

export function encodeLedgerEntry(nodes: readonly Buffer[], ref: EventRef): Buffer {
  const refBytes = encodeRef(ref);
  const b = Buffer.allocUnsafe(32 * nodes.length + refBytes.length);
  nodes.forEach((n, i) => n.copy(b, 32 * i));
  refBytes.copy(b, 32 * nodes.length);
  return b;
}

/** Parse a P entry; undefined when it is too short to hold its nodes and a reference. */
export function decodeLedgerEntry(position: number, value: Buffer): LedgerEntry | undefined {
  const nodeBytes = 32 * completedCount(position);
  if (value.length < nodeBytes + 11) return undefined;
  return {
    leaf: value.subarray(0, 32),
    nodes: value.subarray(0, nodeBytes),
    ref: decodeRef(value.subarray(nodeBytes)),
  };
}

export const idempotencyKey = (eventId: string): Buffer =>
  Buffer.concat([tag(TAG.idempotency), text(eventId)]);

export const globalKey = (name: string): Buffer => Buffer.concat([tag(TAG.global), text(name)]);

export const stagedKey = (seq: number): Buffer => Buffer.concat([tag(TAG.staged), u64(seq)]);
export const stagedPrefix = (): Buffer => tag(TAG.staged);

/** An event reference `type \0 id \0 version`, used by the ledger and the idempotency index. */
export interface EventRef {
  readonly type: string;
  readonly id: string;
  readonly version: number;
}

export const encodeRef = (r: EventRef): Buffer => aggregateKey(-1, r.type, r.id, r.version);

export function decodeRef(b: Buffer): EventRef {
  const sep1 = b.indexOf(0);
  const rest = b.subarray(sep1 + 1, b.length - 9);
  return {
    type: b.subarray(0, sep1).toString('utf8'),
    id: rest.toString('utf8'),
    version: keyVersion(b),
  };
}

/** Split an M key back into type and id. */
export function decodeMetaKey(key: Buffer): { type: string; id: string } {
  const sep = key.indexOf(0, 1);
  return { type: key.subarray(1, sep).toString('utf8'), id: key.subarray(sep + 1).toString('utf8') };
}

export const tokenKey = (hash: string): Buffer => Buffer.concat([tag(TAG.token), text(hash)]);
export const tokenPrefix = (): Buffer => tag(TAG.token);

/** `H aggregate \0` — every version of one schema; `H` alone — all schemas. */
export const schemaPrefix = (aggregate?: string): Buffer =>
  aggregate === undefined ? tag(TAG.schema) : Buffer.concat([tag(TAG.schema), text(aggregate), SEP]);
export const schemaKey = (aggregate: string, version: number): Buffer =>
  Buffer.concat([schemaPrefix(aggregate), u64(version)]);
/** The aggregate type of an H key. */
export const decodeSchemaKey = (key: Buffer): string => key.subarray(1, key.indexOf(0, 1)).toString('utf8');

/** Sections of the plugin (X) keyspace. */
export const PLUGIN_SECTION = { config: 0x63, cursor: 0x70, deadLetter: 0x64, mappings: 0x6d } as const;
export type PluginSection = keyof typeof PLUGIN_SECTION;

/** `X section name`: one record per plugin (config, cursor) or store-wide (`mappings`, name ''). */
export const pluginKey = (section: PluginSection, name: string): Buffer =>
  Buffer.concat([tag(TAG.plugin), Buffer.from([PLUGIN_SECTION[section]]), text(name)]);
export const pluginSectionPrefix = (section: PluginSection): Buffer =>
  Buffer.concat([tag(TAG.plugin), Buffer.from([PLUGIN_SECTION[section]])]);
/** The plugin name of an `X c` or `X p` key. */
export const decodePluginKey = (key: Buffer): string => key.subarray(2).toString('utf8');
/** `X d name \0 position`: dead letters of a plugin in position order. */
export const deadLetterPrefix = (name: string): Buffer => Buffer.concat([pluginKey('deadLetter', name), SEP]);
export const deadLetterKey = (name: string, position: number): Buffer =>
  Buffer.concat([deadLetterPrefix(name), u64(position)]);
