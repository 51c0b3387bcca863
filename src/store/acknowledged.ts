/**
 * The acknowledged head: a small file beside RocksDB's (`acknowledged-head` in the data dir) saying how
 * many events, with which ledger root, the store had made durable and acknowledged. RocksDB keeps the
 * newest writes in its write-ahead log, and on opening a log with a damaged or cut-off record it
 * recovers the writes before it and drops the rest without a word (its default recovery mode, which
 * the binding cannot change). The ledger head, the audit log's length and every index are dropped
 * with them, so everything the store checks itself still agrees: acknowledged events, and token
 * revocations, would be gone unnoticed. This file is written outside RocksDB and read at open: a store
 * holding fewer events than it says were acknowledged refuses writes and fails `verify`.
 *
 * Written off the commit path, at most every `intervalMs` while commits land and once more when the
 * store closes: it lags what was acknowledged by at most that interval plus one fsync (a crash just
 * after an acknowledgement loses nothing from RocksDB either; a damaged log found at the next open
 * is caught for everything acknowledged before that). Never ahead of the store: it records only
 * committed heads. Two slots, written alternately in place, each JSON with its SHA-256, so a write torn
 * by a crash leaves the other intact. Not sealed with the store's keys: it holds no secret (an event
 * count and a ledger root, what a checkpoint publishes), and it must still say what was acknowledged
 * when the loss took the keyring with it. A checksum, not a signature: whoever can write the file
 * can as well remove it, which is what the signed checkpoints an auditor keeps are for.
 * A missing file (a store from before it existed, a restored backup) is written anew; an operator who
 * accepts a loss moves the file aside.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { openNoFollow } from '../fs/no-follow.js';
import type { AcknowledgedHeadOptions } from './options.js';

/** The file's name in the data dir. */
export const ACKNOWLEDGED_HEAD = 'acknowledged-head';

export interface AcknowledgedHead {
  /** Events acknowledged (the ledger size). */
  readonly size: number;
  /** The ledger root at that size (hex). */
  readonly root: string;
  /** When it was written (ISO 8601). */
  readonly at: string;
}

const SLOT = 512;
const WHERE = `the ${ACKNOWLEDGED_HEAD} file`;

