/** Opens the certificate source of each listener that serves HTTPS. */
import type { Logger } from 'pino';
import { parseListenAddress } from '../network/addresses.js';
import { CertificateFiles } from './files.js';
import { TlsError, type TlsSource } from './keypair.js';

/** A listener's TLS settings as validated (see docs/tls.md): files, or ACME. */
export interface ListenerTlsSettings {
  cert?: string | undefined;
  key?: string | undefined;
  /** The CA clients should trust; only told to clients, never used by the listener. */
  ca?: string | undefined;
  acme?: {
    domains: readonly string[];
    email?: string | undefined;
    directory: string;
    directoryCA?: string | undefined;
    path: string;
    challengeAddress: string;
    renewBefore: number;
    checkInterval: number;
    pollInterval: number;
    selfCheck: boolean;
  } | undefined;
}

/** The source of listener `i`; a TlsError's message starts with the listener's key. */
export function openListenerSource(i: number, tls: ListenerTlsSettings, logger: Logger): Promise<TlsSource> {
  return openOne(tls, logger.child({ listener: i })).catch((err: unknown) => {
    throw err instanceof TlsError ? new TlsError(`listeners[${i}].tls: ${err.message}`) : err;
  });
}

async function openOne(tls: ListenerTlsSettings, logger: Logger): Promise<TlsSource> {
  const { acme } = tls;
  if (acme) {
    // Loaded only when a listener uses ACME: the client library costs ~30 MB of RSS.
    const { AcmeCertificates } = await import('./acme.js');
    return AcmeCertificates.start({
      domains: [...acme.domains],
      email: acme.email,
      directory: acme.directory,
      directoryCa: acme.directoryCA,
      path: acme.path,
      challenge: parseListenAddress(acme.challengeAddress),
      renewBefore: acme.renewBefore,
      checkInterval: acme.checkInterval,
      pollInterval: acme.pollInterval,
      selfCheck: acme.selfCheck,
      logger,
    });
  }
  if (tls.cert === undefined || tls.key === undefined) throw new TlsError('needs both cert and key (or acme)');
  return CertificateFiles.open({ cert: tls.cert, key: tls.key, logger });
}
