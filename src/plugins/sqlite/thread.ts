/**
 * The SQLite sink's thread: owns the database connection and writes each batch it is sent, answering
 * `{ id }` when the batch is committed or `{ id, error: { code, message } }` when it is not; reading
 * the newest event recorded and clearing (`--rebuild`) answer `{ id, result }`. Requests are handled
 * in order, so a close is answered after every batch sent before it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SqlRow } from '../sql/rows.js';
import type { HeldEvent } from '../types.js';
import { SqliteWriter } from './writer.js';

/** Write rows; or (close) close the database, answered once it is closed. */
export type SqliteRequest =
  | {
      readonly id: number;
      readonly rows: readonly SqlRow[];
      readonly newest: { readonly position: number; readonly hash: string } | undefined;
    }
  | { readonly id: number; readonly held: true }
  | { readonly id: number; readonly clear: readonly string[] }
  | { readonly id: number; readonly close: true };
export interface SqliteAnswer {
  readonly id: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly result?: HeldEvent[] | string[];
}

const port = parentPort;
if (port === null) throw new Error('sqlite/thread.ts runs as a worker thread');
const writer = new SqliteWriter((workerData as { file: string }).file);

port.on('message', (m: SqliteRequest) => {
  try {
    let result: SqliteAnswer['result'];
    if ('close' in m) writer.close();
    else if ('held' in m) result = writer.held();
    else if ('clear' in m) result = writer.clear(m.clear);
    else writer.write(m.rows, m.newest);
    port.postMessage({ id: m.id, ...(result ? { result } : {}) } satisfies SqliteAnswer);
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    const message = e instanceof Error ? e.message : String(e);
    port.postMessage({ id: m.id, error: { code, message } } satisfies SqliteAnswer);
  }
});
