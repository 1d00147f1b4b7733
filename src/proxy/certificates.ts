/**
 * Certificates for the registry hosts the proxy intercepts, signed on the fly by the local CA from
 * `regmirror tls init`. Each host gets its own key and a certificate naming only that host, valid
 * for a week; it is kept (as a ready TLS context) for a day, for at most MAX_HOSTS hosts, least
 * recently used first out. Concurrent CONNECTs to one host share one signing. The CA files are
 * watched: a replaced CA drops every certificate signed by the old one.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { issueServerCertificate } from '../tls/ca.js';
import { CertificateFiles } from '../tls/files.js';
import { TlsError } from '../tls/keypair.js';

/** Most hosts whose certificate is kept. Only hosts that name an upstream are intercepted, so a handful. */
export const MAX_HOSTS = 256;
/** Validity of a host certificate. */
export const HOST_CERT_DAYS = 7;
/** A certificate is signed again after this, so one in use always has days left. */
const REMINT_AFTER_MS = 86_400_000;

/** Where the CA is. */
export interface HostCertificatesOptions {
  caCert: string;
  caKey: string;
  logger: Logger;
  /** Most hosts kept (default MAX_HOSTS). */
  maxHosts?: number;
}

/** Signs and caches a TLS context per intercepted host. */
export class HostCertificates {
  private readonly contexts: LRUCache<string, Promise<SecureContext>>;
  /** Certificates signed since start. */
  minted = 0;

  private constructor(private readonly ca: CertificateFiles, maxHosts: number) {
    this.contexts = new LRUCache({ max: maxHosts, ttl: REMINT_AFTER_MS });
    ca.onChange(() => this.contexts.clear());
  }

  /**
   * Reads the CA and signs one certificate with it, so a CA that cannot sign stops the start rather
   * than the first pull. Throws TlsError naming the file.
   */
  static async open(options: HostCertificatesOptions): Promise<HostCertificates> {
    const ca = await CertificateFiles.open({ cert: options.caCert, key: options.caKey, logger: options.logger });
    try {
      if (!new X509Certificate(ca.current().cert).ca) throw new TlsError(`${options.caCert} is not a CA certificate (regmirror tls init makes one)`);
      const certificates = new HostCertificates(ca, options.maxHosts ?? MAX_HOSTS);
      await certificates.context('regmirror.invalid').catch((err: unknown) => {
        throw new TlsError(`${options.caKey} cannot sign certificates: ${(err as Error).message}`);
      });
      certificates.contexts.clear();
      certificates.minted = 0;
      return certificates;
    } catch (err) {
      await ca.close();
      throw err;
    }
  }

  /** The TLS context to present for `host` (a DNS name or IP address): cached, or signed now. */
  context(host: string): Promise<SecureContext> {
    const cached = this.contexts.get(host);
    if (cached) return cached;
    const pending = this.sign(host);
    this.contexts.set(host, pending);
    pending.catch(() => {
      if (this.contexts.get(host) === pending) this.contexts.delete(host);
    });
    return pending;
  }

  /** The CA certificate (PEM) clients must trust. */
  get caCertificate(): string {
    return this.ca.current().cert;
  }

  /** Stops watching the CA files. */
  close(): Promise<void> {
    return this.ca.close();
  }

  private async sign(host: string): Promise<SecureContext> {
    const issued = await issueServerCertificate(this.ca.current(), { names: [host], days: HOST_CERT_DAYS });
    this.minted++;
    return createSecureContext({ cert: issued.cert, key: issued.key });
  }
}
