/**
 * The storage-driver contract as a test suite: every driver (filesystem, S3, ...) runs these same
 * cases, so callers can rely on the behaviour whatever the driver. Used only by tests.
 */
import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { beforeEach, describe, expect, it } from 'vitest';
import type { StorageDriver } from './driver.js';

/** Runs the contract against drivers made by `create` (a fresh, empty store for each case). */
export function describeStorageDriver(name: string, create: () => Promise<StorageDriver>): void {
  describe(`storage driver contract: ${name}`, () => {
    let driver: StorageDriver;
    const localFile = async (data: Buffer): Promise<string> => {
      const path = join(await mkdtemp(join(tmpdir(), 'regmirror-contract-')), 'file');
      await writeFile(path, data);
      return path;
    };

    beforeEach(async () => {
      driver = await create();
      await driver.init();
    });

    it('reports absent objects as undefined, never as errors', async () => {
      expect(await driver.stat('blobs/sha256/aa/missing')).toBeUndefined();
      expect(await driver.get('blobs/sha256/aa/missing')).toBeUndefined();
      expect(await driver.open('blobs/sha256/aa/missing')).toBeUndefined();
      await driver.delete('blobs/sha256/aa/missing');
    });

    it('puts, replaces, gets and stats small objects', async () => {
      await driver.put('repositories/docker.io/library/alpine/_tags/3', Buffer.from('one'));
      await driver.put('repositories/docker.io/library/alpine/_tags/3', Buffer.from('second'));
      expect((await driver.get('repositories/docker.io/library/alpine/_tags/3'))?.toString()).toBe('second');
      expect(await driver.stat('repositories/docker.io/library/alpine/_tags/3')).toEqual({ size: 6 });
      await driver.put('empty', Buffer.alloc(0));
      expect(await driver.stat('empty')).toEqual({ size: 0 });
    });

    it('moves a local file in with putFile, and streams it whole or by range', async () => {
      const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => i % 251));
      await driver.putFile('blobs/sha256/ab/abcdef', await localFile(data));
      const handle = (await driver.open('blobs/sha256/ab/abcdef'))!;
      expect(handle.size).toBe(data.length);
      expect((await buffer(handle.stream())).equals(data)).toBe(true);
      const again = (await driver.open('blobs/sha256/ab/abcdef'))!;
      expect((await buffer(again.stream(1000, 1999))).equals(data.subarray(1000, 2000))).toBe(true);
      const last = (await driver.open('blobs/sha256/ab/abcdef'))!;
      expect((await buffer(last.stream(data.length - 1))).equals(data.subarray(data.length - 1))).toBe(true);
      const unused = (await driver.open('blobs/sha256/ab/abcdef'))!;
      await unused.close();
    });

    it('stores a growing file with putGrowingFile, only once ready(size) resolved (drivers that have it)', async () => {
      if (!driver.putGrowingFile) return;
      const data = Buffer.from(Array.from({ length: 9 * 1024 * 1024 + 5 }, (_, i) => i % 253));
      const half = 4 * 1024 * 1024;
      const path = await localFile(data.subarray(0, half));
      let grow!: () => void;
      const grown = new Promise<void>((resolve) => (grow = resolve));
      const asked: number[] = [];
      const stored = driver.putGrowingFile('blobs/sha256/ef/whole', path, data.length, async (end) => {
        asked.push(end);
        if (end > half) await grown;
      });
      await appendFile(path, data.subarray(half));
      grow();
      await stored;
      expect(asked).toContain(data.length);
      expect((await driver.get('blobs/sha256/ef/whole'))?.equals(data)).toBe(true);

      const refused = driver.putGrowingFile('blobs/sha256/ef/broken', path, data.length, async (end) => {
        if (end === data.length) throw new Error('digest mismatch');
      });
      await expect(refused).rejects.toThrow('digest mismatch');
      expect(await driver.stat('blobs/sha256/ef/broken')).toBeUndefined();
    });

    it('lists every key under a prefix, and nothing else', async () => {
      await driver.put('repositories/u/a/_tags/1', Buffer.from('x'));
      await driver.put('repositories/u/a/_blobs/sha256/ff', Buffer.from('x'));
      await driver.put('repositories/u/ab/_tags/1', Buffer.from('x'));
      const keys: string[] = [];
      for await (const key of driver.list('repositories/u/a/')) keys.push(key);
      expect(keys.sort()).toEqual(['repositories/u/a/_blobs/sha256/ff', 'repositories/u/a/_tags/1']);
      const none: string[] = [];
      for await (const key of driver.list('nothing/here/')) none.push(key);
      expect(none).toEqual([]);
    });

    it('lists keys with the sizes stat gives (drivers that have listWithSizes)', async () => {
      if (!driver.listWithSizes) return;
      await driver.put('blobs/sha256/aa/aa01', Buffer.alloc(3));
      await driver.putFile('blobs/sha256/bb/bb01', await localFile(Buffer.alloc(1024 * 1024 + 1)));
      await driver.put('repositories/u/a/_tags/1', Buffer.from('x'));
      const listed: { key: string; size?: number }[] = [];
      for await (const entry of driver.listWithSizes('blobs/')) listed.push(entry);
      expect(listed.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
        { key: 'blobs/sha256/aa/aa01', size: 3 },
        { key: 'blobs/sha256/bb/bb01', size: 1024 * 1024 + 1 },
      ]);
    });

    it('deletes objects', async () => {
      await driver.put('blobs/sha256/cd/cdef', Buffer.from('x'));
      await driver.delete('blobs/sha256/cd/cdef');
      expect(await driver.stat('blobs/sha256/cd/cdef')).toBeUndefined();
    });

    it('refuses keys that would escape the store', async () => {
      await expect(driver.put('../escape', Buffer.from('x'))).rejects.toThrow();
      await expect(driver.get('/etc/passwd')).rejects.toThrow();
      await expect(driver.stat('a/../../b')).rejects.toThrow();
    });

    it('never shows a half-written object to readers during concurrent replacement', async () => {
      const big = Buffer.alloc(2 * 1024 * 1024, 7);
      const small = Buffer.alloc(10, 1);
      await driver.put('k', small);
      const writes = Array.from({ length: 10 }, (_, i) => driver.put('k', i % 2 ? small : big));
      const reads = Array.from({ length: 20 }, () => driver.get('k'));
      await Promise.all(writes);
      for (const got of await Promise.all(reads)) expect([small.length, big.length]).toContain(got!.length);
    });
  });
}
