// Debian's `pebble` ACME test server on loopback, in a temp folder with its own config: its
// directory's HTTPS certificate comes from a local CA made by `tls init`, and it validates HTTP-01
// challenges by connecting to localhost:<challengePort>.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { initLocalCa } from '../../src/tls/init.js';
import { exited, freePort, spawnTracked, tempDir } from '../support/index.js';

/** A running pebble. */
export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** The CA file that signed the directory's HTTPS certificate (for acme.directoryCA). */
  directoryCA: string;
  /** The port pebble validates HTTP-01 challenges on (for acme.challengeAddress). */
  challengePort: number;
  /** Pebble's issuing root, PEM (it changes at every start). */
  root(): Promise<string>;
  /** What pebble printed. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts pebble; resolves once its directory answers. */
export async function startPebble(): Promise<Pebble> {
  const dir = tempDir('pebble');
  const ca = await initLocalCa({ dir: join(dir, 'tls'), names: ['127.0.0.1', 'localhost'] });
  const [port, managementPort, challengePort, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'pebble-config.json');
  writeFileSync(config, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${port}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: ca.files.cert,
      privateKey: ca.files.key,
      httpPort: challengePort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }));
  const child = spawnTracked('pebble', ['-config', config], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    // No artificial validation delays, and no spurious badNonce rejections.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const dispatcher = new Agent({ connect: { ca: readFileSync(ca.files.caCert, 'utf8') } });
  const directory = `https://127.0.0.1:${port}/dir`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`pebble exited: ${output}`);
    const res = await request(directory, { dispatcher }).catch(() => undefined);
    await res?.body.dump();
    if (res?.statusCode === 200) break;
    if (i > 200) throw new Error(`pebble did not start: ${output}`);
    await sleep(25);
  }
  return {
    directory,
    directoryCA: ca.files.caCert,
    challengePort,
    root: async () => {
      const res = await request(`https://127.0.0.1:${managementPort}/roots/0`, { dispatcher });
      return res.body.text();
    },
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited(child);
      await dispatcher.close();
    },
  };
}
