/**
 * What ACME leaves on disk, in one folder:
 *
 *   account.key                     the ACME account's key (one account per CA, found again by key)
 *   certs/<first-domain>-<hash>/    one folder per CA directory and domain list
 *     cert.pem                      the certificate chain as issued
 *     key.pem                       its private key
 *
 * Files are written to a temporary name and renamed, key before certificate, so a crash leaves
 * either the old pair or a key without its certificate (which the pair check rejects).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomically } from './atomic-write.js';
import type { KeyPair } from './keypair.js';

/** The stored account key and certificate of one ACME setup. */
export class AcmeStore {
  /** The account key file. */
  readonly accountKeyFile: string;
  /** The certificate and key files. */
  readonly certFile: string;
  readonly keyFile: string;

  constructor(dir: string, directory: string, domains: string[]) {
    const root = resolve(dir);
    const id = createHash('sha256').update(JSON.stringify([directory, [...domains].sort()])).digest('hex').slice(0, 12);
    const certDir = join(root, 'certs', `${domains[0]!.replace(/^\*\./, '_.')}-${id}`);
    this.accountKeyFile = join(root, 'account.key');
    this.certFile = join(certDir, 'cert.pem');
    this.keyFile = join(certDir, 'key.pem');
  }

  /** The account key, created by `create` on first use. */
  async accountKey(create: () => Promise<string>): Promise<string> {
    const existing = await readOptional(this.accountKeyFile);
    if (existing !== undefined) return existing;
    const key = await create();
    await writeFileAtomically(this.accountKeyFile, key, 0o600);
    return key;
  }

  /** The stored pair, if both files exist. */
  async load(): Promise<KeyPair | undefined> {
    const [cert, key] = await Promise.all([readOptional(this.certFile), readOptional(this.keyFile)]);
    return cert !== undefined && key !== undefined ? { cert, key } : undefined;
  }

  /** Stores a newly issued pair. */
  async save(pair: KeyPair): Promise<void> {
    await writeFileAtomically(this.keyFile, pair.key, 0o600);
    await writeFileAtomically(this.certFile, pair.cert, 0o644);
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
