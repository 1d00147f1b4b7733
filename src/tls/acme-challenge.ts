/**
 * The HTTP-01 challenge responder: a plain HTTP server of its own, open only while an order is
 * being validated, answering `GET /.well-known/acme-challenge/<token>` with the key authorization.
 */
import { createServer, type Server } from 'node:http';

const PREFIX = '/.well-known/acme-challenge/';

/** An open responder. */
export interface ChallengeResponder {
  /** Publishes the key authorization for a token. */
  set(token: string, keyAuthorization: string): void;
  delete(token: string): void;
  close(): Promise<void>;
}

/** Opens the responder on host:port (host '' for every interface). */
export async function openChallengeResponder(host: string, port: number): Promise<ChallengeResponder> {
  const answers = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const answer = path.startsWith(PREFIX) && (req.method === 'GET' || req.method === 'HEAD') ? answers.get(path.slice(PREFIX.length)) : undefined;
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(answer) }).end(req.method === 'HEAD' ? undefined : answer);
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    set: (token, keyAuthorization) => answers.set(token, keyAuthorization),
    delete: (token) => answers.delete(token),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
