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

/** The process's resident memory now, in MB (10^6 bytes; undefined when it is gone). */
export function currentRssMB(pid: number): number | undefined {
  const kib = statusKiB(pid, 'VmRSS');
  return kib === undefined ? undefined : (kib * 1024) / 1e6;
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

/** Clock ticks per second of /proc/PID/stat times (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system, every thread) that `pid` has used so far. Less disturbed by other
 * load on a shared machine than wall-clock time: the work a change saves shows here first.
 */
export function cpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at the third; utime and stime are the 14th and 15th.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}
