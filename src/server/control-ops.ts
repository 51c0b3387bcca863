/** Runs CLI operations sent over the control socket on the server's open store. */
import { AesGcmCodec } from '../core/crypto/codec.js';
import { err, toEventDbxError } from '../core/errors.js';
import { LISTINGS, OPS } from '../cli/ops.js';
import type { BackupReport } from '../store/backup.js';
import type { SecureStore } from '../store/secure.js';
import { type ControlHandler, type ControlLog, StreamedAnswer } from './control.js';

/** `config` proves the master key alone: it opens the store with it alone to change keys. */
const MASTER_KEY_ONLY = new Set(['config.apply']);

/**
 * `log` gets each backup (a read of everything) with who asked for it: the CLI's identity, the target
 * and, once written, its size and its audit entry — never keys or values. The audit log's `backup-taken`
 * entry is the tamper-evident record (backup.ts); these lines also show the backups that failed.
 */
export function controlHandler(secure: SecureStore, log?: ControlLog): ControlHandler {
  return async (req, progress, signal) => {
    const op = OPS[req.op];
    if (!op) throw err('EDBX_ERR_USAGE', { reason: `unknown operation ${JSON.stringify(req.op)}` });
    // The keys the command was given are checked as when the CLI opens the store itself.
    if (req.proof === undefined)
      throw err('EDBX_ERR_STORE_IO', {
        reason:
          'the command could not prove its keys to the server: keyring.json in the data dir is missing or unreadable (`eventdbx restart` writes it again)',
      });
    const codec = secure.store.env.codec;
    if (!(codec instanceof AesGcmCodec))
      throw err('EDBX_ERR_INTERNAL', { reason: 'the server store is not encrypted' });
    secure.keyCheck.check(req.proof, codec, !MASTER_KEY_ONLY.has(req.op));
    // A listing goes out a page at a time to a CLI that prints it so; an earlier CLI gets it whole.
    const listing = LISTINGS[req.op];
    if (listing && req.stream) return new StreamedAnswer(listing.pages(secure, req.args, signal));
    // The channel carries no token: what it writes is recorded as made on the host, with no token id
    // (one a request names is dropped). A request without an identity still reads as before.
    const ctx = { issuedBy: req.identity && { group: req.identity.group, user: req.identity.user } };
    if (req.op !== 'backup') return op(secure, req.args, ctx, progress, signal);
    const who = { channel: 'control', op: req.op, issued_by: ctx.issuedBy, target: String(req.args.dir) };
    log?.info(who, 'backup started');
    let result: { backup: BackupReport };
    try {
      result = (await op(secure, req.args, ctx, progress, signal)) as {
        backup: BackupReport;
      };
    } catch (e) {
      log?.info({ ...who, code: toEventDbxError(e).code }, 'backup not written');
      throw e;
    }
    const { events, entries, bytes, seconds, audit_entry, removed_temp_dirs } = result.backup;
    log?.info({ ...who, events, entries, bytes, seconds, audit_entry }, 'backup written');
    for (const dir of removed_temp_dirs)
      log?.info({ ...who, removed: dir }, 'removed the temporary directory of a backup that did not finish');
    return result;
  };
}
