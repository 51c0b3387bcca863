/** The signed checkpoint of the ledger, its public key, and ledger inclusion and consistency proofs. */
import type { FastifyInstance } from 'fastify';
import { currentCheckpoint } from '../../store/checkpoints.js';
import { err } from '../../core/errors.js';
import {
  AUDIT_ID,
  AUDIT_TYPE,
  ledgerConsistencyProof,
  ledgerEventRef,
  ledgerInclusionProof,
} from '../../store/index.js';
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
              public_key: {
                type: 'string',
                description:
                  "PEM of the key the server says it signs with: the server's own word. Verify notes " +
                  'with the output of `eventdbx checkpoint public-key`, pinned out of band.',
              },
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
      if (req.query.position === undefined)
        throw err('EDBX_ERR_INVALID_PROOF_RANGE', {
          reason: 'position is required (?position=p&tree_size=n)',
        });
      // A token limited to some aggregates proves their events (and, with --audit, the audit log's):
      // the proof shows only hashes, but the leaf of another aggregate's event is not its to have.
      if (t.scopes.length > 0) {
        const ref = await ledgerEventRef(ctx.store, req.query.position);
        if (ref !== undefined)
          ctx.auth(req.headers.authorization, {
            write: false,
            ledger: {
              position: Number(req.query.position),
              type: ref.type,
              id: ref.id,
              auditEntry: ref.type === AUDIT_TYPE && ref.id === AUDIT_ID,
            },
          });
      }
      return ledgerInclusionProof(ctx.store, req.query.position, req.query.tree_size);
    },
  );
}
