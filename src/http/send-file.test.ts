import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { sendByReads } from './send-file.js';

describe('sendByReads', () => {
  it('settles when the client is gone before a write reaches the socket, instead of waiting forever', async () => {
    // Node drops a write without calling back when the socket is destroyed before the response
    // has seen its 'close': here the socket is destroyed and the first read resolves at once.
    let settled!: Promise<string>;
    const server = createServer((req, res) => {
      req.socket.destroy();
      const gaveUp = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 2 s'), 2_000).unref());
      settled = Promise.race([sendByReads(res, async (buffer) => buffer.length, 0, 10_000_000).then(() => 'settled'), gaveUp]);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => request({ host: '127.0.0.1', port, path: '/' }).on('error', () => resolve()).end());
      expect(await settled).toBe('settled');
    } finally {
      server.close();
    }
  });
});
