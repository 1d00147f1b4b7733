/**
 * Counts V8's garbage collections in regmirror under one workload:
 * `node --import tsx bench/gc.ts w1|w2|w3|w4|w4pull|w5 [node options...]`. Runs it with
 * `--trace-gc` (and the given options on top of its executable's, e.g. `--initial-old-space-size=64`
 * to try heap settings) and prints the scavenges and mark-compacts during the workload, their pauses
 * on the main thread, the mirror's CPU seconds and its peak RSS (docs/performance.md, finding 5).
 * Honours BENCH_QUICK, BENCH_SECONDS and BENCH_REGMIRROR like the bench.
 */
import { readFile } from 'node:fs/promises';
import { fetchImage } from './measure.js';
import { cpuSeconds, watchPeakRss } from './memory.js';
import { runScript } from './script.js';
import { startRegmirror } from './servers.js';
import { benchSettings } from './settings.js';
import { startUpstream } from './upstream.js';
import { isCold, parseWorkload, runWorkload } from './workload.js';

async function main(): Promise<void> {
  const workload = parseWorkload(process.argv[2], 'bench/gc.ts w1|w2|w3|w4|w4pull|w5 [node options...]');
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  try {
    const mirror = await startRegmirror(upstream.registry.url, { nodeFlags: ['--trace-gc', ...process.argv.slice(3)] });
    try {
      await fetchImage(mirror.url, upstream.small, 2);
      if (!isCold(workload)) await fetchImage(mirror.url, upstream.big, 2);
      const logged = async (): Promise<string> => readFile(mirror.logPath!, 'utf8');
      const before = (await logged()).length;
      const meter = watchPeakRss(mirror.pid);
      const cpuBefore = cpuSeconds(mirror.pid) ?? Number.NaN;
      const result = await runWorkload(workload, mirror.url, upstream, settings);
      const cpu = (cpuSeconds(mirror.pid) ?? Number.NaN) - cpuBefore;
      const rss = meter.stop();
      const lines = (await logged()).slice(before).split('\n');
      const collections = (kind: string): { count: number; pauseMs: number } => {
        // e.g. "... Mark-Compact 23.2 (56.9) -> 21.9 (56.9) MB, 3.53 / 0.03 ms ..."
        const pauses = lines.filter((l) => l.includes(`: ${kind} `)).map((l) => Number(/MB, ([\d.]+) \//.exec(l)?.[1] ?? 0));
        return { count: pauses.length, pauseMs: pauses.reduce((a, b) => a + b, 0) };
      };
      const minor = collections('Scavenge');
      const major = collections('Mark-Compact');
      console.log(`${workload}: ${result.summary}; regmirror CPU ${cpu.toFixed(2)} s, peak RSS ${rss?.toFixed(0)} MB`);
      console.log(`scavenges ${minor.count} (${minor.pauseMs.toFixed(0)} ms), mark-compacts ${major.count} (${major.pauseMs.toFixed(0)} ms on the main thread)`);
    } finally {
      await mirror.stop();
    }
  } finally {
    await upstream.stop();
  }
}

runScript(main);
