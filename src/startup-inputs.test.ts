import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config/load.js';
import { HtpasswdAuth } from './http/client-auth.js';
import { readStartupInputs } from './startup-inputs.js';
import { initLocalCa, type LocalCaFiles } from './tls/init.js';

const UNSET = 'REGMIRROR_STARTUP_INPUTS_TEST_UNSET';
const logger = pino({ level: 'silent' });
let dir: string;
let tls: LocalCaFiles;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'regmirror-startup-inputs-'));
  tls = (await initLocalCa({ dir: join(dir, 'tls'), names: ['127.0.0.1'] })).files;
});

describe('readStartupInputs', () => {
  it('reads every input, and leaves ACME listeners unstarted when told to (verify)', async () => {
    const htpasswd = join(dir, 'users.htpasswd');
    writeFileSync(htpasswd, '');
    const redisPassword = join(dir, 'redis-password');
    writeFileSync(redisPassword, 'pw\n');
    const config = parseConfig({
      version: 1,
      listeners: [
        { address: '127.0.0.1:0', tls: { cert: tls.cert, key: tls.key } },
        { address: '127.0.0.1:0', tls: { acme: { domains: ['mirror.example'], challengeAddress: '127.0.0.1:1' } } },
        { address: '127.0.0.1:0' },
      ],
      access: { htpasswd },
      storage: { driver: 's3', bucket: 'cache', credentials: { accessKeyId: 'id', secretAccessKey: 'key' } },
      redis: { url: 'redis://127.0.0.1:1', passwordFile: redisPassword },
      proxy: { listen: '127.0.0.1:0', caCert: tls.caCert, caKey: tls.caKey },
      upstreams: { 'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', password: 'token' } }, 'quay.io': { url: 'https://quay.io' } },
    });
    const problems: string[] = [];
    const inputs = await readStartupInputs(config, logger, { onProblem: (message) => problems.push(message), startAcme: false });
    try {
      expect(problems).toEqual([]);
      expect([...inputs.upstreamCredentials]).toEqual([['ghcr.io', { username: 'bot', password: 'token' }], ['quay.io', undefined]]);
      expect(inputs.auth).toBeInstanceOf(HtpasswdAuth);
      expect(inputs.listenerTls.map((source) => source !== undefined)).toEqual([true, false, false]);
      expect([inputs.s3Credentials, inputs.redisPassword]).toEqual([{ accessKeyId: 'id', secretAccessKey: 'key' }, 'pw']);
      expect(inputs.proxyCa).toBeDefined();
    } finally {
      await inputs.close();
    }
  });

  it('stops at the first problem when not collecting: the first of those verify lists', async () => {
    const config = parseConfig({
      version: 1,
      listeners: [{ address: '127.0.0.1:0', tls: { cert: join(dir, 'missing.crt'), key: tls.key } }],
      access: { htpasswd: join(dir, 'missing.htpasswd') },
      redis: { url: 'redis://127.0.0.1:1', passwordEnv: UNSET },
      upstreams: { 'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', passwordEnv: UNSET } } },
    });
    const problems: string[] = [];
    await (await readStartupInputs(config, logger, { onProblem: (message) => problems.push(message), startAcme: false })).close();
    expect(problems.map((line) => line.slice(0, line.indexOf(':')))).toEqual([
      'config error at upstreams["ghcr.io"].credentials',
      'config error at access.htpasswd',
      'config error at listeners[0].tls',
      'config error at redis.passwordEnv',
    ]);
    await expect(readStartupInputs(config, logger, { startAcme: true })).rejects.toThrow(problems[0]);
  });
});
