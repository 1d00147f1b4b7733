/**
 * A certificate and its key as a listener serves them, checked before use, and the contract every
 * certificate source (files on disk, ACME) offers the HTTPS listeners.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';

/** PEM texts of a certificate (leaf first, then any intermediates) and its private key. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** What a listener needs to know about the certificate it serves. */
export interface CertificateInfo {
  serialNumber: string;
  fingerprint256: string;
  subjectAltName: string | undefined;
  validFrom: Date;
  validTo: Date;
}

/** Where an HTTPS listener gets its certificate; it may change while the listener runs. */
export interface TlsSource {
  /** The key pair to serve now. */
  current(): KeyPair;
  /** Calls `listener` with every new key pair; returns a function that stops the calls. */
  onChange(listener: (pair: KeyPair) => void): () => void;
  /** Stops watching and renewing. */
  close(): Promise<void>;
}

/** A certificate or key that cannot be served; the message says which file and why. */
export class TlsError extends Error {
  override name = 'TlsError';
}

/** Checks that `pair` is a parseable certificate with its matching key; returns the certificate's facts. */
export function checkKeyPair(pair: KeyPair, label: { cert: string; key: string }): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
  } catch (err) {
    throw new TlsError(`${label.cert} is not a PEM certificate (${(err as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(pair.key);
  } catch (err) {
    throw new TlsError(`${label.key} is not a PEM private key (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new TlsError(`${label.key} is not the key of the certificate in ${label.cert}`);
  try {
    createSecureContext(pair);
  } catch (err) {
    throw new TlsError(`${label.cert} with ${label.key} cannot be served: ${(err as Error).message}`);
  }
  return certificateInfo(cert);
}

/** The facts of the first certificate in `pem`. */
export function certificateInfo(cert: X509Certificate | string): CertificateInfo {
  const x509 = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  return {
    serialNumber: x509.serialNumber,
    fingerprint256: x509.fingerprint256,
    subjectAltName: x509.subjectAltName,
    validFrom: new Date(x509.validFrom),
    validTo: new Date(x509.validTo),
  };
}

/**
 * The part every source shares: the pair being served, its listeners, and a queue that runs one
 * update (reload, renewal) at a time.
 */
export abstract class UpdatingSource implements TlsSource {
  private readonly listeners = new Set<(pair: KeyPair) => void>();
  private queue: Promise<void> = Promise.resolve();

  protected constructor(
    private pair: KeyPair,
    /** The certificate being served. */
    public info: CertificateInfo,
  ) {}

  current(): KeyPair {
    return this.pair;
  }

  onChange(listener: (pair: KeyPair) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  abstract close(): Promise<void>;

  /** Runs `update` after the updates before it; resolves when it is done. `update` must not throw. */
  protected serially(update: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(update);
    return this.queue;
  }

  /** Serves a new pair from now on and tells the listeners. */
  protected replace(pair: KeyPair, info: CertificateInfo): void {
    this.pair = pair;
    this.info = info;
    for (const listener of this.listeners) listener(pair);
  }
}
