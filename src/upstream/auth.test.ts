import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Metrics } from '../metrics/metrics.js';
import { parseChallenge } from './auth.js';
import { UpstreamClient, type UpstreamClientOptions } from './client.js';

const credentials = { username: 'user', password: 'secret' };
const agents: MockAgent[] = [];

/** A client for `url` whose requests all go to `mock` (undici's own fake dispatcher: no sockets). */
function clientOf(url: string, mock: MockAgent, options: Partial<UpstreamClientOptions> = {}): UpstreamClient {
  return new UpstreamClient({ name: 'test', url, credentials, timeouts: { connect: 1_000, headers: 1_000, idle: 1_000 }, retries: 0, dispatcher: mock, ...options });
}

function mockAgent(): MockAgent {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  return agent;
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
  vi.restoreAllMocks();
});

describe('parseChallenge', () => {
  it('reads the challenges registries send', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
  });

  it('ignores a challenge longer than any real one, and a long run of name characters stays linear', () => {
    expect(parseChallenge(`Bearer realm="${'x'.repeat(9_000)}"`)).toBeUndefined();
    const started = performance.now();
    expect(parseChallenge(`Bearer ${'a'.repeat(8_000)}`)).toEqual({ scheme: 'bearer', params: {} });
    expect(performance.now() - started).toBeLessThan(1_000); // the unguarded pattern took tens of ms here, 4 s at 64 KiB
  });
});

