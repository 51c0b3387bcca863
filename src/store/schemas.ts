/**
 * Schemas restrict which events and fields aggregates accept. (Filled in by the schemas feature.)
 */
import type { EventStore } from './store.js';

/** `true`: aggregates that have a schema are validated; `strict`: aggregates without one are refused too; `false`: nothing is validated. */
export type RestrictMode = 'true' | 'strict' | 'false';

/** Load the stored schemas and install the append validator for `mode` on the store. */
export async function installSchemas(_store: EventStore, _mode: RestrictMode): Promise<void> {}
