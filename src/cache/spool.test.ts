// What an upload that reads the spool file itself may rely on: SpoolDownload.holds.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/index.js';
import type { Digest } from '../oci/digest.js';
import { SpoolDownload } from './spool.js';

const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
const digest = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;

/** A download of `data` fed by hand, and whether `holds(end)` has resolved. */
async function feeding(end: number): Promise<{ body: PassThrough; download: SpoolDownload; held: () => boolean; holds: Promise<void> }> {
  const body = new PassThrough();
  const download = await SpoolDownload.start(digest, data.length, join(tempDir('spool-holds'), 'blob'), body);
  let resolved = false;
  const holds = download.holds(end).then(() => void (resolved = true));
  holds.catch(() => undefined);
  return { body, download, held: () => resolved, holds };
}

/** Lets the spool write what it was given and report it. */
async function settle(download: SpoolDownload, atLeast: number): Promise<void> {
  while (download.written < atLeast) await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('SpoolDownload.holds', () => {
  it('resolves once the bytes before `end` are in the file, which then has them', async () => {
    const { body, download, held, holds } = await feeding(1000);
    body.write(data.subarray(0, 999));
    await settle(download, 999);
    expect(held()).toBe(false);
    body.write(data.subarray(999, 1500));
    await holds;
    expect((await readFile(download.path)).subarray(0, 1000).equals(data.subarray(0, 1000))).toBe(true);
    body.end(data.subarray(1500));
    await download.done;
  });

  it('holds back the whole blob until it verified', async () => {
    const { body, download, held, holds } = await feeding(data.length);
    body.write(data);
    await settle(download, data.length);
    expect(held()).toBe(false); // every byte written, the digest not yet checked
    body.end();
    await holds;
    expect(download.verified).toBe(true);
  });

  it('rejects when the download fails before, and past the end of a verified blob', async () => {
    const corrupt = await feeding(data.length);
    corrupt.body.end(Buffer.alloc(data.length));
    await expect(corrupt.holds).rejects.toThrow(/digest/);

    const whole = await feeding(10);
    whole.body.end(data);
    await whole.download.done;
    await expect(whole.download.holds(data.length + 1)).rejects.toThrow(/3000 bytes/);
  });
});
