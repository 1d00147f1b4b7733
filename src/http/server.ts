/**
 * Listeners: plain node:http servers (no framework on the blob path), each optionally pinned to an
 * upstream. Every request is parsed and routed once, handled, timed and logged in one place.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { RegistryError, toRegistryError } from '../oci/errors.js';
import { RepositoryDenied, type RoutedRequest, type Router } from '../routing/router.js';
import type { BlockList } from 'node:net';
import type { RequestRecord } from './access.js';
import { listHas } from '../network/addresses.js';
import { clientAddress } from './client-access.js';
import type { HtpasswdAuth } from './client-auth.js';
import { ADMIN_PATHS, handleAdmin, type AdminDeps } from './admin.js';
import type { RegistryApi, Served } from './registry-api.js';
import { sendError } from './respond.js';
import type { TlsSource } from '../tls/keypair.js';

/** Status lines for protocol errors that have a more precise answer than 400. */
const CLIENT_ERROR_STATUS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/** A listener to open. */
export interface ListenerSpec {
  host: string;
  port: number;
  /** The upstream requests on this listener go to when they name none. */
  upstream?: string | undefined;
  /** Serves the /v2 registry API. */
  registry: boolean;
  /** Serves /metrics, /healthz, /readyz. */
  admin: boolean;
  /** Only clients in this list are served (all when absent); read per request, so a reload may replace it. */
  allow?: BlockList | undefined;
  /** Serve HTTPS with this source's certificate, following its changes (plain HTTP when absent). */
  tls?: TlsSource | undefined;
}

/** Connection limits shared by every listener. */
export interface HttpLimits {
  /** Time a client has to send its request headers (slow clients are cut off after it). */
  headersTimeout: number;
  keepAliveTimeout: number;
  maxHeaderBytes: number;
}

/** What the server needs. */
export interface ServerDeps {
  router: Router;
  api: RegistryApi;
  admin: AdminDeps;
  /** Called once per finished registry request (metrics and access log). */
  observe: (record: RequestRecord) => void;
  logger: Logger;
  limits: HttpLimits;
  /** Proxies whose X-Forwarded-For is believed; read per request, so a reload may replace it. */
  trustedProxies?: BlockList | undefined;
  /** Client authentication for the registry API, when configured. */
  auth?: HtpasswdAuth | undefined;
}

/** An open listener. */
export interface OpenListener {
  server: Server;
  address: AddressInfo;
  upstream?: string | undefined;
  /** Serves HTTPS. */
  tls: boolean;
}

/** Opens a listener and resolves once it accepts connections. */
export async function listen(spec: ListenerSpec, deps: ServerDeps): Promise<OpenListener> {
  const { tls } = spec;
  let server: Server;
  if (tls) {
    const { limits } = deps;
    // A client that never finishes its handshake is cut off like one that never sends its headers.
    const https = createHttpsServer({ ...serverOptions(limits), handshakeTimeout: limits.headersTimeout, ...tls.current() }, requestHandler(spec, deps));
    // New connections get a replaced certificate; open ones keep the one they shook hands with.
    const unsubscribe = tls.onChange((pair) => https.setSecureContext(pair));
    https.once('close', unsubscribe);
    // Node leaves the socket open once this event has a listener: close it (handshake timeouts too).
    https.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      deps.logger.debug({ err: err.message, code: err.code }, 'tls handshake failed');
      socket.destroy();
    });
    server = closeOnClientError(https, deps.logger);
  } else {
    server = createListenerServer(spec, deps);
  }
  const address = await listenOn(server, spec.host, spec.port);
  return { server, address, upstream: spec.upstream, tls: tls !== undefined };
}

/** Node server options from the configured connection limits. */
export function serverOptions(limits: HttpLimits): ServerOptions {
  return {
    keepAliveTimeout: limits.keepAliveTimeout,
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.headersTimeout * 2, // requests have no body: the headers are the request
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, limits.headersTimeout / 4)),
  };
}

/** The request handler of a listener: access control, admin endpoints, the registry API. */
export function requestHandler(spec: ListenerSpec, deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => void handle(req, res, spec, deps);
}

