/** Who is asking: the client address, with X-Forwarded-For honoured only from trusted proxies. */
import type { IncomingMessage } from 'node:http';
import { isIP, type BlockList } from 'node:net';
import { listHas } from '../network/addresses.js';

/**
 * The client's address: the socket's peer, or — when that peer is a trusted proxy — the nearest
 * address in X-Forwarded-For that is not itself a trusted proxy.
 */
export function clientAddress(req: IncomingMessage, trustedProxies: BlockList | undefined): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!trustedProxies || !listHas(trustedProxies, peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((h) => h.trim()).filter((h) => isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!listHas(trustedProxies, hops[i]!)) return hops[i]!;
  }
  return hops[0] ?? peer;
}
