/**
 * The address the server listens on (`EVENTDBX_HOST`): what it defaults to, what a failure to listen
 * on it means, whether it can be listened on before a restart stops the running server, and how the
 * CLI on this machine reaches a server listening on it.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { type EventDbxError, err, shown, toEventDbxError } from '../core/errors.js';

/** Where the server listens unless `EVENTDBX_HOST` says otherwise. */
export const DEFAULT_HOST = '127.0.0.1';

/** `EVENTDBX_HOST`, or the default when unset or empty. */
export const listenHost = (env: NodeJS.ProcessEnv = process.env): string => env.EVENTDBX_HOST || DEFAULT_HOST;

/** What `listen` failing on `EVENTDBX_HOST` means, as a coded error naming the variable. */
export function listenError(e: unknown, port: number, host: string): EventDbxError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return err('EDBX_ERR_PORT_IN_USE', { port, host });
  const why: Record<string, string> = {
    ENOTFOUND: 'no such host name',
    EAI_AGAIN: 'the host name cannot be resolved now',
    EAI_FAIL: 'the host name cannot be resolved',
    EADDRNOTAVAIL: 'not an address of this machine',
    EINVAL: 'not an address to listen on',
  };
  const reason = code === undefined ? undefined : why[code];
  if (reason === undefined) return toEventDbxError(e);
  return err(
    'EDBX_ERR_CONFIG_INVALID',
    {
      path: 'environment EVENTDBX_HOST',
      reason: `cannot listen on ${shown(host)} (${reason}, ${code}); use an address of this machine, such as 127.0.0.1 (the default) or 0.0.0.0 for every interface`,
    },
    e,
  );
}

/**
 * Listen on `host` (resolving a name as the server does) and close again: the error the server would
 * meet, or undefined. Port 0 tests the address alone (any free port will do).
 */
export function listenProblem(port: number, host: string): Promise<EventDbxError | undefined> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (e) => resolve(listenError(e, port, host)));
    probe.listen(port, host, () => probe.close(() => resolve(undefined)));
  });
}

/**
 * The address a client on this machine reaches a server listening on `host` at: the address itself,
 * or loopback for the unspecified ones (every interface). A PID file of an earlier version records no
 * host: that server listened on the default.
 */
export function reachableHost(host: string | undefined): string {
  if (host === undefined || host === '' || host === '0.0.0.0') return DEFAULT_HOST;
  if (host === '::' || host === '::0') return '::1';
  return host;
}

/** `http://host:port`, an IPv6 address in brackets. */
export const httpUrl = (host: string, port: number): string =>
  `http://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;

/** Every interface (`0.0.0.0`, `::`): a port held there is held on every address too. */
export const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '::0';

/** `host` as the address a server listening on it is bound to (a name resolved as `listen` does). */
export async function boundAddress(host: string): Promise<string> {
  return net.isIP(host) ? host : (await lookup(host)).address;
}
