/**
 * Certificates from an ACME CA (Let's Encrypt), obtained with acme-client over HTTP-01 and renewed
 * in the background. At start a stored certificate that is still valid for the domains is served
 * at once (and renewed later if due); without one, startup waits for the first order and fails
 * with the CA's reason. A failed renewal is logged and retried; the current certificate stays.
 */
import acme from 'acme-client';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { openChallengeResponder } from './acme-challenge.js';
import { AcmeStore } from './acme-store.js';
import { checkKeyPair, TlsError, UpdatingSource, type CertificateInfo, type KeyPair } from './keypair.js';

/** Let's Encrypt's production directory. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** How to obtain and renew. */
export interface AcmeOptions {
  /** DNS names of the certificate; the first is its subject. */
  domains: string[];
  /** Contact address for the CA's expiry and policy mail. */
  email?: string | undefined;
  /** The CA's directory URL. */
  directory: string;
  /** A PEM file of CA certificates to trust for the directory's HTTPS, besides the system's. */
  directoryCa?: string | undefined;
  /** The folder for the account key and the certificates. */
  path: string;
  /** Where the HTTP-01 responder listens while an order is validated. */
  challenge: { host: string; port: number };
  /** Renew when the certificate expires within this many ms. */
  renewBefore: number;
  /** Look at the certificate at least this often, and wait this long after a failed attempt (ms). */
  checkInterval: number;
  /** First wait (ms) while the CA validates or issues; it doubles up to 30 s. */
  pollInterval: number;
  /** Fetch the challenge from http://<domain>/ before asking the CA to (catches DNS and firewall mistakes). */
  selfCheck: boolean;
  logger: Logger;
}

/** Longest delay setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Even a zero checkInterval does not make a busy loop of orders. */
const MIN_TIMER_MS = 100;

/** Serves an ACME certificate and keeps it renewed. */
export class AcmeCertificates extends UpdatingSource {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly options: AcmeOptions, private readonly store: AcmeStore, pair: KeyPair, info: CertificateInfo) {
    super(pair, info);
  }

  /** Loads the stored certificate or obtains one; throws TlsError when neither works. */
  static async start(options: AcmeOptions): Promise<AcmeCertificates> {
    const store = new AcmeStore(options.path, options.directory, options.domains);
    const stored = await loadStored(store, options);
    const issued = stored ?? (await order(store, options).catch((err: unknown) => {
      throw new TlsError(`cannot obtain a certificate for ${options.domains.join(', ')} from ${options.directory}: ${(err as Error).message}`);
    }));
    const certificates = new AcmeCertificates(options, store, issued.pair, issued.info);
    certificates.schedule(stored ? certificates.untilDue() : options.checkInterval);
    return certificates;
  }

  /** Renews now; resolves when done (a failure is logged, never thrown). */
  renew(): Promise<void> {
    return this.serially(() => this.renewOnce());
  }

  /** Stops renewing. An order in flight is not awaited (it may take minutes); it finishes unused. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Milliseconds until the certificate is due for renewal (0 when it is). */
  private untilDue(): number {
    return Math.max(0, this.info.validTo.getTime() - this.options.renewBefore - Date.now());
  }

  private schedule(delay: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const wait = Math.max(MIN_TIMER_MS, Math.min(delay, this.options.checkInterval, MAX_TIMER_MS));
    this.timer = setTimeout(() => {
      if (this.untilDue() > 0) this.schedule(this.untilDue());
      else void this.renew();
    }, wait);
    this.timer.unref();
  }

  private async renewOnce(): Promise<void> {
    if (this.closed) return;
    const { logger, domains } = this.options;
    try {
      logger.info({ domains, serial: this.info.serialNumber, validTo: this.info.validTo.toISOString() }, 'acme: renewing the certificate');
      const issued = await order(this.store, this.options);
      if (this.closed) return;
      this.replace(issued.pair, issued.info);
      if (this.untilDue() === 0) logger.warn({ domains, renewBefore: this.options.renewBefore }, 'acme: renewBefore exceeds the certificate\'s lifetime: it is renewed at every check');
    } catch (err) {
      logger.error({ domains, err: (err as Error).message, validTo: this.info.validTo.toISOString() }, 'acme: renewal failed; keeping the current certificate and trying again later');
    }
    // Wait a full interval after any attempt, even when the new certificate is already due.
    this.schedule(this.options.checkInterval);
  }
}

interface Issued {
  pair: KeyPair;
  info: CertificateInfo;
}

/** The stored pair if it is valid now and names every domain; else undefined (logged). */
async function loadStored(store: AcmeStore, options: AcmeOptions): Promise<Issued | undefined> {
  const pair = await store.load();
  if (!pair) return undefined;
  try {
    const info = checkKeyPair(pair, { cert: store.certFile, key: store.keyFile });
    const names = new Set((info.subjectAltName ?? '').split(', ').map((n) => n.replace(/^DNS:/, '')));
    if (info.validTo.getTime() <= Date.now() || !options.domains.every((d) => names.has(d))) return undefined;
    options.logger.info({ domains: options.domains, serial: info.serialNumber, validTo: info.validTo.toISOString() }, 'acme: using the stored certificate');
    return { pair, info };
  } catch (err) {
    options.logger.warn({ err: (err as Error).message }, 'acme: the stored certificate cannot be used; ordering a new one');
    return undefined;
  }
}

/** Places one order with the CA, answers its HTTP-01 challenges, stores and returns the result. */
async function order(store: AcmeStore, options: AcmeOptions): Promise<Issued> {
  const { logger, domains } = options;
  if (options.directoryCa !== undefined) trustForDirectory(options.directory, options.directoryCa);
  const accountKey = await store.accountKey(async () => (await acme.crypto.createPrivateEcdsaKey()).toString());
  const client = new acme.Client({ directoryUrl: options.directory, accountKey, backoffMin: options.pollInterval, backoffAttempts: 10 });
  const [key, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: domains }, await acme.crypto.createPrivateEcdsaKey());
  const responder = await openChallengeResponder(options.challenge.host, options.challenge.port);
  logger.info({ domains, directory: options.directory }, 'acme: ordering a certificate');
  let cert: string;
  try {
    cert = await client.auto({
      csr,
      ...(options.email !== undefined ? { email: options.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      skipChallengeVerification: !options.selfCheck,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') throw new Error(`the CA offers no http-01 challenge (${challenge.type})`);
        responder.set(challenge.token, keyAuthorization);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        responder.delete(challenge.token);
      },
    });
  } finally {
    await responder.close();
  }
  const pair = { cert, key: key.toString() };
  const info = checkKeyPair(pair, { cert: `the certificate from ${options.directory}`, key: 'its key' });
  await store.save(pair);
  logger.info({ domains, serial: info.serialNumber, validTo: info.validTo.toISOString() }, 'acme: certificate issued');
  return { pair, info };
}

/** HTTPS agents for ACME directories with a CA of their own, by origin. */
const directoryAgents = new Map<string, Agent>();

/**
 * Makes acme-client trust the CA in `caFile` for requests to the directory's origin only: other
 * origins, and every other HTTPS client in the process, keep the system's trust.
 */
function trustForDirectory(directory: string, caFile: string): void {
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new TlsError(`cannot read the ACME directory CA ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (directoryAgents.size === 0) {
    acme.axios.interceptors.request.use((config) => {
      const agent = config.url ? directoryAgents.get(new URL(config.url).origin) : undefined;
      if (agent) config.httpsAgent = agent;
      return config;
    });
  }
  directoryAgents.set(new URL(directory).origin, new Agent({ ca: [...rootCertificates, ca], keepAlive: false }));
}
