/** Operator endpoints: Prometheus metrics, liveness and readiness, and the status page (web/). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { RegistryError } from '../oci/errors.js';
import { STATUS_PATHS, type StatusPage } from '../web/page.js';
import { sendError, sendJson } from './respond.js';

/** What the admin endpoints need. */
export interface AdminDeps {
  registry: Registry;
  /** Resolves when the mirror can serve (storage writable); rejects with the reason otherwise. */
  ready: () => Promise<void>;
  /**
   * The status page and its API: given only to a listener of their own (`admin.address`), since
   * they name repositories; elsewhere their paths answer as the registry would (404).
   */
  status?: StatusPage | undefined;
}

/** Paths the admin handler answers. */
export const ADMIN_PATHS = new Set(['/metrics', '/healthz', '/readyz', ...STATUS_PATHS]);

/** Answers an admin request. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, deps: AdminDeps): Promise<void> {
  const head = req.method === 'HEAD';
  if (STATUS_PATHS.has(path)) {
    if (deps.status) await deps.status.handle(req, res, path);
    else sendError(res, new RegistryError('NAME_UNKNOWN', 'not a registry API path'), head);
  } else if (path === '/metrics') {
    sendJson(res, 200, await deps.registry.metrics(), head, deps.registry.contentType);
  } else if (path === '/healthz') {
    sendJson(res, 200, '{"status":"ok"}', head);
  } else {
    try {
      await deps.ready();
      sendJson(res, 200, '{"status":"ready"}', head);
    } catch (err) {
      sendJson(res, 503, JSON.stringify({ status: 'not ready', reason: (err as Error).message }), head);
    }
  }
}
