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
 *
 * A file that cannot be written (permissions, a full or failing disk) does not stop writes: each
 * acknowledged write is durable in RocksDB already, and refusing them would turn a lost safety net
 * into an outage. But it must not go unseen (DR QA #2: it stopped silently, and a later cut log lost
 * 590 acknowledged events unnoticed): the failure is told (`onChange`: the server logs it, and /health,
 * `status` and /metrics show it) and the write is tried again every `retryMs` until it succeeds, which
 * is told too. Once written, the file covers everything acknowledged meanwhile (it records the head).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { type EventDbxError, err, isEventDbxError } from '../core/errors.js';
import { DENIED, fileAccessError } from '../fs/file-access.js';
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
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (isEventDbxError(e)) throw e; // a link in its place: refused, never followed
    // Not this user's (a restore copied as root): named, with its owner and the fix.
    const denied =
      code && DENIED.has(code) ? fileAccessError(file, path.dirname(file), 'read', code) : undefined;
    throw denied ?? err('EDBX_ERR_STORE_IO', { reason: `${file}: ${(e as Error).message}` });
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

/** How long a file that could not be written waits before it is tried again (default). */
export const ACKNOWLEDGED_HEAD_RETRY_MS = 2_000;

/** Node's text of a failed file operation without the path it repeats: `EACCES: permission denied, open`. */
const causeOf = (e: unknown): string =>
  isEventDbxError(e)
    ? e.message
    : String((e as Error | undefined)?.message ?? e).replace(/ '[^']*'(?: -> '[^']*')?$/, '');

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
  /** Why the file is behind the store (the last write failed); undefined while it keeps up. */
  #failure: EventDbxError | undefined;
  #listener: ((failure: EventDbxError | undefined) => void) | undefined;

  private constructor(
    private readonly file: string,
    private readonly head: () => { size: number; root: string },
    private readonly intervalMs: number,
    private readonly retryMs: number,
    written: number,
  ) {
    this.#written = written;
  }

  /**
   * Start keeping `file`, which recorded `found` (undefined: none). The current head is written at
   * once when the file is missing or behind (a failure to is kept, as any later one: see `failure`).
   */
  static async start(
    file: string,
    head: () => { size: number; root: string },
    found: AcknowledgedHead | undefined,
    intervalMs = 50,
    retryMs = ACKNOWLEDGED_HEAD_RETRY_MS,
  ): Promise<AcknowledgedHeadFile> {
    const keeper = new AcknowledgedHeadFile(file, head, intervalMs, retryMs, found ? found.size : -1);
    if (found === undefined || head().size > found.size) await keeper.#attempt();
    return keeper;
  }

  /**
   * Why the file cannot be written (EDBX_ERR_ACKNOWLEDGED_HEAD, naming it and the cause): writes
   * acknowledged since are not covered by it. Undefined while it keeps up with the store.
   */
  get failure(): EventDbxError | undefined {
    return this.#failure;
  }

  /** Told of each change: the file failed (the error), or is written again (undefined). */
  onChange(listener: (failure: EventDbxError | undefined) => void): void {
    this.#listener = listener;
  }

  /** A commit landed: the file follows within the interval (or at the next retry, after a failure). */
  committed(): void {
    if (this.#timer !== undefined) return;
    this.#schedule(this.intervalMs);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#attempt();
    }, ms);
    this.#timer.unref();
  }

  /** Write the head; a failure is kept and told, and tried again after retryMs; a success clears it. */
  async #attempt(): Promise<void> {
    try {
      await this.#write();
    } catch (e) {
      // Opened anew next time: the file may be replaced, or its owner or mode corrected, meanwhile.
      const handle = this.#handle;
      this.#handle = undefined;
      await handle?.close().catch(() => undefined);
      const first = this.#failure === undefined;
      this.#failure = err(
        'EDBX_ERR_ACKNOWLEDGED_HEAD',
        { path: this.file, reason: causeOf(e), retry: this.retryMs / 1000 },
        e,
      );
      if (first) this.#listener?.(this.#failure);
      if (this.#timer === undefined) this.#schedule(this.retryMs);
      return;
    }
    if (this.#failure === undefined) return;
    this.#failure = undefined;
    this.#listener?.(undefined);
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
    this.#listener = undefined;
    try {
      await this.#write();
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
  { file, intervalMs, retryMs, restored }: AcknowledgedHeadOptions,
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
  return { kept: await AcknowledgedHeadFile.start(file, head, found, intervalMs, retryMs) };
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
