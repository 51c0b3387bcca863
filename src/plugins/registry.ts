/**
 * The running delivery host of a store, if any. Admin operations run inside the server (through the
 * control socket or the REST API) on the same EventStore instance the host delivers from, so they find
 * the host here and apply configuration changes without a restart. The CLI's own store has no host:
 * it only records the configuration.
 */
import type { EventStore } from '../store/index.js';
import type { HostHandle } from './types.js';

const hosts = new WeakMap<EventStore, HostHandle>();

export const hostFor = (store: EventStore): HostHandle | undefined => hosts.get(store);

export function attachHost(store: EventStore, host: HostHandle): void {
  hosts.set(store, host);
}

export function detachHost(store: EventStore, host: HostHandle): void {
  if (hosts.get(store) === host) hosts.delete(store);
}
