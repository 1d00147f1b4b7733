// The blob cache's spool folder at start: leftovers of a dead process go, the folder stays.
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/index.js';
import { MetadataStore } from '../metadata/records.js';
import { FilesystemDriver } from '../storage/filesystem.js';
import { BlobCache } from './blobs.js';

/** A blob cache over an empty store, spooling into `spoolDir`. */
function cache(spoolDir: string): BlobCache {
  const storage = new FilesystemDriver(tempDir('blobs-store'));
  return new BlobCache({ storage, metadata: new MetadataStore(storage), upstream: () => { throw new Error('no upstream'); }, spoolDir, logger: pino({ level: 'silent' }) });
}

/** What a process that died mid-download leaves in the spool. */
async function leaveDownloads(spoolDir: string): Promise<void> {
  await writeFile(join(spoolDir, 'dead-download'), Buffer.alloc(1000));
  await mkdir(join(spoolDir, 'nested'));
  await writeFile(join(spoolDir, 'nested', 'file'), 'x');
}

describe('the spool folder at start', () => {
  it('is created when missing', async () => {
    const spoolDir = join(tempDir('spool'), 'a', 'spool');
    await cache(spoolDir).init();
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('keeps the folder itself (same inode) and removes what is in it', async () => {
    const spoolDir = tempDir('spool-plain');
    await leaveDownloads(spoolDir);
    const folder = (await stat(spoolDir)).ino;
    await cache(spoolDir).init();
    expect([await readdir(spoolDir), (await stat(spoolDir)).ino]).toEqual([[], folder]);
  });

  // An emptyDir or tmpfs at storage.spoolPath: rmdir of a mount point fails with EBUSY.
  it.runIf(process.getuid?.() === 0)('is emptied, not removed, when it is a mount point', async () => {
    const spoolDir = tempDir('spool-mount');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', spoolDir]);
    try {
      await leaveDownloads(spoolDir);
      const mounted = (await stat(spoolDir)).dev;
      await cache(spoolDir).init();
      expect(await readdir(spoolDir)).toEqual([]);
      expect((await stat(spoolDir)).dev).toBe(mounted);
    } finally {
      execFileSync('umount', ['-l', spoolDir]);
    }
  });
});
