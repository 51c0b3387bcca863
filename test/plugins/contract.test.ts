/** The plugin contract against every sink, each with a real destination (see harnesses.ts). */
import { afterAll, beforeAll } from 'vitest';
import { sinkContract } from './contract.js';
import { namesContract } from './contract-names.js';
import { harnesses } from './harnesses.js';
import { type PgServer, startPostgres } from './pg-harness.js';

let pg: PgServer | undefined;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.destroy();
});

for (const h of harnesses(() => pg!)) {
  sinkContract(h);
  namesContract(h);
}
