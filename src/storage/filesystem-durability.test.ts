// The filesystem driver's blob commit survives a power cut. A power cut cannot be made here, so the
// test records what putFile asks of the kernel (node:fs/promises wrapped, every call still real):
// it resolves only after the rename and an fsync of each folder the rename changed. Its own file:
// the wrapper stands in for node:fs/promises for everything this file imports.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { FilesystemDriver } from './filesystem.js';

const recorded = vi.hoisted(() => ({ calls: [] as string[], crossDeviceRenames: 0 }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    rename: async (from: string, to: string): Promise<void> => {
      if (recorded.crossDeviceRenames > 0) {
        recorded.crossDeviceRenames--;
        throw Object.assign(new Error('cross-device link'), { code: 'EXDEV' });
      }
      await real.rename(from, to);
      recorded.calls.push(`rename ${to}`);
    },
    copyFile: async (from: string, to: string): Promise<void> => {
      await real.copyFile(from, to);
      recorded.calls.push(`copy ${to}`);
    },
    open: async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        await sync();
        recorded.calls.push(`fsync ${String(args[0])}`);
      };
      return handle;
    },
  };
});

describe('FilesystemDriver commit durability', () => {
  let root: string;
  let driver: FilesystemDriver;
  const localFile = async (): Promise<string> => {
    const path = join(await mkdtemp(join(tmpdir(), 'regmirror-spool-')), 'verified');
    await writeFile(path, 'verified bytes');
    return path;
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'regmirror-fs-'));
    driver = new FilesystemDriver(root);
    await driver.init();
    recorded.calls = [];
  });

  it('syncs the blob\'s folder after the rename, once, before putFile resolves', async () => {
    await mkdir(join(root, 'blobs/sha256/ab'), { recursive: true });
    const file = await localFile();
    recorded.calls = [];
    await driver.putFile('blobs/sha256/ab/abcdef', file);
    expect(recorded.calls).toEqual([`rename ${join(root, 'blobs/sha256/ab/abcdef')}`, `fsync ${join(root, 'blobs/sha256/ab')}`]);
  });

  it('syncs every folder from the root down when the blob\'s folder had to be created', async () => {
    await driver.putFile('blobs/sha256/cd/cdef', await localFile());
    expect(recorded.calls).toEqual([
      `rename ${join(root, 'blobs/sha256/cd/cdef')}`,
      ...['blobs/sha256/cd', 'blobs/sha256', 'blobs', ''].map((folder) => `fsync ${join(root, folder)}`),
    ]);
  });

  it('syncs its own copy when the file is on another filesystem, before renaming it into place', async () => {
    await mkdir(join(root, 'blobs/sha256/ef'), { recursive: true });
    const file = await localFile();
    recorded.calls = [];
    recorded.crossDeviceRenames = 1;
    await driver.putFile('blobs/sha256/ef/ef01', file);
    const [copy, syncCopy, rename, syncFolder] = recorded.calls;
    expect(copy).toMatch(/^copy .*_staging/);
    expect(syncCopy).toBe(`fsync ${copy!.slice('copy '.length)}`);
    expect([rename, syncFolder]).toEqual([`rename ${join(root, 'blobs/sha256/ef/ef01')}`, `fsync ${join(root, 'blobs/sha256/ef')}`]);
    expect((await readFile(join(root, 'blobs/sha256/ef/ef01'))).toString()).toBe('verified bytes');
    await expect(readFile(file)).rejects.toThrow();
  });
});
