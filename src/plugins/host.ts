/**
 * The delivery host: runs one independent delivery loop per enabled plugin inside the server, wakes
 * them when the store commits (a listener that only resolves a promise, so appends never wait for
 * delivery), and applies configuration changes without a restart: the affected loops stop after their
 * in-flight delivery, the change is written, and they start again from what the store holds.
 *
 * A plugin runs only with the configuration the audit log vouches for (see store/audit-plugins.ts):
 * one whose stored record is not what the log's latest entry describes — a removed plugin's sealed
 * record copied back from an old backup, say — would deliver decrypted events to a target nobody
 * configured any more. It is not started: status shows it `failed` with EDBX_ERR_INTEGRITY, and the
 * server logs why at error level. The log's plugin entries are read once, when the host starts, and
 * then only the entries appended since, when a plugin starts again after a change.
 *
 * @example
 * const host = new DeliveryHost(store, { log: app.log });
 * await host.start(); // delivers until host.stop()
 */
import { type EventDbxError, err } from '../core/errors.js';
import { PluginTrail, pluginConfigProblem } from '../store/audit-plugins.js';
import type { EventStore } from '../store/index.js';
import { LogCache } from './log-cache.js';
import { DeliveryLoop } from './loop.js';
import { attachHost, detachHost } from './registry.js';
import { listConfigs, readConfig, readCursor, readMappings } from './repository.js';
import { createSink } from './sinks.js';
import {
  type DeliveryError,
  type HostHandle,
  type LoopStats,
  type Mappings,
  type PluginConfig,
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
  /** What the audit log says about plugins, kept up to date before each plugin starts. */
  readonly #trail = new PluginTrail();
  /** Plugins not started because the audit log does not vouch for them, and why. */
  readonly #failed = new Map<string, { error: EventDbxError; at: string }>();

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
      const configs = await listConfigs(this.store);
      for (const c of configs) await this.#startLoop(c.name);
      this.#reportMissing(new Set(configs.map((c) => c.name)));
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

  failure(name: string): DeliveryError | undefined {
    const f = this.#failed.get(name);
    if (f) return { code: f.error.code, message: f.error.message, at: f.at };
    // A loop is `failed` only while its destination diverged: it runs, and delivers nothing.
    const live = this.#loops.get(name)?.stats();
    return live?.state === 'failed' ? live.last_error : undefined;
  }

  refusal(name: string): EventDbxError | undefined {
    return this.#failed.get(name)?.error;
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
    this.#failed.delete(name);
    try {
      const config = await readConfig(this.store, name);
      const sql = config?.kind === 'postgres' || config?.kind === 'sqlite';
      const mappings = sql ? await readMappings(this.store) : EMPTY_MAPPINGS;
      const unvouched = await this.#unvouched(name, config, mappings);
      if (unvouched) return this.#refuse(name, unvouched);
      if (!config?.enabled) return;
      const cursor = (await readCursor(this.store, name)) ?? { position: 1 };
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

  /**
   * Why the audit log does not vouch for a plugin's stored configuration (and mappings, for SQL), with
   * what makes it vouch again.
   */
  async #unvouched(
    name: string,
    config: PluginConfig | undefined,
    mappings: Mappings,
  ): Promise<{ problem: string; fix: string } | undefined> {
    // What clears a problem with the plugin's own record: a new entry for it, or its removal.
    const reconfigure = `configure it again or remove it (\`eventdbx plugin remove ${name}\`)`;
    try {
      await this.#trail.catchUp(this.store);
    } catch (e) {
      // A log that cannot be read vouches for nothing.
      return { problem: `the audit log cannot be read (${reasonOf(e)})`, fix: reconfigure };
    }
    const problem = pluginConfigProblem(name, config, this.#trail.plugins.get(name));
    if (problem) return { problem, fix: reconfigure };
    if (!config || (config.kind !== 'postgres' && config.kind !== 'sqlite')) return undefined;
    // Mappings apply to the whole store: configuring or removing the plugin leaves them as they are.
    const mapping = this.#trail.mappingIssues(mappings, ['base', config.kind])[0];
    return (
      mapping && {
        problem: mapping.problem,
        fix: `${mapping.fix} (mappings apply to every SQL plugin: configuring or removing this one does not change them)`,
      }
    );
  }

  #refuse(name: string, { problem, fix }: { problem: string; fix: string }): void {
    const e = err('EDBX_ERR_INTEGRITY', {
      where: `plugin ${name}`,
      reason: `${problem}; not delivering: compare it with \`eventdbx audit list\`, then ${fix}`,
    });
    this.#failed.set(name, { error: e, at: this.store.env.now().toISOString() });
    this.options.log.error({ plugin: name, code: e.code }, e.message);
  }

  /** A plugin the audit log says is configured but whose record is gone cannot run: say so. */
  #reportMissing(stored: ReadonlySet<string>): void {
    for (const [name, logged] of this.#trail.plugins) {
      if (stored.has(name)) continue;
      const problem = pluginConfigProblem(name, undefined, logged);
      if (problem)
        this.options.log.error(
          { plugin: name, code: 'EDBX_ERR_INTEGRITY' },
          err('EDBX_ERR_INTEGRITY', { where: `plugin ${name}`, reason: problem }).message,
        );
    }
  }
}
