/**
 * SQLite sink: the PostgreSQL table shape in a local file (better-sqlite3). A batch is one
 * transaction (WAL, synchronous=FULL, so an acknowledged batch survives a power cut). The driver is
 * synchronous: the database is written on a thread of the sink's own (thread.ts, writer.ts), so its
 * inserts and commit fsyncs never stall the server. Rows are built here, where the field mappings are.
 * A thread that never answers (stuck on a hung disk or network mount) is terminated when the plugin
 * stops (`abandon`); until then the host's watchdog reports it (see ../watchdog.ts).
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../../storage/module-worker.js';
import { refuseSpecialFile, statOrNone } from '../files.js';
import { newestOf } from '../sql/bookkeeping.js';
import { type SqlRow, type TypeOf, buildRows } from '../sql/rows.js';
import { NOT_A_TABLE } from '../sql/shape.js';
import {
  type DeliveryItem,
  type HeldEvent,
  type Sink,
  type SqliteSettings,
  DeliveryFailure,
  reasonOf,
  rejectedFailure,
  transientFailure,
} from '../types.js';
import type { SqliteAnswer, SqliteRequest } from './thread.js';

interface Pending {
  /** The thread asked: one that exits fails only its own requests. */
  readonly thread: Worker;
  readonly resolve: (result: SqliteAnswer['result']) => void;
  readonly reject: (e: unknown) => void;
}

export class SqliteSink implements Sink {
  readonly needsState = true;
  readonly batchSize = 500;
  #thread: Worker | undefined;
  /** Threads asked to close that have not yet: `abandon` terminates them too. */
  readonly #closing = new Set<Worker>();
  readonly #pending = new Map<number, Pending>();
  #next = 0;

  constructor(
    private readonly settings: SqliteSettings,
    private readonly typeOf: TypeOf,
  ) {}

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const { rows, failure } = buildRows('sqlite', items, this.typeOf);
    if (rows.length > 0) {
      try {
        await this.#send(rows, newestOf(items, failure?.delivered));
      } catch (e) {
        throw classify(e, items);
      }
    }
    if (failure) throw failure;
  }

  async #send(
    rows: readonly SqlRow[],
    newest: { position: number; hash: string } | undefined,
  ): Promise<void> {
    await this.#request((id) => ({ id, rows, newest }), (this.#thread ??= this.#start()));
  }

  /** The newest event the tables hold, as recorded with the last batch (none before the first). */
  async held(): Promise<HeldEvent[]> {
    try {
      const r = await this.#request((id) => ({ id, held: true }), (this.#thread ??= this.#start()));
      return (r ?? []) as HeldEvent[];
    } catch (e) {
      throw transientFailure('sqlite', sqliteReason(e), 0);
    }
  }

  /** Drop the tables this sink created (and those of the store's types) and its bookkeeping. */
  async clear(types: readonly string[]): Promise<string[]> {
    const r = await this.#request((id) => ({ id, clear: types }), (this.#thread ??= this.#start()));
    return ((r ?? []) as string[]).map((d) => `${d} in ${this.settings.path}`);
  }

  async #request(make: (id: number) => SqliteRequest, thread: Worker): Promise<SqliteAnswer['result']> {
    // Before the thread opens the file (again): a named pipe there would block it for good.
    refuseSpecialFile(this.settings.path, await statOrNone(this.settings.path));
    const id = ++this.#next;
    return new Promise<SqliteAnswer['result']>((resolve, reject) => {
      this.#pending.set(id, { thread, resolve, reject });
      thread.ref();
      thread.postMessage(make(id));
    });
  }

  #start(): Worker {
    const thread = moduleWorker(import.meta.url, 'thread', { workerData: { file: this.settings.path } });
    // Idle, the thread does not keep the process alive.
    thread.unref();
    thread.on('message', (a: SqliteAnswer) => {
      const p = this.#pending.get(a.id);
      this.#pending.delete(a.id);
      if (!this.#asked(thread)) thread.unref();
      if (!p) return;
      if (a.error) p.reject(Object.assign(new Error(a.error.message), { code: a.error.code }));
      else p.resolve(a.result);
    });
    const lost = (reason: string) => {
      if (this.#thread === thread) this.#thread = undefined;
      for (const [id, p] of this.#pending) {
        if (p.thread !== thread) continue;
        this.#pending.delete(id);
        p.reject(new Error(`the SQLite thread ${reason}`));
      }
    };
    thread.on('error', (e) => lost(`failed: ${e.message}`));
    thread.on('exit', (code) => lost(`exited (${code})`));
    return thread;
  }

  /** Whether `thread` has requests not yet answered. */
  #asked(thread: Worker): boolean {
    for (const p of this.#pending.values()) if (p.thread === thread) return true;
    return false;
  }

  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (!thread) return;
    this.#closing.add(thread);
    try {
      // Answered after every batch sent before: then nothing is left to lose.
      await this.#request((id) => ({ id, close: true }), thread).catch(() => undefined);
      await thread.terminate();
    } finally {
      this.#closing.delete(thread);
    }
  }

  /**
   * Terminate the thread without waiting for it: its transaction, if one was open, is never committed
   * (SQLite rolls it back), and its events are delivered again. A thread stuck in a system call ends
   * when the call returns; meanwhile it does not keep the process alive.
   */
  abandon(): string {
    const threads = [...this.#closing, ...(this.#thread ? [this.#thread] : [])];
    this.#thread = undefined;
    this.#closing.clear();
    for (const [id, p] of this.#pending) {
      if (!threads.includes(p.thread)) continue;
      this.#pending.delete(id);
      p.reject(new Error('the SQLite thread was stopped: it did not answer'));
    }
    for (const t of threads) {
      t.unref();
      void t.terminate().catch(() => undefined);
    }
    return 'its SQLite thread was stopped';
  }
}

