/**
 * Opening a store: the ledger head as stored (its audit trailer checked against the audit log's
 * meta), the storage layout stamp, the snapshot thresholds and the token records; then, once the
 * store is built, whether the ledger head's entries back it.
 */
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { type Frontier, decodeFrontier, emptyFrontier } from '../core/merkle/index.js';
import type { TokenRecord } from '../core/tokens.js';
import { type StorageEngine, prefixEnd } from '../storage/engine.js';
import { VERSION } from '../version.js';
import { AUDIT_ID, AUDIT_TYPE } from './audit-log.js';
import { openMetaAt } from './bound.js';
import { openJson, plainCodec } from './codec.js';
import * as K from './keys.js';
import { type LedgerHead, decodeLedgerHead, frontierBytes } from './ledger-head.js';
import type { EventStoreOptions } from './options.js';
import { checkedLedgerHead } from './proofs.js';
import type { EventStore } from './store.js';
import { storedThresholds } from './thresholds.js';

/**
 * The key layout version (src/store/keys.ts), stored under `G layout` as its decimal digits. A store
 * without events is stamped with the current one; a store with events but another (or no) stamp was
 * written by another build whose Merkle node and ledger entries this build would misread: refuse it
 * clearly instead. Shown by `status`, `/health` and `backup.json`; README "Upgrading".
 */
export const STORAGE_LAYOUT = 2;

/** What a store is built from, read from its engine before it is. */
export interface StoredHead {
  readonly ledger: Frontier;
  readonly thresholds: Map<string, number>;
  /** The audit log's length: as the ledger head's trailer records it, else as the log's meta does. */
  readonly auditVersion: number;
  /** Why the audit log cannot be trusted (EventStore.auditProblem). */
  readonly auditProblem: EventDbxError | undefined;
}

/** Open the engine and read what the store is built from; a store of another layout is refused. */
export async function openStoredHead(options: EventStoreOptions): Promise<StoredHead> {
  await options.engine.open();
  const raw = await options.engine.get('main', K.globalKey('ledger'));
  let head: LedgerHead = { ledger: emptyFrontier, audit: undefined };
  let trailerProblem: EventDbxError | undefined;
  try {
    if (raw) head = decodeLedgerHead(options.codec ?? plainCodec, raw);
  } catch (e) {
    // An audit trailer that does not open, or belongs to another head: the tree itself still reads.
    if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY') || !raw) throw e;
    head = { ledger: decodeFrontier(raw.subarray(0, frontierBytes(raw))), audit: undefined };
    trailerProblem = e;
  }
  const ledger = head.ledger;
  await checkLayout(options.engine, ledger.size);
  const thresholds = await storedThresholds(options.engine);
  // The audit log's length as the stored meta says it; the head's trailer says what it must be.
  const auditMeta = await options.engine.get('main', K.metaKey(AUDIT_TYPE, AUDIT_ID));
  const logged = auditMeta
    ? openMetaAt(options.codec ?? plainCodec, auditMeta, AUDIT_TYPE, AUDIT_ID).version
    : 0;
  const auditProblem =
    trailerProblem ??
    (head.audit !== undefined && head.audit !== logged
      ? err('EDBX_ERR_INTEGRITY', {
          where: 'the audit log',
          reason: `the ledger head records ${head.audit} audit entries but the log holds ${logged} (entries cut off, or its meta put back?); run \`eventdbx aggregate verify\``,
        })
      : undefined);
  return { ledger, thresholds, auditVersion: head.audit ?? logged, auditProblem };
}

/**
 * The time of the newest event in the ledger (ms since the epoch), where the store's clock starts
 * (clock.ts); undefined for an empty store, or one whose newest event cannot be read (the reads and
 * checks that meet it say why).
 */
export async function newestRecordedTime(store: EventStore): Promise<number | undefined> {
  try {
    const [last] = await store.readLog(store.size, 1);
    return last === undefined ? undefined : Date.parse(last.metadata.created_at);
  } catch (e) {
    if (isEventDbxError(e)) return undefined;
    throw e;
  }
}

/** Load the committed token records into `store.tokens`. */
export async function loadTokens(store: EventStore): Promise<void> {
  for await (const [, v] of store.engine.range('main', {
    gte: K.tokenPrefix(),
    lt: prefixEnd(K.tokenPrefix()),
  })) {
    const t = openJson<TokenRecord>(store.env.codec, v, 'token record');
    store.tokens.set(t.hash, t);
  }
}

async function checkLayout(engine: StorageEngine, events: number): Promise<void> {
  const stamp = await engine.get('main', K.globalKey('layout'));
  const text = stamp?.toString('utf8');
  if (text === String(STORAGE_LAYOUT)) return;
  if (events === 0 && !stamp) {
    const value = Buffer.from(String(STORAGE_LAYOUT));
    await engine.write([{ type: 'put', space: 'main', key: K.globalKey('layout'), value }], { sync: true });
    return;
  }
  await engine.close();
  // A marker missing or not a number is told apart from another layout: no build reads it as it is.
  const found = text === undefined ? 'missing' : /^[1-9][0-9]{0,8}$/.test(text) ? Number(text) : 'garbled';
  throw err('EDBX_ERR_STORE_LAYOUT', { found, expected: STORAGE_LAYOUT, version: VERSION, raw: text });
}

/** Why the stored ledger head cannot be appended to, or undefined when its entries back it. */
export async function ledgerHeadProblem(store: EventStore): Promise<EventDbxError | undefined> {
  try {
    await checkedLedgerHead(store);
  } catch (e) {
    if (isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) return e;
    throw e;
  }
  const size = store.ledgerHead().size;
  if (await store.engine.get('main', K.positionKey(size + 1)))
    return err('EDBX_ERR_INTEGRITY', {
      where: 'the ledger head',
      reason: `it records ${size} events but entry ${size + 1} is stored (rolled back?); run \`aggregate verify\``,
    });
  return undefined;
}
