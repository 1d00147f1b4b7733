/**
 * The one place where each finished request is accounted for: request metrics and the access log
 * line come from the same record, so they always agree.
 */
import type { Logger } from 'pino';
import type { Metrics, RequestKind } from '../metrics/metrics.js';
import type { RoutedBy } from '../routing/router.js';

/** What is known about a request once its response is done (or the client left). */
export interface RequestRecord {
  /** A failed request's id: sent to the client as `X-Request-Id`, and logged with the failure. */
  requestId: string | undefined;
  client: string | undefined;
  method: string | undefined;
  path: string;
  status: number;
  kind: RequestKind;
  upstream: string | undefined;
  /** The repository on the upstream, when the request named one. */
  repository: string | undefined;
  routedBy: RoutedBy | undefined;
  outcome: string | undefined;
  /** Bytes written to the connection for this response, headers included. */
  bytes: number;
  /** False when the connection closed before the response was complete. */
  complete: boolean;
  seconds: number;
}

/** Returns the function the server calls for every finished request. */
export function createRequestObserver(metrics: Metrics, logger: Logger, accessLog: boolean): (record: RequestRecord) => void {
  return (r) => {
    const upstream = r.upstream ?? '';
    const outcome = r.outcome ?? (r.status >= 400 ? 'error' : 'none');
    metrics.requests.inc({ upstream, kind: r.kind, outcome, status: String(r.status) });
    metrics.requestDuration.observe({ kind: r.kind, outcome }, r.seconds);
    metrics.responseBytes.inc({ upstream, kind: r.kind, outcome }, r.bytes);
    // The record is built only for a line that will be written (not at `--log-level warn`).
    if (accessLog && logger.isLevelEnabled('info')) {
      logger.info({ ...r, ms: Math.round(r.seconds * 1000), seconds: undefined }, 'request');
    }
  };
}
