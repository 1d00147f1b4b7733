// A Docker token service (like auth.docker.io) issuing RS256 JWTs that Distribution accepts.
import { createSign, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { listen, closeServer, basicCredentials } from './http.js';
import { run, tempDir } from './process.js';

/** A running token service; `tokenRequests` counts the tokens asked for. */
export interface TokenService {
  url: string;
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
  readonly tokenRequests: number;
  stop(): Promise<void>;
}

interface SigningKey {
  certPath: string;
  privateKey: string;
  x5c: string;
}

let signingKey: Promise<SigningKey> | undefined;

/** Makes the key and self-signed certificate once per test process. */
function loadSigningKey(): Promise<SigningKey> {
  signingKey ??= (async () => {
    const dir = tempDir('token-key');
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-subj', '/CN=regmirror test token issuer', '-keyout', keyPath, '-out', certPath]);
    const cert = await readFile(certPath, 'utf8');
    const x5c = cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    return { certPath, privateKey: await readFile(keyPath, 'utf8'), x5c };
  })();
  return signingKey;
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** Grants pull to anyone and every requested action to an authenticated user. */
function grant(scopes: string[], authenticated: boolean): Access[] {
  return scopes.flatMap((scope) => {
    const match = /^(repository):(.+):([^:]+)$/.exec(scope);
    if (!match) return [];
    const requested = match[3]!.split(',');
    const actions = authenticated ? requested : requested.filter((action) => action === 'pull');
    return [{ type: match[1]!, name: match[2]!, actions }];
  });
}

/** Starts a token service on 127.0.0.1; `users` maps user names to passwords. */
export async function startTokenService(opts: { users?: Record<string, string> } = {}): Promise<TokenService> {
  const key = await loadSigningKey();
  const users = opts.users ?? {};
  const service = 'regmirror-test-registry';
  const issuer = 'regmirror-test-token-issuer';
  let tokenRequests = 0;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token');
    if (req.method !== 'GET' || url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    tokenRequests++;
    const creds = basicCredentials(req.headers.authorization);
    if (creds && users[creds.username] !== creds.password) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = 300;
    const header = { alg: 'RS256', typ: 'JWT', x5c: [key.x5c] };
    const claims = {
      iss: issuer,
      sub: creds?.username ?? '',
      aud: url.searchParams.get('service') ?? service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: grant(url.searchParams.getAll('scope'), creds !== undefined),
    };
    const payload = `${base64url(header)}.${base64url(claims)}`;
    const signature = createSign('RSA-SHA256').update(payload).sign(key.privateKey, 'base64url');
    const token = `${payload}.${signature}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  };

  const server = createServer(handle);
  const url = await listen(server);
  return {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    certPath: key.certPath,
    get tokenRequests() {
      return tokenRequests;
    },
    stop: () => closeServer(server),
  };
}
