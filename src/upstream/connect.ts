/**
 * How an upstream's connections are opened. Its own host is dialled as configured. Any other host
 * (where a redirect led, a token service) is dialled only at public addresses, unless the upstream
 * itself is at non-public ones (a registry on the LAN, tests on loopback): so a public registry, or
 * the CDN it redirects to, cannot send the mirror to this machine, the LAN or a cloud metadata
 * service. The rule is applied to the very addresses a connection is opened to, when it is opened,
 * so a name that resolves one way for a check and another way for the connection (DNS rebinding)
 * gains nothing; an IP address in a `Location` is held to it too.
 */
import { lookup as lookupAll } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import { addressScope } from '../network/addresses.js';
import { UpstreamError } from './errors.js';

/** Every address of a name (as `dns.lookup` with `all`); tests pass their own. */
export type Resolver = (hostname: string, options: LookupOptions) => Promise<LookupAddress[]>;

const resolveAll: Resolver = (hostname, options) => lookupAll(hostname, { ...options, all: true });

/** How to connect for one upstream. */
export interface GuardedConnectorOptions {
  /** The upstream's configured name, for errors. */
  upstream: string;
  /** Its configured URL: the host it may always dial, and whose addresses decide for the others. */
  url: URL;
  connectTimeoutMs: number;
  resolve?: Resolver;
}

/**
 * The connector of an upstream's pool: undici's, with the rule above applied. A refused host fails
 * the connection with an UpstreamError (`protocol`).
 */
export function guardedConnector({ upstream, url, connectTimeoutMs, resolve = resolveAll }: GuardedConnectorOptions): buildConnector.connector {
  // The connector gets IPv6 hosts without brackets; the URL keeps them.
  const ownHost = url.hostname.replace(/^\[(.*)\]$/, '$1');

  const addressesOf = async (hostname: string, options: LookupOptions = {}): Promise<LookupAddress[]> =>
    isIP(hostname) ? [{ address: hostname, family: isIP(hostname) }] : resolve(hostname, options);

  /** The addresses of `hostname` this upstream may dial; throws when there are none. */
  const dialable = async (hostname: string, options: LookupOptions = {}): Promise<LookupAddress[]> => {
    const addresses = await addressesOf(hostname, options);
    if (hostname === ownHost) return addresses;
    const publicOnes = addresses.filter((a) => addressScope(a.address) === 'public');
    if (publicOnes.length === addresses.length) return addresses;
    const upstreamAddresses = await addressesOf(ownHost);
    if (upstreamAddresses.every((a) => addressScope(a.address) !== 'public')) return addresses;
    if (publicOnes.length === 0) {
      const listed = addresses.map((a) => a.address).join(', ');
      throw new UpstreamError(upstream, 'redirect-refused', `${hostname} refused: it leads only to non-public addresses (${listed}) and upstream ${upstream} is public`);
    }
    return publicOnes;
  };

  const lookup: LookupFunction = (hostname, options, callback) => {
    dialable(hostname, options).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
  const connect = buildConnector({ timeout: connectTimeoutMs, lookup });

  return (options, callback) => {
    // Node dials an IP address without a lookup: the rule is applied here instead.
    if (!isIP(options.hostname)) return connect(options, callback);
    dialable(options.hostname).then(
      () => connect(options, callback),
      (err: Error) => callback(err, null),
    );
  };
}
