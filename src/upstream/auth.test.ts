import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseChallenge } from './auth.js';
import { UpstreamClient } from './client.js';

const credentials = { username: 'user', password: 'secret' };
let agent: MockAgent | undefined;

/** A client for `url` whose requests all go to `mock` (undici's own fake dispatcher: no sockets). */
function clientOf(url: string, mock: MockAgent): UpstreamClient {
  return new UpstreamClient({ name: 'test', url, credentials, timeouts: { connect: 1_000, headers: 1_000, idle: 1_000 }, retries: 0, dispatcher: mock });
}

function mockAgent(): MockAgent {
  agent = new MockAgent();
  agent.disableNetConnect();
  return agent;
}

afterEach(async () => {
  await agent?.close();
  agent = undefined;
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
