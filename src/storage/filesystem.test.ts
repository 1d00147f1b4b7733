import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeStorageDriver } from './driver-contract.js';
import { FilesystemDriver } from './filesystem.js';

describeStorageDriver('filesystem', async () => new FilesystemDriver(await mkdtemp(join(tmpdir(), 'regmirror-fs-'))));

describe('FilesystemDriver', () => {
  it('empties its staging folder at start (leftovers of a crash)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'regmirror-fs-'));
    const driver = new FilesystemDriver(root);
    await driver.init();
    await writeFile(join(root, '_staging', 'half-written'), 'x');
    await new FilesystemDriver(root).init();
    expect(await readdir(join(root, '_staging'))).toEqual([]);
  });
});
