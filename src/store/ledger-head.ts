/**
 * The ledger head (`G ledger`): the store-wide tree's frontier, then a sealed trailer naming how long
 * the audit log was when the head was written. The audit log is an aggregate like any other, so its
 * newest entries could be cut off behind the store's back (their keys deleted, its meta put back from
 * a backup) and nothing read later would contradict the shorter log — a revocation undone, a removed
 * plugin run again. The head is the one value every commit rewrites and whose rollback is caught at
 * open (an entry past its size is stored), so it carries the audit log's length: a trailer spliced in
 * from an older head names another ledger size and is refused, and one that cannot be opened was
 * edited. A head written before trailers existed has none: its audit length is unknown until the
 * next commit writes one.
 */
import { err } from '../core/errors.js';
import { type Frontier, decodeFrontier, encodeFrontier, encodedFrontierBytes } from '../core/merkle/index.js';
import { openJson, sealJson } from './codec.js';
import type { RecordCodec } from './codec.js';

export interface LedgerHead {
  readonly ledger: Frontier;
  /** Versions in the audit log when the head was written; undefined in a head without a trailer. */
  readonly audit: number | undefined;
}

interface Trailer {
  /** The ledger size of the head it was written with (binds the trailer to that head). */
  readonly size: number;
  readonly audit: number;
}

export function encodeLedgerHead(codec: RecordCodec, ledger: Frontier, audit: number): Buffer {
  return Buffer.concat([
    encodeFrontier(ledger),
    sealJson(codec, { size: ledger.size, audit } satisfies Trailer),
  ]);
}

/** Bytes of the frontier at the start of a stored head (the trailer follows them). */
export const frontierBytes = encodedFrontierBytes;

export function decodeLedgerHead(codec: RecordCodec, raw: Buffer): LedgerHead {
  const end = frontierBytes(raw);
  const ledger = decodeFrontier(raw.subarray(0, end));
  if (raw.length === end) return { ledger, audit: undefined };
  const trailer = openJson<Trailer>(codec, raw.subarray(end), 'the ledger head');
  if (trailer.size !== ledger.size || !Number.isSafeInteger(trailer.audit) || trailer.audit < 0)
    throw err('EDBX_ERR_INTEGRITY', {
      where: 'the ledger head',
      reason: `its audit trailer was written with a ledger of ${trailer.size} events, not ${ledger.size} (spliced from another head?)`,
    });
  return { ledger, audit: trailer.audit };
}
