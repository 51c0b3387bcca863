/** The signed checkpoint of the ledger, its public key, and ledger consistency proofs. */
import type { FastifyInstance } from 'fastify';
import { currentCheckpoint } from '../../store/checkpoints.js';
import { ledgerConsistencyProof } from '../../store/index.js';
import type { SecureStore } from '../../store/secure.js';
import type { RouteContext } from '../app.js';
import { errors } from '../schemas.js';

const str = { type: 'string' } as const;

export async function checkpointRoutes(
  app: FastifyInstance,
  ctx: RouteContext,
  secure: SecureStore,
): Promise<void> {
  app.get(
    '/v1/checkpoint',
    {
      schema: {
        summary: 'Latest signed checkpoint of the store-wide ledger (C2SP signed note)',
        response: {
          200: {
            type: 'object',
            properties: {
              origin: str,
              size: { type: 'integer' },
              root: str,
              timestamp: str,
              signature: str,
              key_name: str,
              note: str,
              public_key: str,
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      ctx.auth(req.headers.authorization, { write: false });
      return { ...(await currentCheckpoint(secure)), public_key: secure.publicKeyPem };
    },
  );
  app.get<{ Querystring: { from?: string; to?: string } }>(
    '/v1/ledger/consistency',
    {
      schema: {
        summary: 'RFC 6962 consistency proof between two sizes of the ledger tree',
        querystring: { type: 'object', properties: { from: str, to: str }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: {
              first: { type: 'integer' },
              second: { type: 'integer' },
              first_root: str,
              second_root: str,
              consistency_path: { type: 'array', items: str },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      ctx.auth(req.headers.authorization, { write: false });
      return ledgerConsistencyProof(ctx.store, req.query.from, req.query.to);
    },
  );
}
