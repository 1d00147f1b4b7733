/**
 * IP address lists, listen addresses, and what an address leads to. The scope decides where
 * regmirror may dial on someone else's word: a host an upstream redirected to (upstream/connect.ts)
 * and a CONNECT tunnel's target (proxy/tunnel.ts).
 */
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Splits a listen address `host:port` (`[v6]:port`; `:port` for every interface) for `listen()`. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(at + 1)) };
}

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
 * Where an address leads: `local` is this machine (loopback, unspecified, its own interfaces), what
 * only it can reach on its link (link-local), and the cloud metadata services, which answer each
 * machine about itself (169.254.169.254; AWS's fd00:ec2::254, unique-local; Alibaba's
 * 100.100.100.200, in the shared range); `private` is any other address the internet cannot reach
 * (RFC 1918, shared, unique-local, reserved, documentation, multicast); `public` is the rest.
 */
export type AddressScope = 'public' | 'private' | 'local';

const LOCAL = cidrList(['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '100.100.100.200/32', '::/128', '::1/128', 'fe80::/10', 'fd00:ec2::254/128']);

const PRIVATE = cidrList([
  '10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16',
  '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  '64:ff9b:1::/48', '100::/64', '2001:db8::/32', 'fc00::/7', 'fec0::/10', 'ff00::/8',
]);

/** NAT64's well-known prefix: a gateway dials the IPv4 address in the last 32 bits. */
const NAT64 = cidrList(['64:ff9b::/96']);

/** The scope of an IP address (IPv4, IPv6, IPv4-mapped or NAT64 IPv6). */
export function addressScope(address: string): AddressScope {
  if (isIP(address) === 6 && listHas(NAT64, address)) return addressScope(nat64Target(address));
  if (listHas(LOCAL, address) || listHas(ownAddresses(), address)) return 'local';
  return listHas(PRIVATE, address) ? 'private' : 'public';
}

/** How long this machine's addresses, once read, stand for its interfaces. */
const OWN_ADDRESSES_TTL_MS = 2_000;

let ownAddressesRead: { list: BlockList; until: number } | undefined;

/**
 * This machine's addresses. Interfaces come and go (DHCP, VPNs, containers), so they are read again
 * after a couple of seconds; not at every call, which comes for each address of every connection.
 */
function ownAddresses(): BlockList {
  const now = performance.now();
  if (!ownAddressesRead || now >= ownAddressesRead.until) {
    const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? []).map((i) => i.address);
    ownAddressesRead = { list: cidrList(addresses), until: now + OWN_ADDRESSES_TTL_MS };
  }
  return ownAddressesRead.list;
}

/** The IPv4 address in the last 32 bits of an IPv6 address. */
function nat64Target(address: string): string {
  // The URL parser writes IPv6 in one canonical form (lowercase, hex groups, `::` for zeros).
  const groups = new URL(`http://[${address}]`).hostname.slice(1, -1).split(':');
  const [high, low] = groups.slice(-2).map((group) => parseInt(group || '0', 16)) as [number, number];
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}
