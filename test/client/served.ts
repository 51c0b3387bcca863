/**
 * Fixtures of the SDK's end-to-end tests: a real daemon (`start --foreground`, schemas off) with an
 * admin client, started before the tests of the block that calls `servedClient()` and stopped after;
 * and what a stopping server answers, for proxies and fake servers that stand in for one.
 */
import type http from 'node:http';
import { afterAll, beforeAll } from 'vitest';
import { EventDbxClient } from '../../src/client/index.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';

export interface Served {
  readonly p: Project;
  readonly server: RunningServer;
  /** A client with the server's one-time admin token. */
  readonly db: EventDbxClient;
}

/** A served store for the enclosing block (its fields are set once `beforeAll` ran). */
export function servedClient(): Served {
  const served = {} as { -readonly [K in keyof Served]: Served[K] };
  beforeAll(async () => {
    served.p = await project();
    served.server = await startServer(served.p, ['--restrict=false']);
    served.db = new EventDbxClient({ url: served.server.url, token: served.server.adminToken });
  });
  afterAll(async () => {
    await served.server?.stop();
    await served.p?.cleanup();
  });
  return served;
}

/** Answer as a server that is shutting down: 503, EDBX_ERR_SHUTTING_DOWN, retry at once. */
export function answerShuttingDown(res: http.ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
  res.end(
    JSON.stringify({
      type: 'https://eventdbx.dev/errors/EDBX_ERR_SHUTTING_DOWN',
      title: 'EDBX_ERR_SHUTTING_DOWN',
      status: 503,
      code: 'EDBX_ERR_SHUTTING_DOWN',
      detail: 'the server is shutting down',
    }),
  );
}
