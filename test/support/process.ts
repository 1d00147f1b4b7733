// Child processes and temp folders that never outlive the test process (a vitest fork
// worker is ended with SIGTERM, which skips 'exit' handlers unless we listen for it).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

function cleanup(): void {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

process.on('exit', cleanup);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/** Creates a fresh temp folder, removed when the test process ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `regmirror-${prefix}-`));
  dirs.add(dir);
  return dir;
}

/**
 * Spawns a command that is SIGKILLed when this process exits or dies (even by SIGKILL:
 * `setpriv --pdeathsig` asks the kernel to do it).
 */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', command, ...args], options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resolves with the exit code (or signal name) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode ?? 0);
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 0)));
}

/** Runs a command to completion; rejects with its stderr when it fails. Returns stdout. */
export async function run(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const child = spawnTracked(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
  const [code] = await Promise.all([
    exited(child),
    new Promise((resolve) => child.stdout?.once('close', resolve)),
    new Promise((resolve) => child.stderr?.once('close', resolve)),
  ]);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${code}):\n${Buffer.concat(err).toString()}`);
  }
  return Buffer.concat(out).toString();
}
