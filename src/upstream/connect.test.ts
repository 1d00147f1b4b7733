import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockAgent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamClient } from './client.js';
import { guardedConnector, type Resolver } from './connect.js';

const BLOB_PATH = '/v2/team/app/blobs/sha256:' + 'a'.repeat(64);
/** A server on loopback: what a redirect to this machine would reach. */
let internal: Server;
let internalPort: number;
let reached = 0;
const agents: MockAgent[] = [];

beforeAll(async () => {
  internal = createServer((_req, res) => {
    reached++;
    res.end('internal');
  });
  await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
  internalPort = (internal.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => internal.close(resolve));
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

/** A DNS that knows the upstream (at `upstreamAddress`) and a CDN name that leads to loopback. */
function dnsWith(upstreamAddress: string): Resolver {
  const names: Record<string, string> = { 'registry.example': upstreamAddress, 'cdn.example': '127.0.0.1' };
  return async (hostname) => {
    const address = names[hostname];
    if (address === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return [{ address, family: 4 }];
  };
}

/**
 * A client of https://registry.example, which `upstreamAddress` is said to be, whose blob answers
 * with `status` and `headers`. The upstream is undici's MockAgent; a connection to any other host
 * is real, opened by the guarded connector. `failures` receives what the client observes.
 */
function clientAnswered(upstreamAddress: string, status: number, headers: Record<string, string>, failures: string[] = []): UpstreamClient {
  const url = 'https://registry.example';
  const agent = new MockAgent({ connect: guardedConnector({ upstream: 'test', url: new URL(url), connectTimeoutMs: 1_000, resolve: dnsWith(upstreamAddress) }) });
  agents.push(agent);
  agent.get(url).intercept({ path: BLOB_PATH }).reply(status, '', { headers });
  return new UpstreamClient({ name: 'test', url, timeouts: { connect: 1_000, headers: 1_000, idle: 1_000 }, retries: 0, dispatcher: agent, onFailure: (failure) => failures.push(failure) });
}

const redirectedClient = (upstreamAddress: string, location: string): UpstreamClient => clientAnswered(upstreamAddress, 307, { location });
const refusal = { name: 'UpstreamError', failure: 'redirect-refused', message: expect.stringContaining('leads only to non-public addresses') };

describe('hosts other than the upstream\'s own', () => {
  it('that a public upstream redirects to are dialled only at public addresses, by name or by IP address', async () => {
    const locations = [
      `http://cdn.example:${internalPort}/blob`,
      `http://127.0.0.1:${internalPort}/blob`,
      `http://[::ffff:127.0.0.1]:${internalPort}/blob`,
      'http://169.254.169.254/latest/meta-data/',
    ];
    for (const location of locations) {
      const request = redirectedClient('93.184.215.14', location).request({ method: 'GET', path: BLOB_PATH });
      await expect(request, location).rejects.toMatchObject(refusal);
    }
    expect(reached).toBe(0);
  });

  it('include the token service a public upstream names, whose refusal is observed like a redirect\'s', async () => {
    const challenge = `Bearer realm="https://cdn.example:${internalPort}/token",service="registry"`;
    const failures: string[] = [];
    const request = clientAnswered('93.184.215.14', 401, { 'www-authenticate': challenge }, failures).request({ method: 'GET', path: BLOB_PATH, repository: 'team/app' });
    await expect(request).rejects.toMatchObject(refusal);
    expect([reached, failures]).toEqual([0, ['redirect-refused']]);
  });

  it('that an upstream on a private network redirects to may be on a private network too', async () => {
    for (const location of [`http://cdn.example:${internalPort}/blob`, `http://127.0.0.1:${internalPort}/blob`]) {
      const res = await redirectedClient('10.0.0.5', location).request({ method: 'GET', path: BLOB_PATH });
      expect([res.status, await res.body.text()]).toEqual([200, 'internal']);
    }
  });
});
