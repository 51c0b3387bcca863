/**
 * The address the server listens on (`EVENTDBX_HOST`): what it defaults to, and how the CLI on this
 * machine reaches a server listening on it.
 */
import net from 'node:net';

/** Where the server listens unless `EVENTDBX_HOST` says otherwise. */
export const DEFAULT_HOST = '127.0.0.1';

/** `EVENTDBX_HOST`, or the default when unset or empty. */
export const listenHost = (env: NodeJS.ProcessEnv = process.env): string => env.EVENTDBX_HOST || DEFAULT_HOST;

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
