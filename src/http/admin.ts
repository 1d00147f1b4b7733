/** Operator endpoints: Prometheus metrics, liveness and readiness. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { sendJson } from './respond.js';

/** What the admin endpoints need. */
export interface AdminDeps {
  registry: Registry;
  /** Resolves when the mirror can serve (storage writable); rejects with the reason otherwise. */
  ready: () => Promise<void>;
}

/** Paths the admin handler answers. */
export const ADMIN_PATHS = new Set(['/metrics', '/healthz', '/readyz']);

/** Answers an admin request. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, deps: AdminDeps): Promise<void> {
  const head = req.method === 'HEAD';
  if (path === '/metrics') {
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
