import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { isCidr } from '../config/units.js';
import { cidrList, clientAddress, listHas } from './client-access.js';

const request = (peer: string, xff?: string): IncomingMessage =>
  ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('client access', () => {
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

  it('honours X-Forwarded-For only from trusted proxies, skipping trusted hops', () => {
    const trusted = cidrList(['127.0.0.1', '10.0.0.0/8']);
    expect(clientAddress(request('203.0.113.9', '1.1.1.1'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', '1.1.1.1, 203.0.113.9'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', '203.0.113.9, 10.1.1.1'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', 'garbage'), trusted)).toBe('127.0.0.1');
    expect(clientAddress(request('127.0.0.1', '1.1.1.1'), undefined)).toBe('127.0.0.1');
  });
});
