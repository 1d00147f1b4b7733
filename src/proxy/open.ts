/** Opens the CONNECT proxy of a validated `proxy` block: its CA, its policy, its listener. */
import type { Logger } from 'pino';
import { cidrList, parseListenAddress } from '../network/addresses.js';
import type { ServerDeps } from '../http/server.js';
import type { Metrics } from '../metrics/metrics.js';
import { TlsError } from '../tls/keypair.js';
import { createConnectObserver } from './access.js';
import { HostCertificates } from './certificates.js';
import { HostPatterns } from './hosts.js';
import { startProxy, type OpenProxy } from './server.js';

export type { OpenProxy } from './server.js';

/** The `proxy` block as validated (see docs/transparent-proxy.md). */
export interface ProxySettings {
  listen: string;
  hosts?: readonly string[] | undefined;
  caCert: string;
  caKey: string;
  otherHosts: 'tunnel' | 'refuse';
  allow: readonly string[];
}

/** What the proxy is opened with. */
export interface OpenProxyDeps {
  /** The listeners' dependencies: requests inside intercepted connections are handled by them. */
  server: ServerDeps;
  /** The upstream a registry name or host alias means (the router's lookup). */
  upstreamFor(name: string): string | undefined;
  /** Where the proxy's metrics are registered. */
  metrics: Metrics;
  logger: Logger;
  /** Write a line per CONNECT (`log.accessLog`). */
  accessLog: boolean;
}

/** The CA that signs the intercepted hosts' certificates; one that cannot sign throws TlsError `proxy: <file> ...`. */
export function openProxyCa(settings: Pick<ProxySettings, 'caCert' | 'caKey'>, logger: Logger): Promise<HostCertificates> {
  return HostCertificates.open({ caCert: settings.caCert, caKey: settings.caKey, logger }).catch((err: unknown) => {
    throw err instanceof TlsError ? new TlsError(`proxy: ${err.message}`) : err;
  });
}

/**
 * Opens the proxy with `certificates`, the CA from openProxyCa. The CA stays the caller's: closing
 * the proxy, or failing to open it, leaves it open.
 */
export async function openProxy(settings: ProxySettings, certificates: HostCertificates, deps: OpenProxyDeps): Promise<OpenProxy> {
  const proxy = await startProxy(
    {
      ...parseListenAddress(settings.listen),
      allow: cidrList(settings.allow),
      policy: { hosts: settings.hosts && new HostPatterns(settings.hosts), otherHosts: settings.otherHosts, upstreamFor: deps.upstreamFor },
    },
    { server: deps.server, certificates, observe: createConnectObserver(deps.metrics.proxy(), deps.logger, deps.accessLog) },
  );
  deps.logger.info({ address: `${proxy.address.address}:${proxy.address.port}`, hosts: settings.hosts ?? 'every upstream', otherHosts: settings.otherHosts, allow: settings.allow }, 'proxy listening');
  return proxy;
}
