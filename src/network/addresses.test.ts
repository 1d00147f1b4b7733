import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { isCidr } from '../config/units.js';
import { addressScope, cidrList, listHas } from './addresses.js';

describe('address lists', () => {
  it('matches IPv4, IPv6 and IPv4-mapped addresses against CIDRs', () => {
    const list = cidrList(['10.0.0.0/8', 'fd00::/8', '192.168.1.7']);
    expect(listHas(list, '10.20.30.40')).toBe(true);
    expect(listHas(list, '::ffff:10.1.2.3')).toBe(true);
    expect(listHas(list, 'fd12::1')).toBe(true);
    expect(listHas(list, '192.168.1.7')).toBe(true);
    expect(listHas(list, '192.168.1.8')).toBe(false);
    expect(listHas(list, '11.0.0.1')).toBe(false);
    expect(listHas(list, '::1')).toBe(false);
  });

  it('validates CIDR syntax', () => {
    for (const ok of ['10.0.0.0/8', '::1', '::/0', '1.2.3.4', 'fd00::/128']) expect(isCidr(ok)).toBe(true);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'host/8', '1.2.3.4/8/1', '', '10.0.0.0/x']) expect(isCidr(bad)).toBe(false);
  });
});

describe('addressScope', () => {
  it('finds this machine, its link and the cloud metadata services: loopback, unspecified, link-local, its own interfaces', () => {
    for (const local of ['127.0.0.1', '127.9.9.9', '0.0.0.0', '::1', '::', '::ffff:127.0.0.1', '169.254.169.254', 'fe80::1', 'fd00:ec2::254', '100.100.100.200', '64:ff9b::a9fe:a9fe']) {
      expect([local, addressScope(local)]).toEqual([local, 'local']);
    }
    const own = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((i) => !i.internal).map((i) => i.address);
    expect(own.length, 'a non-loopback address on this machine').toBeGreaterThan(0);
    for (const address of own) expect([address, addressScope(address)]).toEqual([address, 'local']);
  });

  it('finds addresses the internet cannot reach, NAT64 ones by the IPv4 address they stand for', () => {
    for (const address of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '198.18.0.1', '224.0.0.1', '255.255.255.255', '::ffff:10.1.2.3', 'fc00::1', 'fd12:3456::1', 'ff02::1', '64:ff9b::a01:203', '64:ff9b::10.1.2.3', '64:ff9b:1::1']) {
      expect([address, addressScope(address)]).toEqual([address, 'private']);
    }
    for (const address of ['8.8.8.8', '172.32.0.1', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
      expect([address, addressScope(address)]).toEqual([address, 'public']);
    }
  });
});