/** A plain-HTTP server for a listener (not yet listening). */
export function createListenerServer(spec: ListenerSpec, deps: ServerDeps): Server {
  return closeOnClientError(createServer(serverOptions(deps.limits), requestHandler(spec, deps)), deps.logger);
}

/** Makes protocol garbage (a TLS ClientHello on a plain port, a half-open scan) just close the connection. */
export function closeOnClientError<T extends Server>(server: T, logger: Logger): T {
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    logger.debug({ err: err.message, code: err.code }, 'client protocol error');
    const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request';
    // Destroy after writing: a client that never closes its side (slowloris) must not keep the socket.
    if (socket.writable && !err.code?.startsWith('ECONN')) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
    else socket.destroy();
  });
  return server;
}

/**
 * Pending connections the kernel may queue (capped by net.core.somaxconn). Node's default of 511
 * drops SYNs when a CI fleet connects at once, and each dropped SYN costs a client a 1-3 s retry.
 */
const LISTEN_BACKLOG = 4096;

/** Starts `server` listening on host:port; resolves with its address once it accepts connections. */
export async function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: host || undefined, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

async function handle(req: IncomingMessage, res: ServerResponse, spec: ListenerSpec, deps: ServerDeps): Promise<void> {
  const started = performance.now();
  const socket = req.socket;
  const bytesBefore = socket.bytesWritten;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const head = req.method === 'HEAD';
  const client = clientAddress(req, deps.trustedProxies);
  if (spec.allow && !listHas(spec.allow, client)) {
    sendError(res, new RegistryError('DENIED', 'this client address is not allowed'), head);
    return;
  }
  if (spec.admin && ADMIN_PATHS.has(path) && (head || req.method === 'GET')) {
    await handleAdmin(req, res, path, deps.admin, deps.logger).catch(() => res.destroy());
    return;
  }
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const ns = query.get('ns') ?? undefined;
  res.setHeader('docker-distribution-api-version', 'registry/2.0');
  if (ns !== undefined) res.setHeader('oci-namespace', ns);
  let served: Served = {};
  let route: RoutedRequest | undefined;
  let requestId: string | undefined;
  try {
    if (!spec.registry) throw new RegistryError('NAME_UNKNOWN', 'this listener serves only /metrics, /healthz and /readyz');
    if (deps.auth && !(await deps.auth.authenticate(req.headers.authorization))) {
      throw new RegistryError('UNAUTHORIZED', 'authentication required', undefined, { 'www-authenticate': deps.auth.challenge });
    }
    route = deps.router.route({ path, ns, host: req.headers.host, listenerUpstream: spec.upstream });
    served = await deps.api.handle({ req, res, route, query, head });
  } catch (err) {
    if (err instanceof RepositoryDenied) {
      // Routed, then refused by the upstream's repository filter: logged and counted with its route.
      route = err.route;
      served = { outcome: 'denied' };
    }
    const error = toRegistryError(err);
    // Ties the client's answer to the log lines about it (the access line, what really failed).
    // Only failures get one: minting one per request cost 8 % of the warm tag rate (bench/ab.ts w3).
    requestId = randomUUID();
    if (!res.headersSent) res.setHeader('x-request-id', requestId);
    if (error.code === 'UNKNOWN') deps.logger.error({ err, requestId, method: req.method, path }, 'request failed');
    // The client is told only a category; what upstream or the network really said is logged here.
    else if (error.cause !== undefined) deps.logger.warn({ err: error.cause, requestId, method: req.method, path, answer: error.message }, 'upstream failed');
    sendError(res, error, head);
  }
  const finish = (): void => {
    deps.observe({
      requestId,
      client,
      method: req.method,
      path,
      status: res.statusCode,
      kind: route?.kind ?? 'invalid',
      upstream: route && 'upstream' in route ? route.upstream : undefined,
      repository: route && 'repository' in route ? route.repository : undefined,
      routedBy: route && 'routedBy' in route ? route.routedBy : undefined,
      outcome: served.outcome,
      bytes: socket.bytesWritten - bytesBefore,
      complete: res.writableFinished,
      seconds: (performance.now() - started) / 1000,
    });
  };
  if (res.writableFinished || res.destroyed) finish();
  else res.once('close', finish);
}
