// A start that fails after it opened its Redis connection (here: a port already taken) closes that
// connection, and the index, instead of leaving them to whoever embeds the mirror.
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startMirror } from '../../src/main.js';
import { tempDir } from '../support/index.js';
import { startRedis, type RedisServer } from './redis.js';

let redis: RedisServer;
let observer: Redis;

beforeAll(async () => {
  redis = await startRedis();
  observer = new Redis(redis.url);
});

afterAll(async () => {
  observer?.disconnect();
  await redis?.stop();
});

/** Connections Redis has open now, this test's own included. */
async function redisClients(): Promise<number> {
  return String(await observer.client('LIST')).trim().split('\n').length;
}

describe('a start that fails after connecting to Redis', () => {
  it('closes its Redis connection and its index', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const before = await redisClients();
    const input = {
      version: 1,
      storage: { path: tempDir('failed-start') },
      redis: { url: redis.url },
      upstreams: { 'docker.io': { url: 'https://registry-1.docker.io' } },
    };
    try {
      await expect(startMirror(parseConfig({ ...input, listeners: [{ address: `127.0.0.1:${port}` }] }), pino({ level: 'silent' }))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      taken.close();
    }
    for (let i = 0; i < 40 && (await redisClients()) > before; i++) await sleep(50);
    expect(await redisClients()).toBe(before);
    // The index was closed too: a mirror on the same folder starts.
    const again = await startMirror(parseConfig({ ...input, listeners: [{ address: '127.0.0.1:0' }] }), pino({ level: 'silent' }));
    await again.close(0);
  });
});
