/**
 * A certificate and key read from files, reloaded when they change: the folders holding them are
 * watched (which also sees the symlink swap of a Kubernetes secret or cert-manager), and the files
 * are re-read on a slow poll as a fallback. A replacement that cannot be served is logged and the
 * previous certificate stays in use.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { checkKeyPair, TlsError, UpdatingSource, type CertificateInfo, type KeyPair } from './keypair.js';

/** Where the files are and how eagerly to look at them. */
export interface CertificateFilesOptions {
  cert: string;
  key: string;
  logger: Logger;
  /** Quiet time after a change before the files are read (writers replace cert and key one by one). */
  settleMs?: number;
  /** Re-read the files this often even when no change was seen (0: never). */
  pollMs?: number;
}

/** Serves the pair in `cert` and `key`, following their changes. */
export class CertificateFiles extends UpdatingSource {
  private readonly watchers: FSWatcher[] = [];
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly pollTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly options: CertificateFilesOptions, pair: KeyPair, info: CertificateInfo) {
    super(pair, info);
    const settleMs = options.settleMs ?? 200;
    for (const dir of new Set([dirname(options.cert), dirname(options.key)])) {
      const watcher = watch(dir, { persistent: false }, () => {
        clearTimeout(this.settleTimer);
        this.settleTimer = setTimeout(() => void this.reload(), settleMs);
      });
      watcher.on('error', (err) => options.logger.warn({ err: err.message, dir }, 'tls: cannot watch certificate folder; polling only'));
      this.watchers.push(watcher);
    }
    const pollMs = options.pollMs ?? 60_000;
    if (pollMs > 0) this.pollTimer = setInterval(() => void this.reload(), pollMs).unref();
  }

  /** Reads and checks the files; throws TlsError naming the file when they cannot be served. */
  static async open(options: CertificateFilesOptions): Promise<CertificateFiles> {
    const paths = { cert: resolve(options.cert), key: resolve(options.key) };
    const pair = await readPair(paths);
    const info = checkKeyPair(pair, paths);
    warnIfExpiring(info, paths.cert, options.logger);
    return new CertificateFiles({ ...options, ...paths }, pair, info);
  }

  /** Re-reads the files now; resolves when done (a bad pair is logged, never thrown). */
  reload(): Promise<void> {
    return this.serially(() => this.reloadOnce());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.settleTimer);
    clearInterval(this.pollTimer);
    for (const watcher of this.watchers) watcher.close();
    await this.serially(async () => {});
  }

  private async reloadOnce(): Promise<void> {
    if (this.closed) return;
    const { cert, key, logger } = this.options;
    try {
      const pair = await readPair({ cert, key });
      const current = this.current();
      if (pair.cert === current.cert && pair.key === current.key) return;
      const info = checkKeyPair(pair, { cert, key });
      if (this.closed) return;
      warnIfExpiring(info, cert, logger);
      logger.info({ cert, serial: info.serialNumber, validTo: info.validTo.toISOString() }, 'tls: certificate reloaded');
      this.replace(pair, info);
    } catch (err) {
      logger.error({ cert, key, err: (err as Error).message, serial: this.info.serialNumber }, 'tls: new certificate files cannot be served; keeping the current certificate');
    }
  }
}

async function readPair(paths: { cert: string; key: string }): Promise<KeyPair> {
  const read = async (path: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new TlsError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  // One after the other, so that with both files missing the error always names the certificate.
  const cert = await read(paths.cert);
  return { cert, key: await read(paths.key) };
}

const WEEK_MS = 7 * 86_400_000;

function warnIfExpiring(info: CertificateInfo, cert: string, logger: Logger): void {
  const left = info.validTo.getTime() - Date.now();
  if (left < WEEK_MS) {
    logger.warn({ cert, validTo: info.validTo.toISOString() }, left < 0 ? 'tls: the certificate has expired' : 'tls: the certificate expires within a week');
  }
}
