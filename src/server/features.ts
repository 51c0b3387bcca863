/**
 * Server features beyond the core routes: each may add routes and run while the server runs (started
 * after the store opens, stopped before it closes). One file per feature; this list wires them in.
 */
import type { FastifyInstance } from 'fastify';
import type { SecureStore } from '../store/secure.js';
import type { RouteContext } from './app.js';
import { auditFeature } from './routes/audit.js';
import { checkpointRoutes } from './routes/checkpoint.js';
import { pluginFeature } from './routes/plugins.js';
import { schemaFeature } from './routes/schemas.js';
import { streamFeature } from './routes/stream.js';
import { tokenFeature } from './routes/tokens.js';

export interface FeatureLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Feature {
  readonly name: string;
  routes?(app: FastifyInstance, ctx: RouteContext, secure: SecureStore): Promise<void>;
  start?(secure: SecureStore, log: FeatureLogger): Promise<void>;
  stop?(): Promise<void>;
}

export const FEATURES: readonly Feature[] = [
  { name: 'checkpoint', routes: (app, ctx, secure) => checkpointRoutes(app, ctx, secure) },
  tokenFeature,
  auditFeature,
  schemaFeature,
  pluginFeature,
  streamFeature,
];
