/**
 * Listeners: plain node:http servers (no framework on the blob path), each optionally pinned to an
 * upstream. Every request is parsed and routed once, handled, timed and logged in one place.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { RegistryError, toRegistryError } from '../oci/errors.js';
import type { RoutedRequest, Router } from '../routing/router.js';
import type { RequestRecord } from './access.js';
import { ADMIN_PATHS, handleAdmin, type AdminDeps } from './admin.js';
import type { RegistryApi, Served } from './registry-api.js';
import { sendError } from './respond.js';

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
}

/** What the server needs. */
export interface ServerDeps {
  router: Router;
  api: RegistryApi;
  admin: AdminDeps;
  /** Called once per finished registry request (metrics and access log). */
  observe: (record: RequestRecord) => void;
  logger: Logger;
}

/** An open listener. */
export interface OpenListener {
  server: Server;
  address: AddressInfo;
  upstream?: string | undefined;
}

/** Opens a listener and resolves once it accepts connections. */
export async function listen(spec: ListenerSpec, deps: ServerDeps): Promise<OpenListener> {
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 60_000, headersTimeout: 30_000 }, (req, res) => {
    void handle(req, res, spec, deps);
  });
  // Garbage on the wire (a TLS ClientHello on a plain port, a half-open scan) just closes the connection.
  server.on('clientError', (err, socket) => {
    deps.logger.debug({ err: err.message }, 'client protocol error');
    if (socket.writable && !(err as NodeJS.ErrnoException).code?.startsWith('ECONN')) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(spec.port, spec.host || undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, address: server.address() as AddressInfo, upstream: spec.upstream };
}

async function handle(req: IncomingMessage, res: ServerResponse, spec: ListenerSpec, deps: ServerDeps): Promise<void> {
  const started = performance.now();
  const socket = req.socket;
  const bytesBefore = socket.bytesWritten;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const head = req.method === 'HEAD';
  if (spec.admin && ADMIN_PATHS.has(path) && (head || req.method === 'GET')) {
    await handleAdmin(req, res, path, deps.admin).catch(() => res.destroy());
    return;
  }
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const ns = query.get('ns') ?? undefined;
  res.setHeader('docker-distribution-api-version', 'registry/2.0');
  if (ns !== undefined) res.setHeader('oci-namespace', ns);
  let served: Served = {};
  let route: RoutedRequest | undefined;
  try {
    if (!spec.registry) throw new RegistryError('NAME_UNKNOWN', 'this listener serves only /metrics, /healthz and /readyz');
    route = deps.router.route({ path, ns, host: req.headers.host, listenerUpstream: spec.upstream });
    if (req.method !== 'GET' && !head) throw new RegistryError('UNSUPPORTED', 'regmirror is a read-only mirror: only GET and HEAD are served');
    served = await deps.api.handle({ req, res, route, query, head });
  } catch (err) {
    const error = toRegistryError(err);
    if (error.code === 'UNKNOWN') deps.logger.error({ err, method: req.method, path }, 'request failed');
    sendError(res, error, head);
  }
  const client = socket.remoteAddress;
  const finish = (): void => {
    deps.observe({
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
