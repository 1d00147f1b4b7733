import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isCidr } from '../config/units.js';
import { addressScope, cidrList, listHas } from './addresses.js';

/** The machine's real interfaces, plus `added` ones; `reads` counts the calls. */
const interfaces = vi.hoisted(() => ({ added: [] as NetworkInterfaceInfo[], reads: 0 }));
vi.mock('node:os', async (importOriginal) => {
  const os = await importOriginal<typeof import('node:os')>();
  return {
    ...os,
    networkInterfaces: () => {
      interfaces.reads++;
      return { ...os.networkInterfaces(), test0: interfaces.added };
    },
  };
});

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

describe('this machine\'s addresses', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['performance'] }));
  afterEach(() => {
    interfaces.added = [];
    vi.useRealTimers();
  });

  it('are read once for many checks, and again two seconds later, when a new interface address counts as local', () => {
    vi.advanceTimersByTime(60_000); // what earlier tests read is old by now
    const before = interfaces.reads;
    for (const address of ['10.9.8.7', '8.8.8.8', '192.168.1.1', '::1']) addressScope(address);
    expect(interfaces.reads - before).toBe(1);
    interfaces.added = [{ address: '10.9.8.7', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '10.9.8.7/24' }];
    expect(addressScope('10.9.8.7')).toBe('private'); // not read yet
    vi.advanceTimersByTime(2_000);
    expect(addressScope('10.9.8.7')).toBe('local');
    expect(interfaces.reads - before).toBe(2);
  });
});
