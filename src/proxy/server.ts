/**
 * The HTTPS forward proxy (`proxy.listen`), for clients that can be given a proxy but no mirror
 * (dockerd for every registry but Docker Hub). A CONNECT to a registry host regmirror mirrors is
 * answered by regmirror itself: TLS is terminated with a certificate for that host from the local
 * CA, and the requests inside are handled by the same code as any listener's, pinned to that
 * host's upstream. Other hosts are tunnelled or refused (see policy.ts). Only clients in
 * `proxy.allow` are served at all.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, BlockList, Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { TLSSocket } from 'node:tls';
import { listHas } from '../network/addresses.js';
import { closeOnClientError, createListenerServer, listenOn, serverOptions, type ServerDeps } from '../http/server.js';
import { handshakeFailure, type ConnectObserver, type ConnectOutcome, type ConnectRecord } from './access.js';
import type { HostCertificates } from './certificates.js';
import { authorityName, parseAuthority, type Authority } from './hosts.js';
import { decide, type ProxyPolicy } from './policy.js';
import { openTunnel, TunnelError } from './tunnel.js';

/** Where the proxy listens and what it lets through. */
export interface ProxySpec {
  host: string;
  port: number;
  /** Client addresses served; everyone else gets 403. */
  allow: BlockList;
  policy: ProxyPolicy;
}

/** What the proxy needs: the listeners' dependencies, and the certificates it presents. */
export interface ProxyDeps {
  server: ServerDeps;
  certificates: HostCertificates;
  /** Told of every CONNECT: its metrics and access-log line. */
  observe: ConnectObserver;
  /** Time to connect a tunnel (default 10 s). */
  connectTimeoutMs?: number;
}

/** A running proxy. */
export interface OpenProxy {
  address: AddressInfo;
  /** Stops accepting, lets open connections finish up to `graceMs`, then cuts them. */
  close(graceMs: number): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 405: 'Method Not Allowed', 502: 'Bad Gateway', 504: 'Gateway Timeout' };

