/** Operator endpoints: Prometheus metrics, liveness and readiness, and the status page (web/). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { RegistryError } from '../oci/errors.js';
import { STATUS_PATHS, type StatusPage } from '../web/page.js';
import { sendError, sendJson } from './respond.js';

/** What the admin endpoints need. */
export interface AdminDeps {
  registry: Registry;
  /** What the mirror needs to serve, by component: each resolves when it works, rejects with why not. */
  readiness: Record<string, () => Promise<void>>;
  /**
   * The status page and its API: given only to a listener of their own (`admin.address`), since
   * they name repositories; elsewhere their paths answer as the registry would (404).
   */
  status?: StatusPage | undefined;
}

/** Paths the admin handler answers. */
export const ADMIN_PATHS = new Set(['/metrics', '/healthz', '/readyz', ...STATUS_PATHS]);

/** Answers an admin request. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, deps: AdminDeps, logger: Logger): Promise<void> {
  const head = req.method === 'HEAD';
  if (STATUS_PATHS.has(path)) {
    if (deps.status) await deps.status.handle(req, res, path);
    else sendError(res, new RegistryError('NAME_UNKNOWN', 'not a registry API path'), head);
  } else if (path === '/metrics') {
    sendJson(res, 200, await deps.registry.metrics(), head, deps.registry.contentType);
  } else if (path === '/healthz') {
    sendJson(res, 200, '{"status":"ok"}', head);
  } else {
    const checks = await checkReadiness(deps.readiness, logger);
    const ready = Object.values(checks).every((state) => state === 'ok');
    sendJson(res, ready ? 200 : 503, JSON.stringify({ status: ready ? 'ready' : 'not ready', checks }), head);
  }
}

/**
 * Runs every readiness check. The answer says only which components fail: anyone who may probe
 * /readyz would otherwise read storage errors (paths, bucket and endpoint names); the log has them.
 */
async function checkReadiness(readiness: AdminDeps['readiness'], logger: Logger): Promise<Record<string, 'ok' | 'failing'>> {
  const checks: Record<string, 'ok' | 'failing'> = {};
  await Promise.all(Object.entries(readiness).map(async ([component, check]) => {
    try {
      await check();
      checks[component] = 'ok';
    } catch (err) {
      checks[component] = 'failing';
      logger.warn({ err, component }, 'not ready');
    }
  }));
  return checks;
}
