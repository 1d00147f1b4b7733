// Upstreams whose TLS certificate this process rejects: a failure of its own kind (`tls`), asked
// once (a retry would be rejected the same way), whether it is the registry's or its token service's.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, MockAgent, type Dispatcher } from 'undici';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueServerCertificate, type IssuedCertificate } from '../tls/ca.js';
import { UpstreamClient } from './client.js';

let trustedCa: IssuedCertificate;
let untrustedCa: IssuedCertificate;
const opened: { close(): unknown }[] = [];

beforeAll(async () => {
  [trustedCa, untrustedCa] = await Promise.all([createCa({ commonName: 'trusted CA', days: 2 }), createCa({ commonName: 'untrusted CA', days: 2 })]);
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close()));
});

/** An HTTPS server on 127.0.0.1 with `pair`; `connections` counts the TCP connections it accepted. */
async function serveWith(pair: IssuedCertificate): Promise<{ url: string; readonly connections: number }> {
  let connections = 0;
  const server: Server = createServer(pair, (_req, res) => res.end('{}'));
  server.on('connection', () => connections++);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  opened.push({ close: () => new Promise((resolve) => server.close(resolve)) });
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
  };
}

/** A client of `url` that would retry twice, and the failures it reported. */
function clientOf(url: string, dispatcher?: Dispatcher): { client: UpstreamClient; failures: string[] } {
  const failures: string[] = [];
  const client = new UpstreamClient({
    name: 'test', url, timeouts: { connect: 2_000, headers: 2_000, idle: 2_000 }, retries: 2,
    onFailure: (failure) => failures.push(failure), ...(dispatcher ? { dispatcher } : {}),
  });
  opened.push(client);
  return { client, failures };
}

const trusting = (ca: IssuedCertificate): Agent => new Agent({ connect: { ca: ca.cert } });

describe('an upstream certificate this process rejects', () => {
  it('is a `tls` failure, not retried: from an unknown CA, for another name, expired', async () => {
    const cases = [
      { why: 'unknown CA', pair: await issueServerCertificate(untrustedCa, { names: ['127.0.0.1'], days: 1 }), code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
      { why: 'another name', pair: await issueServerCertificate(trustedCa, { names: ['registry.example'], days: 1 }), code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
      { why: 'expired', pair: await issueServerCertificate(trustedCa, { names: ['127.0.0.1'], days: -1 }), code: 'CERT_HAS_EXPIRED' },
    ];
    for (const { why, pair, code } of cases) {
      const server = await serveWith(pair);
      const { client, failures } = clientOf(server.url, trusting(trustedCa));
      await expect(client.request({ method: 'GET', path: '/v2/' }), why).rejects.toMatchObject({ failure: 'tls', cause: { code } });
      expect([server.connections, failures], why).toEqual([1, ['tls']]);
    }
  });

  it('is a `tls` failure at the token service too', async () => {
    const tokenService = await serveWith(await issueServerCertificate(untrustedCa, { names: ['127.0.0.1'], days: 1 }));
    const mock = new MockAgent(); // the registry is the mock; the token service is dialled for real
    mock.get('https://registry.example').intercept({ path: '/v2/team/app/manifests/v1' }).reply(401, '', {
      headers: { 'www-authenticate': `Bearer realm="${tokenService.url}/token",service="registry"` },
    });
    const { client } = clientOf('https://registry.example', mock);
    await expect(client.request({ method: 'GET', path: '/v2/team/app/manifests/v1', repository: 'team/app' })).rejects.toMatchObject({ failure: 'tls' });
    expect(tokenService.connections).toBe(1);
  });
});
