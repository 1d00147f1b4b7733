// Who may pull: allow-lists, trusted proxies, htpasswd users; upstream credentials never leak.
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, seedImage, skopeoCopyToDir, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { errorCodes, send } from '../harness/http.js';

const UPSTREAM_PASSWORD = 'upstream-secret-5521';
let registry: Registry;
let image: SeededImage;
const mirrors: TestMirror[] = [];
const out = (): string => mkdtempSync(join(tmpdir(), 'access-'));

async function htpasswdLine(user: string, password: string): Promise<string> {
  return run('htpasswd', ['-Bbn', '-C', '5', user, password]);
}

beforeAll(async () => {
  registry = await startRegistry({ auth: 'basic', username: 'ci', password: UPSTREAM_PASSWORD });
  image = await seedImage(registry, { repo: 'org/app', tag: 'v1', layerSizes: [50_000], creds: { username: 'ci', password: UPSTREAM_PASSWORD } });
});

afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await registry?.stop();
});

async function mirror(extra: Parameters<typeof startTestMirror>[0]['access'], allow?: string[]): Promise<TestMirror> {
  const m = await startTestMirror({
    upstreams: { 'ghcr.io': { url: `http://ci:${UPSTREAM_PASSWORD}@${registry.host}` } },
    access: extra,
    ...(allow ? { allow } : {}),
  });
  mirrors.push(m);
  return m;
}

describe('access control', () => {
  it('refuses clients outside the listener allow-list with 403 DENIED', async () => {
    const m = await mirror({}, ['10.0.0.0/8', 'fd00::/8']);
    const res = await send(`${m.url}/v2/`);
    expect([res.status, errorCodes(res.body)]).toEqual([403, ['DENIED']]);
    const allowed = await mirror({}, ['127.0.0.0/8']);
    expect((await send(`${allowed.url}/v2/`)).status).toBe(200);
  });

  it('believes X-Forwarded-For only from trusted proxies', async () => {
    const trusting = await mirror({ trustedProxies: ['127.0.0.1'] }, ['203.0.113.0/24']);
    expect((await send(`${trusting.url}/v2/`, { headers: { 'x-forwarded-for': '203.0.113.5' } })).status).toBe(200);
    expect((await send(`${trusting.url}/v2/`, { headers: { 'x-forwarded-for': '198.51.100.1' } })).status).toBe(403);
    const untrusting = await mirror({}, ['203.0.113.0/24']);
    expect((await send(`${untrusting.url}/v2/`, { headers: { 'x-forwarded-for': '203.0.113.5' } })).status).toBe(403);
  });

  it('takes new allow-lists and trusted proxies at a reload, with no restart', async () => {
    const m = await startTestMirror({
      upstreams: { 'ghcr.io': { url: `http://ci:${UPSTREAM_PASSWORD}@${registry.host}` } },
      allow: ['10.0.0.0/8'],
      admin: { address: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
    });
    mirrors.push(m);
    const metricsUrl = `http://${m.hosts.at(-1)}/metrics`;
    const status = async (url: string, headers: Record<string, string> = {}): Promise<number> => (await send(url, { headers })).status;
    expect([await status(`${m.url}/v2/`), await status(metricsUrl)]).toEqual([403, 403]);

    const opened = m.reload({ allow: ['127.0.0.0/8'], admin: { address: '127.0.0.1:0', allow: ['127.0.0.1'] } });
    expect(opened.applied && [...opened.changes.settings].sort()).toEqual(['admin.allow', 'listeners[0].allow']);
    expect([await status(`${m.url}/v2/`), await status(metricsUrl)]).toEqual([200, 200]);

    expect(m.reload({ allow: ['203.0.113.0/24'], access: { trustedProxies: ['127.0.0.1'] } })).toMatchObject({ applied: true });
    expect(await status(`${m.url}/v2/`, { 'x-forwarded-for': '203.0.113.5' })).toBe(200);
    expect(await status(`${m.url}/v2/`)).toBe(403);
    expect(m.reload({ access: {} })).toMatchObject({ applied: true, changes: { settings: ['access.trustedProxies'] } });
    expect(await status(`${m.url}/v2/`, { 'x-forwarded-for': '203.0.113.5' })).toBe(403);
  });

  it('asks for credentials with a Basic challenge when an htpasswd file is set, and re-reads it', async () => {
    const file = join(out(), 'htpasswd');
    writeFileSync(file, await htpasswdLine('alice', 'wonderland'));
    const m = await mirror({ htpasswd: file, realm: 'test-mirror' });
    const anonymous = await send(`${m.url}/v2/`);
    expect([anonymous.status, errorCodes(anonymous.body)]).toEqual([401, ['UNAUTHORIZED']]);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="test-mirror"');
    const wrong = await send(`${m.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    await expect(skopeoCopyToDir(`${m.host}/ghcr.io/org/app:v1`, out())).rejects.toThrow();
    const copied = await skopeoCopyToDir(`${m.host}/ghcr.io/org/app:v1`, out(), { creds: { username: 'alice', password: 'wonderland' } });
    expect(copied.manifestDigest).toBe(image.manifestDigest);
    expect((await send(`${m.url}/healthz`)).status).toBe(200);

    appendFileSync(file, await htpasswdLine('bob', 'builder'));
    const bob = `Basic ${Buffer.from('bob:builder').toString('base64')}`;
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      await sleep(200);
      status = (await send(`${m.url}/v2/`, { headers: { authorization: bob } })).status;
    }
    expect(status).toBe(200);
  });

  it('never sends upstream credentials to clients, in answers or errors', async () => {
    const m = await mirror({});
    const basic = Buffer.from(`ci:${UPSTREAM_PASSWORD}`).toString('base64');
    for (const path of ['/v2/ghcr.io/org/app/manifests/v1', '/v2/ghcr.io/org/nope/manifests/v1', `/v2/ghcr.io/org/app/blobs/sha256:${'0'.repeat(64)}`, '/v2/ghcr.io/org/app/tags/list']) {
      const res = await send(`${m.url}${path}`);
      const everything = JSON.stringify([...res.headers]) + res.body.toString('latin1');
      expect(everything).not.toContain(UPSTREAM_PASSWORD);
      expect(everything).not.toContain(basic);
    }
  });
});
