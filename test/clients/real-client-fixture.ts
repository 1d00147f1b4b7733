// What the real-client tests share: two loopback Distribution registries standing in for docker.io
// and ghcr.io, a counting relay in front of each (what regmirror asked upstream), regmirror itself,
// and a counting relay in front of regmirror (what the client sent). Clients get regmirror's address
// only through the files `regmirror config <client> --write` generates; docker.io and ghcr.io do not
// resolve here, so a pull can only succeed through the mirror.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerClientConfig, registerSetup, type CommandOutput } from '../../src/cli/client-config.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { expect } from 'vitest';
import { isBlobGet, isManifestRequest, run, seedImage, startCountingRelay, startRegistry, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';

/** The user regmirror's htpasswd file holds when the fixture is started with `login`. */
export const MIRROR_USER = { username: 'builder', password: 'pull only: s3cret' };

/** The running set-up; see startRealClientFixture. */
export interface RealClientFixture {
  /** library/alpine:3.17 on "docker.io" (Docker schema 2, one layer). */
  alpine: SeededImage;
  /** team/tool:1.0 on "ghcr.io" (an OCI index of linux/amd64 and linux/arm64). */
  tool: SeededImage;
  /** Between regmirror and each upstream registry, by upstream name. */
  upstream: Record<'docker.io' | 'ghcr.io', Relay>;
  /** Between the client and regmirror: the URL clients are configured with. */
  front: Relay;
  mirror: TestMirror;
  /** regmirror's configuration file, as `--config` takes it. */
  configFile: string;
  /** With `login`: `--username` and `--password-file` for MIRROR_USER; otherwise empty. */
  loginArgs: string[];
  stop(): Promise<void>;
}

/**
 * Starts registries, seeds one image on each, and puts regmirror with relays in between; with
 * `login`, regmirror asks every client for MIRROR_USER (access.htpasswd).
 */
export async function startRealClientFixture(options: { login?: boolean } = {}): Promise<RealClientFixture> {
  const [hub, ghcr]: Registry[] = await Promise.all([startRegistry(), startRegistry()]);
  const [alpine, tool] = await Promise.all([
    seedImage(hub!, { repo: 'library/alpine', tag: '3.17', layerSizes: [200_000], format: 'v2s2' }),
    seedImage(ghcr!, { repo: 'team/tool', tag: '1.0', layerSizes: [100_000, 50_000], platforms: ['linux/amd64', 'linux/arm64/v8'] }),
  ]);
  const upstream = { 'docker.io': await startCountingRelay(hub!.url), 'ghcr.io': await startCountingRelay(ghcr!.url) };
  const upstreams = { 'docker.io': { url: upstream['docker.io'].url }, 'ghcr.io': { url: upstream['ghcr.io'].url } };
  const dir = tempDir('client-config');
  const loginArgs: string[] = [];
  let access: { htpasswd: string } | undefined;
  if (options.login) {
    access = { htpasswd: join(dir, 'users.htpasswd') };
    await writeFile(access.htpasswd, await run('htpasswd', ['-Bbn', '-C', '5', MIRROR_USER.username, MIRROR_USER.password]));
    await writeFile(join(dir, 'password'), `${MIRROR_USER.password}\n`);
    loginArgs.push('--username', MIRROR_USER.username, '--password-file', join(dir, 'password'));
  }
  const mirror = await startTestMirror({ upstreams, defaultUpstream: 'docker.io', ...(access ? { access } : {}) });
  const front = await startCountingRelay(mirror.url);
  const configFile = join(dir, 'regmirror.yaml');
  const config = { version: 1, listeners: [{ address: mirror.host }], routing: { defaultUpstream: 'docker.io' }, upstreams, ...(access ? { access } : {}) };
  await writeFile(configFile, JSON.stringify(config)); // JSON is YAML
  return {
    alpine: alpine!,
    tool: tool!,
    upstream,
    front,
    mirror,
    configFile,
    loginArgs,
    async stop() {
      await front.stop();
      await mirror.close();
      await Promise.all(Object.values(upstream).map((r) => r.stop()));
      await Promise.all([hub!.stop(), ghcr!.stop()]);
    },
  };
}

/** Runs `regmirror <args>` (config and setup) in-process; resolves with what it printed. */
export async function runClientCommand(args: string[]): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  const output: CommandOutput = { out: (text) => void (out += text), err: (text) => void (err += text) };
  const program = new Command('regmirror').exitOverride().configureOutput({ writeOut: output.out, writeErr: output.err });
  registerClientConfig(program, output);
  registerSetup(program, output);
  await program.parseAsync(args, { from: 'user' });
  return { out, err };
}

/** A copy of the fixture's configuration without access.htpasswd: the files clients got before they could log in. */
export async function configWithoutLogin(fx: RealClientFixture): Promise<string> {
  const config = JSON.parse(await readFile(fx.configFile, 'utf8')) as { access?: unknown };
  delete config.access;
  const file = join(tempDir('client-config'), 'no-login.yaml');
  await writeFile(file, JSON.stringify(config));
  return file;
}

/** The request paths (with query) a relay saw, without the method. */
export const pathsSeen = (relay: Relay): string[] => relay.requests.map((r) => r.path);

/** Forgets what every relay of the fixture recorded. */
export function resetRelays(fx: RealClientFixture): void {
  fx.front.reset();
  for (const relay of Object.values(fx.upstream)) relay.reset();
}

/** Asserts the client fetched `blobs` blobs from regmirror and regmirror asked upstream nothing. */
export function expectServedFromCache(fx: RealClientFixture, blobs: number): void {
  expect(fx.front.count(isBlobGet)).toBe(blobs);
  for (const relay of Object.values(fx.upstream)) {
    expect(relay.count(isBlobGet)).toBe(0);
    expect(relay.count(isManifestRequest)).toBe(0);
  }
}

/** Asserts regmirror answered every request the client sent with 401, and asked upstream nothing. */
export function expectRefusedForLogin(fx: RealClientFixture): void {
  expect(fx.front.requests.length).toBeGreaterThan(0);
  expect(fx.front.requests.every((r) => r.status === 401)).toBe(true);
  for (const relay of Object.values(fx.upstream)) expect(relay.count()).toBe(0);
}
