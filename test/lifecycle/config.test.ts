// The lifecycle's configuration keys: sizes, shares and durations, with clear errors.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { parseSize } from '../../src/config/units.js';

const withStorage = (storage: Record<string, unknown>): unknown => ({ version: 1, storage, upstreams: { 'quay.io': { url: 'https://quay.io' } } });

describe('storage limits in the configuration', () => {
  it('reads sizes in decimal and binary units, or as bytes', () => {
    expect(parseSize('50GiB')).toBe(50 * 2 ** 30);
    expect(parseSize('1.5 TB')).toBe(1.5e12);
    expect(parseSize('500mb')).toBe(500e6);
    expect(parseSize('2048')).toBe(2048);
    expect(parseSize(4096)).toBe(4096);
    for (const bad of ['50 gigs', '-1GB', 'GB', '1e9', '']) expect(parseSize(bad)).toBeUndefined();
  });

  it('applies maxSize, lowWater (default 90%) and maxAge', () => {
    const { storage } = parseConfig(withStorage({ maxSize: '200GiB', maxAge: '30d' }));
    expect([storage.maxSize, storage.lowWater, storage.maxAge]).toEqual([200 * 2 ** 30, 0.9, 30 * 86_400_000]);
    expect(parseConfig(withStorage({ maxSize: '1GB', lowWater: '75%' })).storage.lowWater).toBe(0.75);
    const none = parseConfig(withStorage({})).storage;
    expect([none.maxSize, none.maxAge]).toEqual([undefined, undefined]);
  });

  it('names the key and the expected form when a value is wrong', () => {
    expect(() => parseConfig(withStorage({ maxSize: '50 gigs' }))).toThrow('config error at storage.maxSize: "50 gigs" is not a size (use e.g. 500MiB, 50GiB, 2TB, or a number of bytes)');
    expect(() => parseConfig(withStorage({ maxSize: 0 }))).toThrow('config error at storage.maxSize');
    expect(() => parseConfig(withStorage({ lowWater: '150%' }))).toThrow('config error at storage.lowWater: "150%" is not a share from 1% to 99% (e.g. 90%)');
    expect(() => parseConfig(withStorage({ maxAge: 'a month' }))).toThrow('config error at storage.maxAge: "a month" is not a duration');
  });
});
