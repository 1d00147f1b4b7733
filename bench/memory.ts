/**
 * Peak resident memory of a server process during a workload, from /proc/PID/status.
 * Writing 5 to /proc/PID/clear_refs resets the kernel's high-water mark (VmHWM) to the current
 * RSS, so VmHWM read after the workload is the exact peak during it. Where that write is not
 * allowed, VmRSS is sampled every 25 ms instead.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { run } from '../test/support/index.js';

/** One process's memory, watched over a workload. */
export interface PeakMeter {
  /** Stops watching; returns the peak RSS in MB (10^6 bytes; undefined when the process is gone). */
  stop(): number | undefined;
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Starts watching the peak RSS of `pid`. */
export function watchPeakRss(pid: number): PeakMeter {
  let reset = true;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    reset = false;
  }
  let sampled = statusKiB(pid, 'VmRSS') ?? 0;
  const timer = reset ? undefined : setInterval(() => (sampled = Math.max(sampled, statusKiB(pid, 'VmRSS') ?? 0)), 25);
  return {
    stop() {
      if (timer) clearInterval(timer);
      const kib = reset ? statusKiB(pid, 'VmHWM') : Math.max(sampled, statusKiB(pid, 'VmRSS') ?? 0);
      return kib === undefined ? undefined : (kib * 1024) / 1e6;
    },
  };
}

/** The command name of a process (`/proc/PID/comm`). */
export function processName(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** The id of the process listening on 127.0.0.1:port (the server itself, not a wrapper). */
export async function pidListeningOn(port: number): Promise<number> {
  const out = await run('ss', ['-Hltnp', `sport = :${port}`]);
  const match = /pid=(\d+)/.exec(out);
  if (!match) throw new Error(`no process listens on port ${port}:\n${out}`);
  return Number(match[1]);
}
