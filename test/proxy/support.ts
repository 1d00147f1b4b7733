// What the proxy tests share: a raw CONNECT, a TLS handshake through a tunnel, an undici client
// that goes through the proxy, and a TLS front that gives a plain-HTTP server HTTPS.
import type { X509Certificate } from 'node:crypto';
import { connect as connectTcp, createServer as createTcpServer, isIP, type AddressInfo, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import { ProxyAgent } from 'undici';

/** The proxy's answer to a CONNECT: its status, and the socket (open only after a 200). */
export interface ConnectAnswer {
  status: number;
  /** The whole response head and, for errors, the body. */
  text: string;
  socket: Socket;
}

const split = (hostPort: string): { host: string; port: number } => {
  const at = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, at), port: Number(hostPort.slice(at + 1)) };
};

/** Sends `CONNECT target` to the proxy at host:port and reads the answer's head. */
export function connectVia(proxy: string, target: string): Promise<ConnectAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(split(proxy), () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      if (status === 200) {
        socket.off('data', onData);
        resolve({ status, text, socket });
      } else {
        socket.once('close', () => resolve({ status, text, socket }));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Shakes hands through a tunnel to `target` (servername: its host) and returns what was presented. */
export async function certificateVia(proxy: string, target: string, ca?: string): Promise<{ cert: X509Certificate; authorized: boolean; error?: Error | undefined }> {
  const answer = await connectVia(proxy, target);
  if (answer.status !== 200) throw new Error(`CONNECT ${target}: ${answer.text}`);
  const { host } = split(target);
  return new Promise((resolve, reject) => {
    const tls = connectTls({ socket: answer.socket, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}), rejectUnauthorized: false }, () => {
      const cert = tls.getPeerX509Certificate();
      tls.destroy();
      if (!cert) reject(new Error('no peer certificate'));
      else resolve({ cert, authorized: tls.authorized, error: tls.authorizationError ?? undefined });
    });
    tls.once('error', reject);
  });
}

/** An undici dispatcher that reaches https:// URLs through the proxy, trusting `ca`. */
export function throughProxy(proxy: string, ca: string): ProxyAgent {
  return new ProxyAgent({ uri: `http://${proxy}`, requestTls: { ca } });
}

/** Passes a socket's bytes to `target` and back; resolves with the socket to `target` once both are done. */
async function relay(socket: Socket, target: { host: string; port: number }, sockets: Set<Socket>): Promise<Socket> {
  const upstream = connectTcp(target);
  sockets.add(socket).add(upstream);
  await pipeline(socket, upstream, socket).catch(() => undefined);
  sockets.delete(socket);
  sockets.delete(upstream);
  return upstream;
}

/** A TCP relay between clients and the proxy: each connection (one CONNECT) and its bytes, as on the wire. */
export interface WireCounter {
  /** 127.0.0.1:PORT, to give clients as their proxy. */
  host: string;
  /** The connections that are over, in the order they ended. */
  done: { fromClient: number; toClient: number }[];
  /** Connections not over yet. */
  open(): number;
  stop(): Promise<void>;
}

/** Starts a WireCounter in front of the proxy at host:port. */
export async function startWireCounter(proxy: string): Promise<WireCounter> {
  const sockets = new Set<Socket>();
  const done: WireCounter['done'] = [];
  const server = createTcpServer((socket) => void relay(socket, split(proxy), sockets).then((upstream) => done.push({ fromClient: upstream.bytesWritten, toClient: upstream.bytesRead })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    done,
    open: () => sockets.size,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A TLS front: terminates TLS with `pair` and passes the bytes to a plain-TCP target. */
export interface TlsFront {
  /** https://127.0.0.1:PORT */
  url: string;
  stop(): Promise<void>;
}

/** Starts a TLS front on a free loopback port for the plain server at `target` (http://host:port). */
export async function startTlsFront(target: string, pair: { cert: string; key: string }): Promise<TlsFront> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createTlsServer(pair, (socket) => void relay(socket, { host: hostname, port: Number(port) }, sockets));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
