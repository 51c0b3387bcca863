/**
 * JSON sink: appends each `EventRecord` to a file, one JSON document per line (JSON Lines), or
 * indented with `--pretty` (documents separated by a newline; read them back with `jq -c . file`).
 * A batch is one write and one fsync; a record torn by a crash is cut off when the file is reopened.
 */
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { repairTail, stillAt } from '../files.js';
import { type DeliveryItem, type JsonSettings, type Sink, reasonOf, transientFailure } from '../types.js';

export class JsonSink implements Sink {
  readonly needsState = false;
  readonly batchSize = 1000;
  #handle: FileHandle | undefined;

  constructor(private readonly settings: JsonSettings) {}

  async #open(): Promise<FileHandle> {
    // Deleted (or replaced) while open: appending through the old handle would lose the records.
    if (this.#handle && !(await stillAt(this.#handle, this.settings.path))) await this.close();
    if (!this.#handle) {
      await mkdir(path.dirname(this.settings.path), { recursive: true });
      // A pretty document ends with a `}` at the start of a line (nested ones are indented).
      await repairTail(this.settings.path, this.settings.pretty ? '\n}\n' : '\n');
      this.#handle = await open(this.settings.path, 'a');
    }
    return this.#handle;
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const text = items
      .map(
        ({ record }) =>
          `${this.settings.pretty ? JSON.stringify(record, null, 2) : JSON.stringify(record)}\n`,
      )
      .join('');
    try {
      const fh = await this.#open();
      await fh.write(text);
      await fh.datasync();
    } catch (e) {
      await this.close();
      throw transientFailure('json', reasonOf(e), 0);
    }
  }

  async close(): Promise<void> {
    const fh = this.#handle;
    this.#handle = undefined;
    await fh?.close().catch(() => undefined);
  }
}
