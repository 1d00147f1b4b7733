// A throwaway Redis (Debian's redis-server) on a free loopback port, without persistence.
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, freePort, spawnTracked, tempDir } from '../support/index.js';

/** A running Redis. */
export interface RedisServer {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Kills it (as a crash would); start() brings it back empty on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Starts redis-server; resolves once it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const dir = tempDir('redis');
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const start = async (): Promise<void> => {
    if (child) return;
    output = '';
    const proc = spawnTracked('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child = proc;
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) break;
      if (await ping(port)) return;
      await sleep(25);
    }
    throw new Error(`redis-server did not start:\n${output.slice(-2000)}`);
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc) return;
    proc.kill('SIGKILL');
    await exited(proc);
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, start, stop };
}

/** True when a Redis on `port` answers PING. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}