const isHead = (v: unknown): v is AcknowledgedHead => {
  const h = v as Partial<AcknowledgedHead> | null;
  return (
    typeof h === 'object' &&
    h !== null &&
    Number.isSafeInteger(h.size) &&
    h.size! >= 0 &&
    typeof h.root === 'string' &&
    /^[0-9a-f]{64}$/.test(h.root) &&
    typeof h.at === 'string'
  );
};

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** A slot: the JSON's length (4 bytes), the JSON, its SHA-256. */
function readSlot(bytes: Buffer): AcknowledgedHead | undefined {
  if (bytes.length < 4) return undefined;
  const length = bytes.readUInt32BE(0);
  if (length === 0 || 4 + length + 32 > Math.min(SLOT, bytes.length)) return undefined;
  const json = bytes.subarray(4, 4 + length);
  if (!sha256(json).equals(bytes.subarray(4 + length, 4 + length + 32))) return undefined;
  try {
    const head = JSON.parse(json.toString('utf8')) as unknown;
    return isHead(head) ? head : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The head the file records (the newer of its two slots); undefined when there is no file. A file
 * with no slot that opens was damaged or edited: EDBX_ERR_INTEGRITY.
 */
export async function readAcknowledgedHead(file: string): Promise<AcknowledgedHead | undefined> {
  let handle: FileHandle;
  try {
    handle = await openNoFollow(file, 'read');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (isEventDbxError(e)) throw e; // a link in its place: refused, never followed
    throw err('EDBX_ERR_STORE_IO', { reason: `${file}: ${(e as Error).message}` });
  }
  try {
    const bytes = Buffer.alloc(2 * SLOT);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    const slots = [0, 1]
      .map((i) => readSlot(bytes.subarray(i * SLOT, Math.min(bytesRead, (i + 1) * SLOT))))
      .filter((h): h is AcknowledgedHead => h !== undefined);
    if (slots.length === 0)
      throw err('EDBX_ERR_INTEGRITY', {
        where: WHERE,
        reason: `neither of its two records is intact (damaged or edited); if \`eventdbx aggregate verify\` finds the store sound, move ${file} aside`,
        summary: 'neither of its two records is intact (damaged or edited)',
      });
    return slots.reduce((a, b) => (b.size > a.size || (b.size === a.size && b.at > a.at) ? b : a));
  } finally {
    await handle.close();
  }
}

const lost = (from: number, to: number): string =>
  from === to ? `event ${from} is lost` : `events ${from}-${to} are lost`;

/** The loss a store shows when it holds fewer events than its file says were acknowledged. */
export function lossOf(
  file: string,
  acknowledged: AcknowledgedHead,
  held: { readonly size: number; readonly root: string },
) {
  if (held.size > acknowledged.size) return undefined;
  if (held.size === acknowledged.size && held.root === acknowledged.root) return undefined;
  return err('EDBX_ERR_INTEGRITY', {
    where: 'the store',
    reason:
      held.size < acknowledged.size
        ? `it holds ${held.size} events but had acknowledged ${acknowledged.size} by ${acknowledged.at} (its write-ahead log was damaged or cut short, or an older copy was put in its place without its backup.json: ${lost(held.size + 1, acknowledged.size)}); restore a backup, or to go on without them move ${file} aside`
        : `its ${held.size} events have ledger root ${held.root.slice(0, 16)}…, not the ${acknowledged.root.slice(0, 16)}… acknowledged by ${acknowledged.at} (rewritten?); restore a backup, or move ${file} aside`,
    summary:
      held.size < acknowledged.size
        ? `it holds ${held.size} events but had acknowledged ${acknowledged.size} (${lost(held.size + 1, acknowledged.size)}): an operator must restore a backup or accept the loss`
        : `its ${held.size} events are not the ones it acknowledged: an operator must restore a backup or accept the change`,
  });
}

/**
 * Keeps the file up with the committed head: `committed()` after each commit; `close()` writes the
 * last head and closes the file.
 */
export class AcknowledgedHeadFile {
  #handle: FileHandle | undefined;
  #slot = 0;
  /** The size last written (or found in the file). */
  #written: number;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #failed: unknown;

  private constructor(
    private readonly file: string,
    private readonly head: () => { size: number; root: string },
    private readonly intervalMs: number,
    written: number,
  ) {
    this.#written = written;
  }

  /**
   * Start keeping `file`, which recorded `found` (undefined: none). The current head is written at
   * once when the file is missing or behind.
   */
  static async start(
    file: string,
    head: () => { size: number; root: string },
    found: AcknowledgedHead | undefined,
    intervalMs = 50,
  ): Promise<AcknowledgedHeadFile> {
    const keeper = new AcknowledgedHeadFile(file, head, intervalMs, found ? found.size : -1);
    if (found === undefined || head().size > found.size) await keeper.#write();
    return keeper;
  }

  /** A commit landed: the file follows within the interval. */
  committed(): void {
    if (this.#timer !== undefined || this.#failed !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#write().catch((e: unknown) => (this.#failed = e));
    }, this.intervalMs);
    this.#timer.unref();
  }

  async #write(): Promise<void> {
    while (this.#writing) await this.#writing;
    const head = this.head();
    if (head.size <= this.#written) return;
    this.#writing = this.#put(head);
    try {
      await this.#writing;
    } finally {
      this.#writing = undefined;
    }
  }

  async #put(head: { size: number; root: string }): Promise<void> {
    const json = Buffer.from(
      JSON.stringify({ size: head.size, root: head.root, at: new Date().toISOString() }),
      'utf8',
    );
    const slot = Buffer.alloc(SLOT);
    slot.writeUInt32BE(json.length, 0);
    json.copy(slot, 4);
    sha256(json).copy(slot, 4 + json.length);
    this.#handle ??= await openForWrite(this.file);
    await this.#handle.write(slot, 0, SLOT, this.#slot * SLOT);
    await this.#handle.datasync();
    this.#slot = 1 - this.#slot;
    this.#written = head.size;
  }

  /** Write the last committed head and close the file. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      if (this.#failed === undefined) await this.#write();
    } catch {
      // A file left behind the store (a full disk) is safe: it only ever says too little.
    } finally {
      await this.#handle?.close();
      this.#handle = undefined;
    }
  }
}

/**
 * Compare a store (its committed `head`) with its acknowledged-head file: the loss found, or the file
 * kept from now on when the store holds all it says.
 */
export async function keepAcknowledgedHead(
  { file, intervalMs, restored }: AcknowledgedHeadOptions,
  head: () => { size: number; root: string },
): Promise<{ loss: EventDbxError } | { kept: AcknowledgedHeadFile }> {
  let found: AcknowledgedHead | undefined;
  let loss: EventDbxError | undefined;
  try {
    found = restored ? undefined : await readAcknowledgedHead(file);
    loss = found && lossOf(file, found, head());
  } catch (e) {
    if (!isEventDbxError(e, 'EDBX_ERR_INTEGRITY')) throw e;
    loss = e;
  }
  // The file stays as it is while it says more than the store holds: it is the evidence.
  if (loss) return { loss };
  return { kept: await AcknowledgedHeadFile.start(file, head, found, intervalMs) };
}

/** The file, or a new one (owner-only); a link or anything but a plain file in its place is refused. */
async function openForWrite(file: string): Promise<FileHandle> {
  try {
    return await openNoFollow(file, 'update');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return openNoFollow(file, 'create');
  }
}
