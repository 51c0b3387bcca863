/**
 * Engines that run a test's action in the middle of a read: once, just before the next read of an
 * aggregate's events, Merkle nodes or snapshots (after the store took its keyspace from the meta), so
 * a test interleaves an archive or restore with a read deterministically, without relying on timing.
 */
import { err } from '../../src/core/errors.js';
import type { RangeOptions, Space, StorageEngine } from '../../src/storage/engine.js';
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

/** An engine that runs a test's actions in the middle of its reads. */
export type Interrupting<E extends StorageEngine = StorageEngine> = E & {
  /**
   * Run each action (awaited) before one read of an event, node or snapshot key of `type/id`: the
   * first before the next such read, the second before the one after it, and so on.
   */
  beforeReads(type: string, id: string, ...actions: Array<() => Promise<void>>): void;
  /** How many of the actions armed last have run. */
  readonly interruptions: number;
};

type Reads = {
  _get(space: Space, key: Buffer): Promise<Buffer | undefined>;
  _getMany(space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]>;
  _range(space: Space, options: RangeOptions): AsyncIterable<[Buffer, Buffer]>;
  getManySync(space: Space, keys: readonly Buffer[]): (Buffer | undefined)[];
};

/**
 * `engine`, its reads wrapped (the protected ones every public read goes through) so that the actions
 * armed with `beforeReads` run before them. Synchronous reads cannot wait for an action: they are
 * refused, as an engine without them does.
 */
export function interrupting<E extends StorageEngine>(engine: E): Interrupting<E> {
  const at = new Interrupter();
  const reads = engine as unknown as Reads;
  const get = reads._get.bind(engine);
  const getMany = reads._getMany.bind(engine);
  const range = reads._range.bind(engine);
  reads._get = async (space, key) => (await at.before([key]), get(space, key));
  reads._getMany = async (space, keys) => (await at.before(keys), getMany(space, keys));
  reads._range = async function* (space, options) {
    await at.before(bounds(options));
    yield* range(space, options);
  };
  reads.getManySync = () => {
    throw err('EDBX_ERR_NOT_SUPPORTED', { feature: 'synchronous reads', engine: engine.kind });
  };
  return Object.defineProperties(engine, {
    beforeReads: {
      value: (type: string, id: string, ...actions: Array<() => Promise<void>>) => at.arm(type, id, actions),
    },
    interruptions: { get: () => at.ran },
  }) as Interrupting<E>;
}
