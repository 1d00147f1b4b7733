import { createServer } from 'node:http';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { listenOn } from './server.js';
import { handleAdmin, type AdminDeps } from './admin.js';

/** GET `path` from a server answering with handleAdmin; resolves with the answer and the log lines. */
async function adminGet(path: string, readiness: AdminDeps['readiness']): Promise<{ status: number; body: unknown; log: Record<string, unknown>[] }> {
  const log: Record<string, unknown>[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => log.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)));
  const server = createServer((req, res) => void handleAdmin(req, res, path, { registry: new Registry(), readiness }, pino(stream)));
  const { port } = await listenOn(server, '127.0.0.1', 0);
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.json(), log };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('/readyz', () => {
  it('says which components fail, and logs why without telling the prober', async () => {
    const reason = 'EACCES: permission denied, open \'/srv/regmirror-data/_health\'';
    const failing = await adminGet('/readyz', { storage: () => Promise.reject(new Error(reason)) });
    expect([failing.status, failing.body]).toEqual([503, { status: 'not ready', checks: { storage: 'failing' } }]);
    expect(failing.log).toContainEqual(expect.objectContaining({ msg: 'not ready', component: 'storage', err: expect.objectContaining({ message: reason }) }));

    const ready = await adminGet('/readyz', { storage: () => Promise.resolve() });
    expect([ready.status, ready.body, ready.log]).toEqual([200, { status: 'ready', checks: { storage: 'ok' } }, []]);
  });
});
