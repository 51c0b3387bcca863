/** Runs CLI operations sent over the control socket on the server's open store. */
import { err } from '../core/errors.js';
import { OPS } from '../cli/ops.js';
import type { SecureStore } from '../store/secure.js';
import type { ControlHandler } from './control.js';

export function controlHandler(secure: SecureStore): ControlHandler {
  return async (req, progress) => {
    const op = OPS[req.op];
    if (!op) throw err('EDBX_ERR_USAGE', { reason: `unknown operation ${JSON.stringify(req.op)}` });
    return op(secure, req.args, { issuedBy: req.identity }, progress);
  };
}
