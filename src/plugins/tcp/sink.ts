/**
 * TCP sink: one line of `EventRecord` JSON per event over a kept-open connection. A batch is one write;
 * it counts as delivered when the kernel has taken the bytes. A broken, closed or refused connection
 * fails the batch (retried with backoff over a new connection), so lines are never skipped; a receiver
 * that dies after reading may see lines again (at-least-once: dedupe on `metadata.event_id`). Every
 * failure here is one of reaching the receiver (a stream of bytes has nothing a receiver can refuse
 * before taking it), so it is an unreachable destination: retried until it is back, never a dead letter.
 */
import net from 'node:net';
import {
  type DeliveryItem,
  type DeliveryOptions,
  type Sink,
  type TcpSettings,
  reasonOf,
  unreachableFailure,
} from '../types.js';

export class TcpSink implements Sink {
  readonly needsState = false;
  readonly batchSize = 1000;
  #socket: net.Socket | undefined;

  constructor(
    private readonly settings: TcpSettings,
    private readonly delivery: DeliveryOptions,
  ) {}

  #drop(s: net.Socket | undefined = this.#socket): void {
    if (s && this.#socket === s) this.#socket = undefined;
    s?.destroy();
  }

  #connect(): Promise<net.Socket> {
    const current = this.#socket;
    if (current && !current.destroyed && current.writable) return Promise.resolve(current);
    this.#drop();
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.settings.host, port: this.settings.port });
      const timer = setTimeout(
        () => s.destroy(new Error(`connect timed out after ${this.delivery.timeout_ms} ms`)),
        this.delivery.timeout_ms,
      );
      const failed = (e: Error) => {
        clearTimeout(timer);
        reject(e);
      };
      s.once('error', failed);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', failed);
        s.setNoDelay(true);
        s.setKeepAlive(true, 10_000);
        // The receiver closing (or resetting) the connection means the next batch reconnects.
        s.on('error', () => this.#drop(s));
        s.on('end', () => this.#drop(s));
        s.on('close', () => this.#drop(s));
        s.resume(); // nothing is expected back; discard it
        this.#socket = s;
        resolve(s);
      });
    });
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const data = items.map(({ record }) => `${JSON.stringify(record)}\n`).join('');
    try {
      const s = await this.#connect();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`write timed out after ${this.delivery.timeout_ms} ms`));
          this.#drop(s);
        }, this.delivery.timeout_ms);
        s.write(data, (e) => {
          clearTimeout(timer);
          if (e) reject(e);
          else resolve();
        });
      });
    } catch (e) {
      this.#drop();
      throw unreachableFailure('tcp', `${this.settings.host}:${this.settings.port}: ${reasonOf(e)}`);
    }
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = undefined;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        s.destroy();
        resolve();
      }, 1000);
      s.end(() => {
        clearTimeout(timer);
        s.destroy();
        resolve();
      });
    });
  }
}
