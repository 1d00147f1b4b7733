/**
 * CPU affinity of bench processes (util-linux `taskset`), to give a mirror a CPU of its own the way
 * a mirror on its own host has one, while client and upstream share the rest.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/** Every CPU of the machine, as taskset writes a list. */
export const ALL_CPUS = `0-${availableParallelism() - 1}`;

/** Binds every thread of process `pid` (and the children it starts from now on) to `cpus`, e.g. "0" or "1-3". */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdio: 'ignore' });
}