describe('upstream credentials', () => {
  it('answers no challenge from a host a redirect led to: its token service never sees the credentials', async () => {
    const mock = mockAgent();
    const path = '/v2/team/app/blobs/sha256:' + 'a'.repeat(64);
    mock.get('https://registry.example').intercept({ path }).reply(307, '', { headers: { location: 'https://cdn.example/blob' } });
    mock.get('https://cdn.example').intercept({ path: '/blob' }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="https://evil.example/token"' } });
    const res = await clientOf('https://registry.example', mock).request({ method: 'GET', path, repository: 'team/app' });
    expect(res.status).toBe(401);
    expect(mock.pendingInterceptors()).toEqual([]); // every call the mock expected, and no other: evil.example was not asked
  });

  it('sends credentials to an https upstream\'s token service only over https', async () => {
    const mock = mockAgent();
    mock.get('https://registry.example').intercept({ path: '/v2/team/app/manifests/v1' }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="http://registry.example/token",service="r"' } });
    await expect(clientOf('https://registry.example', mock).request({ method: 'GET', path: '/v2/team/app/manifests/v1', repository: 'team/app' })).rejects.toThrow(/token service at http:\/\/ refused/);
  });

  it('refuses a token reply too long to be one', async () => {
    const mock = mockAgent();
    mock.get('https://registry.example').intercept({ path: '/v2/team/app/manifests/v1' }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="https://auth.example/token",service="r"' } });
    mock.get('https://auth.example').intercept({ path: /^\/token/ }).reply(200, JSON.stringify({ token: 'x'.repeat(100_000) }));
    await expect(clientOf('https://registry.example', mock).request({ method: 'GET', path: '/v2/team/app/manifests/v1', repository: 'team/app' })).rejects.toThrow(/without a token/);
  });
});

describe('token service failures', () => {
  const manifest = '/v2/team/app/manifests/v1';
  const pull = { method: 'GET', path: manifest, repository: 'team/app' } as const;

  /** A mock registry that challenges for https://auth.example/token, then serves the manifest to a bearer. */
  function challengingRegistry(): MockAgent {
    const mock = mockAgent();
    const registry = mock.get('https://registry.example');
    registry.intercept({ path: manifest }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="https://auth.example/token",service="r"' } });
    registry.intercept({ path: manifest, headers: { authorization: 'Bearer t' } }).reply(200, '{}');
    return mock;
  }
  const tokenService = (mock: MockAgent) => mock.get('https://auth.example').intercept({ path: /^\/token/ });

  it('are an outage when it answers 5xx or 429: retried as the registry\'s own would be', async () => {
    for (const status of [503, 429]) {
      const mock = challengingRegistry();
      tokenService(mock).reply(status, '');
      tokenService(mock).reply(200, JSON.stringify({ token: 't' }));
      const res = await clientOf('https://registry.example', mock, { retries: 1 }).request(pull);
      expect(res.status, String(status)).toBe(200);
      expect(mock.pendingInterceptors(), String(status)).toEqual([]);
    }
  });

  it('wait for the Retry-After of a 429, or give up at once when it is longer than the client waits', async () => {
    const mock = challengingRegistry();
    tokenService(mock).reply(429, '', { headers: { 'retry-after': '1' } });
    tokenService(mock).reply(200, JSON.stringify({ token: 't' }));
    const started = performance.now();
    expect((await clientOf('https://registry.example', mock, { retries: 1 }).request(pull)).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);

    const longer = challengingRegistry();
    tokenService(longer).reply(429, '', { headers: { 'retry-after': '60' } });
    await expect(clientOf('https://registry.example', longer, { retries: 1 }).request(pull)).rejects.toMatchObject({ failure: 'unavailable', answer: { status: 429, retryAfter: '60' } });
  });

  it('stay refused credentials when it answers 401 or 403: not retried', async () => {
    for (const status of [401, 403]) {
      const mock = challengingRegistry();
      tokenService(mock).reply(status, '');
      await expect(clientOf('https://registry.example', mock, { retries: 1 }).request(pull), String(status)).rejects.toMatchObject({ failure: 'auth' });
    }
  });

  it('are a timeout when it does not answer in time, or stops sending its reply', async () => {
    const timeout = AbortSignal.timeout.bind(AbortSignal);
    vi.spyOn(AbortSignal, 'timeout').mockImplementation(() => timeout(200)); // instead of 30 s
    const server = createServer((req, res) => {
      if (req.url?.includes('body')) res.writeHead(200, { 'content-type': 'application/json' }).write('{"tok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const path of ['/head', '/body']) {
        const mock = mockAgent();
        mock.enableNetConnect('127.0.0.1:' + port);
        mock.get('http://registry.example').intercept({ path: manifest }).reply(401, '', { headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}${path}"` } });
        await expect(clientOf('http://registry.example', mock).request(pull), path).rejects.toMatchObject({ failure: 'timeout' });
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('token requests in the metrics', () => {
  it('are not upstream requests: only the registry\'s answers are counted there', async () => {
    const mock = mockAgent();
    const manifest = '/v2/team/app/manifests/v1';
    const registry = mock.get('https://registry.example');
    registry.intercept({ path: manifest }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="https://auth.example/token"' } });
    registry.intercept({ path: manifest, headers: { authorization: 'Bearer t' } }).reply(200, '{}');
    mock.get('https://auth.example').intercept({ path: /^\/token/ }).reply(200, JSON.stringify({ token: 't' }));
    const metrics = new Metrics();
    await clientOf('https://registry.example', mock, metrics.upstreamObserver('test')).request({ method: 'GET', path: manifest, repository: 'team/app' });
    const text = await metrics.registry.metrics();
    expect(text.split('\n').filter((line) => line.startsWith('regmirror_upstream_requests_total'))).toEqual([
      'regmirror_upstream_requests_total{upstream="test",method="GET",status="401"} 1',
      'regmirror_upstream_requests_total{upstream="test",method="GET",status="200"} 1',
    ]);
    expect(text).toContain('# HELP regmirror_upstream_requests_total Requests sent to upstream registries (redirect hops included, token requests not)');
  });
});

describe('token requests that fail', () => {
  it('are observed once each, by kind, however many requests shared them', async () => {
    const mock = mockAgent();
    const manifest = '/v2/team/app/manifests/v1';
    mock.get('https://registry.example').intercept({ path: manifest }).reply(401, '', { headers: { 'www-authenticate': 'Bearer realm="https://auth.example/token"' } }).times(3);
    const tokenService = mock.get('https://auth.example');
    tokenService.intercept({ path: /^\/token/ }).reply(503, '').delay(100); // both pulls join it
    tokenService.intercept({ path: /^\/token/ }).reply(401, '');
    const failures: string[] = [];
    const client = clientOf('https://registry.example', mock, { onFailure: (failure) => failures.push(failure) });
    const pull = (): Promise<unknown> => client.request({ method: 'GET', path: manifest, repository: 'team/app' });
    await expect(Promise.all([pull(), pull()])).rejects.toMatchObject({ failure: 'unavailable' });
    await expect(pull()).rejects.toMatchObject({ failure: 'auth' });
    expect(failures).toEqual(['unavailable', 'auth']);
  });
});