/** Opens the proxy; resolves once it accepts connections. */
export async function startProxy(spec: ProxySpec, deps: ProxyDeps): Promise<OpenProxy> {
  const { logger, limits } = deps.server;
  const sockets = new Set<Socket>();
  // One request server per intercepted upstream: each answers like a listener pinned to it.
  const inner = new Map<string, Server>();
  const innerFor = (upstream: string): Server => {
    let server = inner.get(upstream);
    if (!server) {
      server = createListenerServer({ host: '', port: 0, upstream, registry: true, admin: false, allow: spec.allow }, deps.server);
      // node:http starts its header and request timeouts (and connection tracking) on 'listening';
      // this server never listens itself, as the proxy hands it its connections.
      server.emit('listening');
      inner.set(upstream, server);
    }
    return server;
  };

  const outer = closeOnClientError(createServer(serverOptions(limits), (req, res) => {
    const allowed = listHas(spec.allow, req.socket.remoteAddress ?? '');
    res.writeHead(allowed ? 405 : 403, { 'content-type': 'text/plain', allow: 'CONNECT', connection: 'close' });
    res.end(allowed ? 'regmirror proxy: only CONNECT (HTTPS_PROXY) is served here\n' : 'regmirror proxy: this client address is not allowed\n');
  }), logger);

  outer.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const started = performance.now();
    sockets.add(socket);
    const closed = new Promise<void>((resolve) => socket.once('close', resolve));
    void closed.then(() => sockets.delete(socket));
    socket.on('error', (err: NodeJS.ErrnoException) => logger.debug({ err: err.message, code: err.code }, 'proxy: client connection error'));
    void account(req, socket, head, closed, started);
  });

  /** Answers a CONNECT, then accounts for it once its connection is over. */
  async function account(req: IncomingMessage, socket: Socket, head: Buffer, closed: Promise<void>, started: number): Promise<void> {
    const client = socket.remoteAddress ?? '';
    // The raw target is never logged: only a parsed host:port, which cannot carry user-info.
    const target = parseAuthority(req.url ?? '');
    const host = target && authorityName(target);
    let answer: Answer;
    try {
      answer = await connect(client, target, socket, head);
    } catch (err) {
      logger.error({ err, client, host }, 'proxy: CONNECT failed');
      socket.destroy();
      answer = { outcome: 'failed', reason: 'error' };
    }
    deps.observe.answered(answer.outcome, answer.reason);
    const ended = await (answer.ended ?? closed.then(() => ({ bytesFromClient: socket.bytesRead, bytesToClient: socket.bytesWritten })));
    deps.observe.closed({ client, host, outcome: answer.outcome, reason: answer.reason, upstream: answer.upstream, tls: undefined, ...ended, seconds: (performance.now() - started) / 1000 });
  }

  async function connect(client: string, target: Authority | undefined, socket: Socket, head: Buffer): Promise<Answer> {
    if (!listHas(spec.allow, client)) return refuse(socket, 403, 'this client address is not allowed', 'client-not-allowed');
    if (!target) return refuse(socket, 400, 'CONNECT needs host:port', 'bad-target');
    const decision = decide(target, spec.policy);
    if (decision.action === 'refuse') return refuse(socket, 403, decision.reason, 'host-not-listed');
    if (decision.action === 'tunnel') return tunnel(socket, head, target, decision.listed);
    return intercept(socket, head, target, decision.upstream);
  }

  async function tunnel(socket: Socket, head: Buffer, target: Authority, listed: boolean): Promise<Answer> {
    let remote: Socket;
    try {
      remote = await openTunnel(target, { listed, connectTimeoutMs: deps.connectTimeoutMs ?? 10_000 });
    } catch (err) {
      if (!(err instanceof TunnelError)) throw err;
      logger.debug({ target: authorityName(target), err: err.message }, 'proxy: tunnel not opened'); // the access line has the reason alone
      return refuse(socket, err.status, err.answer, err.reason, err.reason === 'local-address' ? 'refused' : 'failed');
    }
    sockets.add(remote);
    remote.once('close', () => sockets.delete(remote));
    // A tunnel nobody uses is closed like an idle keep-alive connection.
    remote.setTimeout(limits.keepAliveTimeout, () => remote.destroy());
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) remote.write(head);
    // Counted once, at the end: the remote socket's totals are exactly the bytes relayed each way.
    const ended = pipeline(socket, remote, socket).catch(() => undefined).then(() => ({ bytesFromClient: remote.bytesWritten, bytesToClient: remote.bytesRead }));
    return { outcome: 'tunnelled', ended };
  }

  async function intercept(socket: Socket, head: Buffer, target: Authority, upstream: string): Promise<Answer> {
    let secureContext;
    try {
      secureContext = await deps.certificates.context(target.host);
    } catch (err) {
      logger.error({ target: authorityName(target), err: (err as Error).message }, 'proxy: cannot sign a certificate');
      return refuse(socket, 502, 'regmirror cannot sign a certificate for this host', 'cannot-sign', 'failed');
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    const tls = new TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
    let secure = false;
    let failure: string | undefined;
    // A client that never finishes its handshake is cut off like one that never sends its headers.
    const timer = setTimeout(() => {
      failure = 'timeout';
      tls.destroy();
    }, limits.headersTimeout);
    tls.on('error', (err: NodeJS.ErrnoException) => {
      logger.debug({ target: authorityName(target), err: err.message, code: err.code }, 'proxy: tls error');
      if (!secure) failure ??= handshakeFailure(err);
      tls.destroy();
    });
    tls.once('secure', () => {
      secure = true;
      clearTimeout(timer);
      innerFor(upstream).emit('connection', tls);
    });
    const ended = new Promise<Ended>((resolve) => tls.once('close', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytesFromClient: socket.bytesRead, bytesToClient: socket.bytesWritten, tls: secure ? undefined : (failure ?? 'closed') });
    }));
    return { outcome: 'intercepted', upstream, ended };
  }

  const address = await listenOn(outer, spec.host, spec.port);
  let closing: Promise<void> | undefined;
  const close = async (graceMs: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => outer.close(() => resolve()));
    outer.closeIdleConnections();
    for (const server of inner.values()) server.closeIdleConnections();
    const cut = setTimeout(() => {
      for (const server of inner.values()) server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(cut);
    for (const server of inner.values()) server.close();
  };
  return { address, close: (graceMs) => (closing ??= close(graceMs)) };
}

/** What a CONNECT came to once answered; `ended` resolves when its connection is over. */
interface Answer {
  outcome: ConnectOutcome;
  reason?: string;
  upstream?: string;
  /** Default: the client socket's close, with its bytes. */
  ended?: Promise<Ended>;
}

/** What is known of a connection only at its end. */
type Ended = Pick<ConnectRecord, 'bytesFromClient' | 'bytesToClient'> & { tls?: string | undefined };

/** Answers a CONNECT with an error status and closes the connection: refused by policy, or failed. */
function refuse(socket: Socket, status: number, message: string, reason: string, outcome: 'refused' | 'failed' = 'refused'): Answer {
  const body = `regmirror proxy: ${message}\n`;
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  return { outcome, reason };
}
