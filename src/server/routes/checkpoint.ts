/** The signed checkpoint of the ledger, its public key, and ledger inclusion and consistency proofs. */
import type { FastifyInstance } from 'fastify';
import { currentCheckpoint } from '../../store/checkpoints.js';
import { err } from '../../core/errors.js';
import { ledgerConsistencyProof, ledgerInclusionProof } from '../../store/index.js';
import type { SecureStore } from '../../store/secure.js';
import type { RouteContext } from '../app.js';
import { UP_TO_CURRENT, errors, integrityError, ledgerProof, uint } from '../schemas.js';

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
          ...integrityError,
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
        querystring: {
          type: 'object',
          properties: {
            from: uint('the older ledger size m, 1 up to n', UP_TO_CURRENT),
            to: uint('the newer ledger size n, up to the current size (default)', UP_TO_CURRENT),
          },
          additionalProperties: false,
        },
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
          ...integrityError,
        },
      },
    },
    async (req) => {
      ctx.auth(req.headers.authorization, { write: false });
      return ledgerConsistencyProof(ctx.store, req.query.from, req.query.to);
    },
  );
  // Links an event (by its `position`) to a signed checkpoint: the same hashes the checkpoint covers.
  app.get<{ Querystring: { position?: string; tree_size?: string } }>(
    '/v1/ledger/proof',
    { schema: ledgerProof },
    async (req) => {
      const t = ctx.auth(req.headers.authorization, { write: false });
      // A ledger proof shows the hashes of events of any aggregate: not for a token limited to some.
      if (t.scopes.length > 0)
        throw err('EDBX_ERR_TOKEN_OUT_OF_SCOPE', { id: t.id, aggregate: 'the whole ledger' });
      if (req.query.position === undefined)
        throw err('EDBX_ERR_INVALID_PROOF_RANGE', {
          reason: 'position is required (?position=p&tree_size=n)',
        });
      return ledgerInclusionProof(ctx.store, req.query.position, req.query.tree_size);
    },
  );
}
