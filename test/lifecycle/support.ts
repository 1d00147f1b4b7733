// Helpers of the lifecycle tests: a mirror with storage limits, a verified pull, metrics, and the CLI.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { startMirror, type Mirror, type ReloadOutcome } from '../../src/main.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import { exited, spawnTracked, tempDir, type SeededImage } from '../support/index.js';

/** The upstream name the tests mirror. */
export const UPSTREAM = 'quay.io';

/** A mirror of one upstream, on a loopback port, with the given storage settings. */
export interface LimitedMirror {
  url: string;
  dataDir: string;
  mirror: Mirror;
  /** Reloads the mirror with these storage settings instead (as a SIGHUP does with an edited file). */
  reload(storage: ConfigInput['storage']): ReloadOutcome;
  close(): Promise<void>;
}

/** Starts a mirror of `upstreamUrl` as quay.io with `storage` settings (path: a new temp folder unless given). */
export async function startLimitedMirror(upstreamUrl: string, storage: ConfigInput['storage'] = {}, access: ConfigInput['access'] = {}): Promise<LimitedMirror> {
  const dataDir = storage?.path ?? tempDir('lifecycle-data');
  const configWith = (settings: ConfigInput['storage']): Readonly<Config> => parseConfig({
    version: 1,
    listeners: [{ address: '127.0.0.1:0' }],
    storage: { ...settings, path: dataDir },
    access,
    log: { level: process.env.REGMIRROR_TEST_LOG ?? 'silent' },
    upstreams: { [UPSTREAM]: { url: upstreamUrl } },
  });
  const config = configWith(storage);
  const mirror = await startMirror(config, pino({ level: config.log.level }));
  const url = `http://127.0.0.1:${mirror.listeners[0]!.address.port}`;
  return { url, dataDir, mirror, reload: (settings) => mirror.reload(() => configWith(settings)), close: () => mirror.close(100) };
}

/** Pulls an image as a client would (manifest by tag, then every blob), checking every digest. */
export async function pullImage(url: string, image: SeededImage): Promise<void> {
  const manifest = await send(`${url}/v2/${image.repo}/manifests/${image.tag}?ns=${UPSTREAM}`, { headers: { accept: ACCEPT_ALL } });
  expect([manifest.status, sha256(manifest.body)]).toEqual([200, image.manifestDigest]);
  for (const blob of image.blobs) {
    const got = await send(`${url}/v2/${image.repo}/blobs/${blob.digest}?ns=${UPSTREAM}`);
    expect([got.status, sha256(got.body)]).toEqual([200, blob.digest]);
  }
}

/** True when the content of `digest` is in the cache folder. */
export async function isCached(dataDir: string, digest: string): Promise<boolean> {
  const hex = digest.slice('sha256:'.length);
  return (await stat(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)).catch(() => undefined)) !== undefined;
}

/** Polls until `check` holds (or fails the test after `ms`). */
export async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `regmirror <args>` (not on a terminal); resolves with its exit code and output. */
export async function regmirror(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnTracked(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = await Promise.all([exited(child), new Promise((resolve) => child.stdout!.once('close', resolve)), new Promise((resolve) => child.stderr!.once('close', resolve))]);
  return { code, stdout, stderr };
}