/**
 * Codes whose message is text of the database's own (a trigger's `RAISE`, which takes any expression
 * and so can quote the row, or an application function's), not one of SQLite's templates, which name
 * only tables, columns and the schema's constraints.
 */
const USER_TEXT = new Set(['SQLITE_CONSTRAINT_TRIGGER', 'SQLITE_CONSTRAINT_FUNCTION']);

/** The reason a failure is logged and dead-lettered with: never a value of the row. */
function sqliteReason(e: unknown): string {
  const code = String((e as { code?: unknown }).code ?? '');
  if (USER_TEXT.has(code))
    return `a trigger or function of the database refused the row (${code}; its message is left out: it can quote values)`;
  return `${reasonOf(e)}${code ? ` (${code})` : ''}`;
}

/**
 * SQLite's limits that a row can reach (plain SQLITE_ERROR, told by the message): a table's columns
 * (SQLITE_MAX_COLUMN, 2000 by default), bound values, the statement's length; and a table's name that
 * rows can never go into: one SQLite keeps for itself, one an index has. As SQLITE_TOOBIG (a value
 * over the size limit), the same row fails every time.
 */
const NEVER_TAKEN =
  /^(too many columns|too many SQL variables|statement too long|object name reserved for internal use|there is already an index named)\b/;

function classify(e: unknown, items: readonly DeliveryItem[]): DeliveryFailure {
  if (e instanceof DeliveryFailure) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const reason = sqliteReason(e);
  const never = code === 'SQLITE_ERROR' && NEVER_TAKEN.test(reasonOf(e));
  if (
    code.startsWith('SQLITE_CONSTRAINT') ||
    code === 'SQLITE_MISMATCH' ||
    code === 'SQLITE_TOOBIG' ||
    never ||
    // The writer's own refusal of a table it cannot write into (../sql/shape.ts).
    NOT_A_TABLE.test(reasonOf(e))
  ) {
    return rejectedFailure('sqlite', items[0]!.record, reason, items.length === 1 ? 0 : undefined);
  }
  return transientFailure('sqlite', reason, 0);
}
