// What an HTTPS listener serves, seen from a client (the certificate of a fresh TLS handshake), and
// what the mirror logs about it.
import type { X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:tls';

/** Shakes hands with host:port (trusting `ca` when given) and returns the server's certificate. */
export function servedCertificate(hostPort: string, options: { ca?: string; servername?: string } = {}): Promise<{ cert: X509Certificate; authorized: boolean; error?: Error | undefined }> {
  const at = hostPort.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: hostPort.slice(0, at),
      port: Number(hostPort.slice(at + 1)),
      ...(options.servername ? { servername: options.servername } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: false,
    }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (!cert) reject(new Error('no peer certificate'));
      else resolve({ cert, authorized: socket.authorized, error: socket.authorizationError ?? undefined });
    });
    socket.once('error', reject);
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A log stream for startTestMirror and the JSON lines written to it. */
export interface CollectedLog {
  stream: PassThrough;
  /** The lines whose message starts with `msg`, parsed. */
  entries(msg: string): { level: number; msg: string; err?: string }[];
}

/** Collects what the mirror logs. */
export function collectLog(): CollectedLog {
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
  return {
    stream,
    entries: (msg) => lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: string }).filter((entry) => entry.msg.startsWith(msg)),
  };
}
