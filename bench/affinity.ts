/**
 * CPU affinity of bench processes (util-linux `taskset`), to give a server a CPU of its own the way
 * a mirror on its own host has one, while client and upstream share the rest.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { pidListeningOn } from './memory.js';

/** Every CPU of the machine, as taskset writes a list. */
export const ALL_CPUS = `0-${availableParallelism() - 1}`;

/** Binds every thread of process `pid` (and the children it starts from now on) to `cpus`, e.g. "0" or "1-3". */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdio: 'ignore' });
}

/** Binds process `pid` and the processes it already started (nginx's workers), with their threads, to `cpus`. */
export function pinTree(pid: number, cpus: string): void {
  pin(pid, cpus);
  for (const child of childProcesses(pid)) pinTree(child, cpus);
}

function childProcesses(pid: number): number[] {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.flatMap((task) => readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
}

/**
 * Runs `fn` with the last CPU kept for the server under test (`fn` pins it there): this process, so
 * the clients it starts, and the upstream at `upstreamUrl` run on the others until `fn` is done.
 * False, and nothing run, on a machine of one CPU.
 */
export async function withServerCpuOfItsOwn(upstreamUrl: string, fn: (serverCpu: string) => Promise<void>): Promise<boolean> {
  const cpus = availableParallelism();
  if (cpus < 2) return false;
  const others = cpus === 2 ? '0' : `0-${cpus - 2}`;
  const clients = [process.pid, await pidListeningOn(Number(new URL(upstreamUrl).port))];
  for (const pid of clients) pin(pid, others);
  try {
    await fn(String(cpus - 1));
  } finally {
    for (const pid of clients) pin(pid, ALL_CPUS);
  }
  return true;
}
