/**
 * The delivery host: runs one independent delivery loop per enabled plugin inside the server, wakes
 * them when the store commits (a listener that only resolves a promise, so appends never wait for
 * delivery), and applies configuration changes without a restart: the affected loops stop after their
 * in-flight delivery, the change is written, and they start again from what the store holds.
 *
 * @example
 * const host = new DeliveryHost(store, { log: app.log });
 * await host.start(); // delivers until host.stop()
 */
import type { EventStore } from '../store/index.js';
import { LogCache } from './log-cache.js';
import { DeliveryLoop } from './loop.js';
import { attachHost, detachHost } from './registry.js';
import { listConfigs, readConfig, readCursor, readMappings } from './repository.js';
import { createSink } from './sinks.js';
import {
  type HostHandle,
  type LoopStats,
  type PluginLogger,
  type RetryOutcome,
  EMPTY_MAPPINGS,
  reasonOf,
} from './types.js';

export interface HostOptions {
  /** The server's logger: delivery warnings, and the log plugin's lines. */
  readonly log: PluginLogger;
  /** How long stopping waits for an in-flight delivery (default 5 s). */
  readonly stopGraceMs?: number;
}

export class DeliveryHost implements HostHandle {
  readonly #loops = new Map<string, DeliveryLoop>();
  #unsubscribe: (() => void) | undefined;
  /** Start, stop and reconfigurations run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #stopped = false;
  readonly #log: LogCache;

  constructor(
    readonly store: EventStore,
    private readonly options: HostOptions,
  ) {
    this.#log = new LogCache(store);
  }

  async start(): Promise<void> {
    attachHost(this.store, this);
    this.#unsubscribe = this.store.onCommit((records) => {
      this.#log.add(records);
      for (const loop of this.#loops.values()) loop.notifyCommit();
    });
    await this.#serial(async () => {
      for (const c of await listConfigs(this.store)) await this.#startLoop(c.name);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    detachHost(this.store, this);
    await this.#serial(async () => {
      const loops = [...this.#loops.values()];
      this.#loops.clear();
      await Promise.all(loops.map((l) => l.stop(this.options.stopGraceMs)));
    });
  }

  reconfigure<T>(names: readonly string[], change: () => Promise<T>): Promise<T> {
    return this.#serial(async () => {
      for (const n of names) {
        await this.#loops.get(n)?.stop(this.options.stopGraceMs);
        this.#loops.delete(n);
      }
      try {
        return await change();
      } finally {
        if (!this.#stopped) for (const n of names) await this.#startLoop(n);
      }
    });
  }

  stats(name: string): LoopStats | undefined {
    return this.#loops.get(name)?.stats();
  }

  retry(name: string): Promise<RetryOutcome> | undefined {
    return this.#loops.get(name)?.requestRetry();
  }

  /** Names of the plugins being delivered. */
  get running(): string[] {
    return [...this.#loops.keys()];
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #startLoop(name: string): Promise<void> {
    try {
      const config = await readConfig(this.store, name);
      if (!config?.enabled) return;
      const cursor = (await readCursor(this.store, name)) ?? { position: 1 };
      const sql = config.kind === 'postgres' || config.kind === 'sqlite';
      const mappings = sql ? await readMappings(this.store) : EMPTY_MAPPINGS;
      const sink = createSink(config, { log: this.options.log, mappings });
      const loop = new DeliveryLoop(this.store, config, sink, this.options.log, cursor, (from, limit) =>
        this.#log.read(from, limit),
      );
      this.#loops.set(name, loop);
      loop.start();
    } catch (e) {
      this.options.log.error({ plugin: name, err: reasonOf(e) }, 'plugin could not start');
    }
  }
}
