/**
 * Engines that run a test's action in the middle of a read: once, just before the next read of an
 * aggregate's events, Merkle nodes or snapshots (after the store took its keyspace from the meta), so
 * a test interleaves an archive or restore with a read deterministically, without relying on timing.
 */
import { err } from '../../src/core/errors.js';
import type { RangeOptions, Space } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import * as K from '../../src/store/keys.js';

/** The actions armed, and the keys that set them off. */
class Interrupter {
  #prefixes: Buffer[] = [];
  #actions: Array<() => Promise<void>> = [];
  #running = false;
  ran = 0;

  arm(type: string, id: string, actions: Array<() => Promise<void>>): void {
    this.#prefixes = [K.eventPrefix(type, id), K.nodePrefix(type, id), K.snapshotPrefix(type, id)];
    this.#actions = [...actions];
    this.ran = 0;
  }

  async before(keys: ReadonlyArray<Buffer | undefined>): Promise<void> {
    const ours = (k: Buffer | undefined) =>
      k !== undefined && this.#prefixes.some((p) => k.subarray(0, p.length).equals(p));
    if (this.#running || this.#actions.length === 0 || !keys.some(ours)) return;
    // The action's own reads (an archive verifies and copies the aggregate) go through.
    this.#running = true;
    try {
      await this.#actions.shift()!();
    } finally {
      this.#running = false;
    }
    this.ran++;
  }
}

/** A range's bounds: a RocksDB iterator reads the database as it was when it was made. */
const bounds = (o: RangeOptions) => [o.gte ?? o.gt, o.lte ?? o.lt];

export class InterruptingMemoryEngine extends MemoryEngine {
  readonly #at = new Interrupter();

  /**
   * Run each action (awaited) before one read of an event, node or snapshot key of `type/id`: the
   * first before the next such read, the second before the one after it, and so on.
   */
  beforeReads(type: string, id: string, ...actions: Array<() => Promise<void>>): void {
    this.#at.arm(type, id, actions);
  }

  /** How many of the actions armed last have run. */
  get interruptions(): number {
    return this.#at.ran;
  }

  /** Synchronous reads cannot wait for the action: refused, as an engine without them does. */
  override getManySync(): (Buffer | undefined)[] {
    throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'synchronous reads', engine: this.kind });
  }

  protected override async _get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    await this.#at.before([key]);
    return super._get(space, key);
  }

  protected override async _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    await this.#at.before(keys);
    return super._getMany(space, keys);
  }

  protected override async *_range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    await this.#at.before(bounds(options));
    yield* super._range(space, options);
  }
}

export class InterruptingRocksDbEngine extends RocksDbEngine {
  readonly #at = new Interrupter();

  /**
   * Run each action (awaited) before one read of an event, node or snapshot key of `type/id`: the
   * first before the next such read, the second before the one after it, and so on.
   */
  beforeReads(type: string, id: string, ...actions: Array<() => Promise<void>>): void {
    this.#at.arm(type, id, actions);
  }

  /** How many of the actions armed last have run. */
  get interruptions(): number {
    return this.#at.ran;
  }

  /** Synchronous reads cannot wait for the action: refused, as an engine without them does. */
  override getManySync(): (Buffer | undefined)[] {
    throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'synchronous reads', engine: this.kind });
  }

  protected override async _get(space: Space, key: Buffer): Promise<Buffer | undefined> {
    await this.#at.before([key]);
    return super._get(space, key);
  }

  protected override async _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
    await this.#at.before(keys);
    return super._getMany(space, keys);
  }

  protected override async *_range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]> {
    await this.#at.before(bounds(options));
    yield* super._range(space, options);
  }
}
