// Runs the real `regmirror serve` command as a child process, for tests that kill or restart it.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, spawnTracked } from '../support/index.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** A regmirror process. */
export interface MirrorProcess {
  url: string;
  child: ChildProcess;
  /** What it printed (stdout and stderr). */
  output(): string;
}

/** Starts `regmirror serve` with the given flags on a free port; resolves when /v2/ answers. */
export async function spawnMirror(args: string[], port?: number): Promise<MirrorProcess> {
  const listenPort = port ?? (await freePort());
  const child = spawnTracked(process.execPath, ['--import', 'tsx', CLI, 'serve', '--listen', `127.0.0.1:${listenPort}`, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${listenPort}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`regmirror exited: ${output}`);
    const res = await fetch(`${url}/v2/`).catch(() => undefined);
    if (res?.status === 200) return { url, child, output: () => output };
    await sleep(50);
  }
  throw new Error(`regmirror did not start: ${output}`);
}
