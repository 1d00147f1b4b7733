import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { cidrList } from '../network/addresses.js';
import { clientAddress } from './client-access.js';

const request = (peer: string, xff?: string): IncomingMessage =>
  ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('client access', () => {
  it('honours X-Forwarded-For only from trusted proxies, skipping trusted hops', () => {
    const trusted = cidrList(['127.0.0.1', '10.0.0.0/8']);
    expect(clientAddress(request('203.0.113.9', '1.1.1.1'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', '1.1.1.1, 203.0.113.9'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', '203.0.113.9, 10.1.1.1'), trusted)).toBe('203.0.113.9');
    expect(clientAddress(request('127.0.0.1', 'garbage'), trusted)).toBe('127.0.0.1');
    expect(clientAddress(request('127.0.0.1', '1.1.1.1'), undefined)).toBe('127.0.0.1');
  });
});
