/**
 * Tunnels: a TCP connection to the host a client named, bytes passed through untouched. The name is
 * resolved once and that very address is dialled; a host the operator did not list may not lead to
 * this machine (loopback, unspecified, any of its own interfaces' addresses: the admin port, a local
 * Redis) nor to what only it can reach (link-local addresses, a cloud metadata service).
 */
import { lookup } from 'node:dns/promises';
import { connect, type Socket } from 'node:net';
import { addressScope } from '../network/addresses.js';
import type { Authority } from './hosts.js';

/** Why a tunnel was not opened, as labelled in the proxy's metrics. */
export type TunnelFailure = 'local-address' | 'unresolvable' | 'unreachable' | 'timeout';

/**
 * The proxy's answer to the client per failure: a fixed text, for the message names addresses the
 * target led to (this machine's own, on the LAN) and errors that are for the log only.
 */
const ANSWER: Record<TunnelFailure, { status: 403 | 502 | 504; text: string }> = {
  'local-address': { status: 403, text: 'this host leads to this machine or a local address' },
  unresolvable: { status: 502, text: 'cannot resolve this host' },
  unreachable: { status: 502, text: 'cannot connect to this host' },
  timeout: { status: 504, text: 'no connection to this host in time' },
};

/** A tunnel that cannot be opened; `status` and `answer` are what the client is told, the message what is logged. */
export class TunnelError extends Error {
  override name = 'TunnelError';
  readonly status: 403 | 502 | 504;
  readonly answer: string;
  constructor(message: string, readonly reason: TunnelFailure) {
    super(message);
    this.status = ANSWER[reason].status;
    this.answer = ANSWER[reason].text;
  }
}

/** How to open a tunnel. */
export interface TunnelOptions {
  /** The host was listed by the operator: local addresses are allowed. */
  listed: boolean;
  connectTimeoutMs: number;
}

/** Resolves and connects to `target`; resolves with the connected socket. Throws TunnelError. */
export async function openTunnel(target: Authority, options: TunnelOptions): Promise<Socket> {
  let address: string;
  try {
    ({ address } = await lookup(target.host));
  } catch (err) {
    throw new TunnelError(`cannot resolve ${target.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'unresolvable');
  }
  if (!options.listed && addressScope(address) === 'local') throw new TunnelError(`${target.host} resolves to a local address (${address})`, 'local-address');
  const socket = connect({ host: address, port: target.port });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new TunnelError(`no connection to ${target.host}:${target.port} within ${options.connectTimeoutMs} ms`, 'timeout')), options.connectTimeoutMs);
    const fail = (err: TunnelError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', (err: NodeJS.ErrnoException) => fail(new TunnelError(`cannot connect to ${target.host}:${target.port}: ${err.code ?? err.message}`, 'unreachable')));
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}
