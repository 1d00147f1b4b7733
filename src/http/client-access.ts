/**
 * Who is asking: the client address (X-Forwarded-For honoured only from trusted proxies) and
 * per-listener allow-lists of CIDRs, IPv4 and IPv6.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** Builds a BlockList (used as an allow-list) from CIDRs such as `10.0.0.0/8` or `fd00::/8`. */
export function cidrList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/') as [string, string | undefined];
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

/** Matches an address against a list, treating IPv4-mapped IPv6 (`::ffff:10.1.2.3`) as IPv4. */
export function listHas(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return list.check(mapped[1]!, 'ipv4') || list.check(address, 'ipv6');
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

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
