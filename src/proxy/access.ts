/**
 * The one place where each CONNECT is accounted for: the proxy's metrics and its access-log line
 * come from the same record, so they always agree.
 */
import type { Logger } from 'pino';
import { OPEN_OUTCOMES, type ConnectOutcome, type ProxyMetrics } from '../metrics/metrics.js';

export type { ConnectOutcome } from '../metrics/metrics.js';

/** What is known about a CONNECT once its connection has closed. */
export interface ConnectRecord {
  client: string;
  /** The target as registry names spell it (`host`, `host:port`); undefined when the CONNECT named none. */
  host: string | undefined;
  outcome: ConnectOutcome;
  /** Why it was refused or failed. */
  reason: string | undefined;
  /** The upstream an intercepted connection was served from. */
  upstream: string | undefined;
  /** Why the TLS handshake of an intercepted connection failed (see handshakeFailure). */
  tls: string | undefined;
  /** A tunnel's bytes as relayed; otherwise the client connection's (the CONNECT and TLS included). */
  bytesFromClient: number;
  bytesToClient: number;
  seconds: number;
}

/** What the proxy reports of each CONNECT. */
export interface ConnectObserver {
  /** The CONNECT was answered: counted now, so that a long-lived connection shows while open. */
  answered(outcome: ConnectOutcome, reason: string | undefined): void;
  /** Its connection is over; `answered` came first. */
  closed(record: ConnectRecord): void;
}

const isOpenConnection = (outcome: ConnectOutcome): outcome is (typeof OPEN_OUTCOMES)[number] => (OPEN_OUTCOMES as readonly ConnectOutcome[]).includes(outcome);

/** Returns the observer that feeds the proxy's metrics and, with `accessLog`, writes a line per CONNECT. */
export function createConnectObserver(metrics: ProxyMetrics, logger: Logger, accessLog: boolean): ConnectObserver {
  return {
    answered: (outcome, reason) => {
      metrics.connects.inc({ outcome, reason: reason ?? '' });
      if (isOpenConnection(outcome)) metrics.connections.inc({ outcome });
    },
    closed: (r) => {
      if (isOpenConnection(r.outcome)) metrics.connections.dec({ outcome: r.outcome });
      if (r.tls) metrics.handshakeFailures.inc({ reason: r.tls });
      if (r.outcome === 'tunnelled') {
        metrics.tunnelBytes.inc({ direction: 'from_client' }, r.bytesFromClient);
        metrics.tunnelBytes.inc({ direction: 'to_client' }, r.bytesToClient);
      }
      if (accessLog) logger.info({ ...r, ms: Math.round(r.seconds * 1000), seconds: undefined }, 'proxy: CONNECT');
    },
  };
}

/** OpenSSL's codes for the alerts a client sends when it rejects the certificate it was shown. */
const ALERTS: Record<string, string> = {
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'unknown-ca',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'bad-certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'certificate-unknown',
  // Plain HTTP where TLS was due: a client that took the proxy for a plain-HTTP one.
  ERR_SSL_HTTP_REQUEST: 'not-tls',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not-tls',
};

/** A bounded label for the error that ended a TLS handshake: an alert, `protocol`, or `closed`. */
export function handshakeFailure(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  return ALERTS[code] ?? (code.startsWith('ERR_SSL_') ? 'protocol' : 'closed');
}
