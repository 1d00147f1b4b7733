import { createServer, type Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { MockAgent, type buildConnector } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UpstreamClient } from './client.js';
import { dialRule, guardedConnector, type GuardedConnectorOptions, type Resolver } from './connect.js';

const BLOB_PATH = '/v2/team/app/blobs/sha256:' + 'a'.repeat(64);
/** A server on loopback: what a redirect to this machine would reach. */
let internal: Server;
let internalPort: number;
let reached = 0;
const agents: MockAgent[] = [];

beforeAll(async () => {
  internal = createServer((_req, res) => {
    reached++;
    // Each request on a connection of its own: every one goes through the connector.
    res.setHeader('connection', 'close');
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

/** A DNS that knows `names` and a CDN name that leads to loopback; `asked` gets each name it is asked. */
function dns(names: Record<string, string[]>, asked: string[] = []): Resolver {
  const known: Record<string, string[]> = { 'cdn.example': ['127.0.0.1'], ...names };
  return async (hostname) => {
    asked.push(hostname);
    const addresses = known[hostname];
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: isIP(address) }));
  };
}

/** A DNS that knows the upstream, at `upstreamAddresses`, and the CDN name. */
const dnsWith = (...upstreamAddresses: string[]): Resolver => dns({ 'registry.example': upstreamAddresses });

/**
 * A client of https://registry.example whose blob answers with `status` and `headers`, dialling as
 * `dialling` says (default: the upstream at a public address). The upstream is undici's MockAgent;
 * a connection to any other host is real, opened by the guarded connector. `failures` receives what
 * the client observes.
 */
function clientAnswered(status: number, headers: Record<string, string>, dialling: Partial<GuardedConnectorOptions> = {}, failures: string[] = []): UpstreamClient {
  const url = 'https://registry.example';
  const agent = new MockAgent({ connect: guardedConnector({ upstream: 'test', url: new URL(url), connectTimeoutMs: 1_000, resolve: dnsWith('93.184.215.14'), ...dialling }) });
  agents.push(agent);
  agent.get(url).intercept({ path: BLOB_PATH }).reply(status, '', { headers }).persist();
  return new UpstreamClient({ name: 'test', url, timeouts: { connect: 1_000, headers: 1_000, idle: 1_000 }, retries: 0, dispatcher: agent, onFailure: (failure) => failures.push(failure) });
}

const redirectedClient = (upstreamAddress: string, location: string): UpstreamClient => clientAnswered(307, { location }, { resolve: dnsWith(upstreamAddress) });
const refusal = { name: 'UpstreamError', failure: 'redirect-refused', message: expect.stringContaining('leads only to non-public addresses') };

describe('hosts other than the upstream\'s own', () => {
  it('that a public upstream redirects to are dialled only at public addresses, by name or by IP address', async () => {
    const locations = [
      `http://cdn.example:${internalPort}/blob`,
      `http://127.0.0.1:${internalPort}/blob`,
      `http://[::ffff:127.0.0.1]:${internalPort}/blob`,
      `http://[64:ff9b::7f00:1]:${internalPort}/blob`, // NAT64 for 127.0.0.1
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
    const request = clientAnswered(401, { 'www-authenticate': challenge }, {}, failures).request({ method: 'GET', path: BLOB_PATH, repository: 'team/app' });
    await expect(request).rejects.toMatchObject(refusal);
    expect([reached, failures]).toEqual([0, ['redirect-refused']]);
  });

  it('that an upstream on a private network redirects to may be on a private network too', async () => {
    for (const location of [`http://cdn.example:${internalPort}/blob`, `http://127.0.0.1:${internalPort}/blob`]) {
      const res = await redirectedClient('10.0.0.5', location).request({ method: 'GET', path: BLOB_PATH });
      expect([res.status, await res.body.text()]).toEqual([200, 'internal']);
    }
  });

  it('may be on a private network when any address of the upstream\'s own name is (split horizon)', async () => {
    const client = clientAnswered(307, { location: `http://cdn.example:${internalPort}/blob` }, { resolve: dnsWith('93.184.215.14', '10.0.0.5') });
    const res = await client.request({ method: 'GET', path: BLOB_PATH });
    expect([res.status, await res.body.text()]).toEqual([200, 'internal']);
  });

  it('are judged by the upstream\'s own addresses looked up once per 30 s, not at every connection', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    try {
      const asked: string[] = [];
      const client = clientAnswered(307, { location: `http://cdn.example:${internalPort}/blob` }, { resolve: dns({ 'registry.example': ['10.0.0.5'] }, asked) });
      const pull = async (): Promise<void> => {
        const res = await client.request({ method: 'GET', path: BLOB_PATH });
        expect([res.status, await res.body.text()]).toEqual([200, 'internal']);
      };
      for (let i = 0; i < 3; i++) await pull();
      expect(asked.filter((name) => name === 'cdn.example')).toHaveLength(3);
      expect(asked.filter((name) => name === 'registry.example')).toHaveLength(1);
      vi.advanceTimersByTime(30_000);
      await pull();
      expect(asked.filter((name) => name === 'registry.example')).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('are held to public addresses when the upstream\'s own name does not resolve, and the log says so', async () => {
    const lines: { msg?: string; host?: string; err?: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const client = clientAnswered(307, { location: `http://cdn.example:${internalPort}/blob` }, { resolve: dns({}), logger });
    const reachedBefore = reached;
    await expect(client.request({ method: 'GET', path: BLOB_PATH })).rejects.toMatchObject(refusal);
    expect(lines).toEqual([expect.objectContaining({ host: 'registry.example', err: 'ENOTFOUND', msg: expect.stringContaining('its own host registry.example did not resolve') })]);
    expect(reached).toBe(reachedBefore);
  });
});

describe('the lookup for a public upstream\'s other hosts', () => {
  const { lookup } = dialRule({ upstream: 'test', url: new URL('https://registry.example'), resolve: dns({ 'mixed.example': ['127.0.0.1', '93.184.215.14', '10.0.0.5', '2606:4700::1111'] }) });
  const lookUp = (hostname: string, all: boolean): Promise<unknown[]> => new Promise((done) => lookup(hostname, { all }, (...args) => done(args)));

  it('keeps only the public addresses of a name that has public and non-public ones', async () => {
    expect(await lookUp('mixed.example', true)).toEqual([null, [{ address: '93.184.215.14', family: 4 }, { address: '2606:4700::1111', family: 6 }]]);
  });

  it('answers with one address when asked for one (all: false): the first public one, or the refusal', async () => {
    expect(await lookUp('mixed.example', false)).toEqual([null, '93.184.215.14', 4]);
    expect(await lookUp('cdn.example', false)).toEqual([expect.objectContaining(refusal), '']);
  });
});

describe('the connector', () => {
  /** Asks a connector for a connection as undici does; resolves with the error it calls back with. */
  async function failureOf(resolve: Resolver, target: Pick<buildConnector.Options, 'hostname' | 'port'>): Promise<unknown> {
    const connector = guardedConnector({ upstream: 'test', url: new URL('https://registry.example'), connectTimeoutMs: 1_000, resolve });
    const [err, socket] = await new Promise<Parameters<buildConnector.Callback>>((done) => connector({ ...target, host: target.hostname, protocol: 'http:' }, (...args) => done(args)));
    socket?.destroy();
    return err;
  }

  it('fails a name that resolves to no address as not found', async () => {
    expect(await failureOf(dns({ 'empty.example': [] }), { hostname: 'empty.example', port: '80' })).toMatchObject({ code: 'ENOTFOUND' });
  });

  it('calls back with what opening the socket throws', async () => {
    // A public address passes the rule; net.connect then throws at once for the port.
    expect(await failureOf(dnsWith('93.184.215.14'), { hostname: '93.184.215.14', port: '99999' })).toMatchObject({ code: 'ERR_SOCKET_BAD_PORT' });
  });
});
