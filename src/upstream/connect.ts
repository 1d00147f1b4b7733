/**
 * How an upstream's connections are opened. Its own host is dialled as configured. Any other host
 * (where a redirect led, a token service) is dialled only at public addresses, unless the upstream
 * itself is at a non-public one — any of the addresses its own name resolves to (a registry on the
 * LAN, tests on loopback, a split-horizon name with a public and a LAN address): a public
 * registry's DNS does not point into the LAN unless whoever controls it controls the upstream anyway.
 * That name is looked up for this at most every 30 s; one that does not resolve counts as public.
 * So a public registry, or the CDN it redirects to, cannot send the mirror to this machine, the LAN
 * or a cloud metadata service. The rule is applied to the very addresses a connection is opened to,
 * when it is opened, so a name that resolves one way for a check and another way for the
 * connection (DNS rebinding) gains nothing; an IP address in a `Location` is held to it too.
 */
import { lookup as lookupAll } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import type { Logger } from 'pino';
import { buildConnector } from 'undici';
import { addressScope } from '../network/addresses.js';
import { UpstreamError } from './errors.js';

/** Every address of a name (as `dns.lookup` with `all`); tests pass their own. */
export type Resolver = (hostname: string, options: LookupOptions) => Promise<LookupAddress[]>;

const resolveAll: Resolver = (hostname, options) => lookupAll(hostname, { ...options, all: true });

/** The upstream whose hosts the rule is for. */
export interface DialRuleOptions {
  /** The upstream's configured name, for errors. */
  upstream: string;
  /** Its configured URL: the host it may always dial, and whose addresses decide for the others. */
  url: URL;
  resolve?: Resolver;
  /** Told when the upstream's own name does not resolve (its other hosts are then held to public addresses). */
  logger?: Pick<Logger, 'warn'>;
}

/** How to connect for one upstream. */
export interface GuardedConnectorOptions extends DialRuleOptions {
  connectTimeoutMs: number;
}

/** The rule above, for one upstream. */
export interface DialRule {
  /** The addresses of `hostname` this upstream may dial; throws when there are none. */
  dialable(hostname: string, options?: LookupOptions): Promise<LookupAddress[]>;
  /** `dialable` as node:net's `lookup` option; it always calls back. */
  lookup: LookupFunction;
}

/** How long the upstream's own addresses decide for its other hosts before they are looked up again (as DNS caches do). */
const OWN_HOST_TTL_MS = 30_000;

/** The rule above for an upstream's hosts. A refused host fails with an UpstreamError (`redirect-refused`). */
export function dialRule({ upstream, url, resolve = resolveAll, logger }: DialRuleOptions): DialRule {
  // The connector gets IPv6 hosts without brackets; the URL keeps them.
  const ownHost = url.hostname.replace(/^\[(.*)\]$/, '$1');

  const addressesOf = async (hostname: string, options: LookupOptions = {}): Promise<LookupAddress[]> => {
    if (isIP(hostname)) return [{ address: hostname, family: isIP(hostname) }];
    const addresses = await resolve(hostname, options);
    // A resolver may answer with nothing at all: that is a name without addresses, as getaddrinfo says it.
    if (addresses.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
    return addresses;
  };

  /** True when any address of the upstream's own host is non-public; false, and logged, when it does not resolve. */
  const lookUpOwnHost = async (): Promise<boolean> => {
    try {
      return (await addressesOf(ownHost)).some((a) => addressScope(a.address) !== 'public');
    } catch (err) {
      const { code, message } = err as NodeJS.ErrnoException;
      logger?.warn({ upstream, host: ownHost, err: code ?? message }, `upstream ${upstream}: its own host ${ownHost} did not resolve, so the hosts it leads to are dialled at public addresses only`);
      return false;
    }
  };
  let ownHostAnswer: { nonPublic: Promise<boolean>; until: number } | undefined;
  const ownHostNonPublic = (): Promise<boolean> => {
    const now = performance.now();
    if (!ownHostAnswer || now >= ownHostAnswer.until) ownHostAnswer = { nonPublic: lookUpOwnHost(), until: now + OWN_HOST_TTL_MS };
    return ownHostAnswer.nonPublic;
  };

  const dialable = async (hostname: string, options: LookupOptions = {}): Promise<LookupAddress[]> => {
    const addresses = await addressesOf(hostname, options);
    if (hostname === ownHost) return addresses;
    const publicOnes = addresses.filter((a) => addressScope(a.address) === 'public');
    if (publicOnes.length === addresses.length) return addresses;
    if (await ownHostNonPublic()) return addresses;
    if (publicOnes.length === 0) {
      const listed = addresses.map((a) => a.address).join(', ');
      throw new UpstreamError(upstream, 'redirect-refused', `${hostname} refused: it leads only to non-public addresses (${listed}) and upstream ${upstream} is public`);
    }
    return publicOnes;
  };

  // Whatever the success branch throws goes to the callback too: the caller hears back, and no
  // rejection goes unhandled (which ends the process).
  const lookup: LookupFunction = (hostname, options, callback) => {
    dialable(hostname, options)
      .then((addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)))
      .catch((err: NodeJS.ErrnoException) => callback(err, ''));
  };
  return { dialable, lookup };
}

/** The connector of an upstream's pool: undici's, with the rule above applied. */
export function guardedConnector({ connectTimeoutMs, ...forUpstream }: GuardedConnectorOptions): buildConnector.connector {
  const { dialable, lookup } = dialRule(forUpstream);
  const connect = buildConnector({ timeout: connectTimeoutMs, lookup });
  return (options, callback) => {
    // Node dials an IP address without a lookup: the rule is applied here instead.
    if (!isIP(options.hostname)) return connect(options, callback);
    dialable(options.hostname)
      // As in lookup, a throw reaches the callback; it is connect's own, from before it could call back.
      .then(() => connect(options, callback))
      .catch((err: Error) => callback(err, null));
  };
}
