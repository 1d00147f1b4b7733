/**
 * Compares two regmirror builds on one workload, alternating them round after round on the same
 * upstream: `node --import tsx bench/ab.ts w1|w2|w3|w4|w4pull|w5 A/dist/cli/main.js B/dist/cli/main.js`.
 * For trying a change to src/ in a scratch copy: ratios between the two in one run are what count
 * on a noisy machine. Honours BENCH_QUICK, BENCH_ROUNDS and BENCH_SECONDS.
 */
import { resolve } from 'node:path';
import { fetchImage } from './measure.js';
import { cpuSeconds, watchPeakRss } from './memory.js';
import { median } from './report.js';
import { runScript } from './script.js';
import { startRegmirror, type BenchServer } from './servers.js';
import { benchSettings } from './settings.js';
import { startUpstream } from './upstream.js';
import { rotation } from './warm.js';
import { isCold, parseWorkload, runWorkload, type WorkloadResult } from './workload.js';

async function main(): Promise<void> {
  const usage = 'bench/ab.ts w1|w2|w3|w4|w4pull|w5 A/dist/cli/main.js B/dist/cli/main.js';
  const workload = parseWorkload(process.argv[2], usage);
  const builds = process.argv.slice(3, 5).map((p) => resolve(p));
  if (builds.length !== 2) throw new Error(`usage: ${usage}`);
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  const warm = new Map<string, BenchServer>();
  const results = new Map<string, { values: number[]; rss: number[]; cpu: number[] }>(builds.map((b) => [b, { values: [], rss: [], cpu: [] }]));
  try {
    if (!isCold(workload)) {
      for (const main of builds) {
        const server = await startRegmirror(upstream.registry.url, { main });
        warm.set(main, server);
        await fetchImage(server.url, upstream.small, 2);
        await fetchImage(server.url, upstream.big, 2);
        await runWorkload(workload, server.url, upstream, { ...settings, seconds: 1 });
      }
    }
    let last: WorkloadResult | undefined;
    for (let round = 0; round < settings.rounds; round++) {
      for (const [i, main] of rotation([...builds.entries()], round)) {
        const server = warm.get(main) ?? (await startRegmirror(upstream.registry.url, { main }));
        try {
          if (!warm.has(main)) await fetchImage(server.url, upstream.small);
          const meter = watchPeakRss(server.pid);
          const cpuBefore = cpuSeconds(server.pid) ?? Number.NaN;
          last = await runWorkload(workload, server.url, upstream, settings);
          const cpu = ((cpuSeconds(server.pid) ?? Number.NaN) - cpuBefore) / last.work.amount;
          const rss = meter.stop() ?? Number.NaN;
          const r = results.get(main)!;
          r.values.push(last.value);
          r.rss.push(rss);
          r.cpu.push(cpu);
          console.log(`round ${round + 1} ${i === 0 ? 'A' : 'B'}: ${last.summary}, regmirror CPU ${cpu.toFixed(2)} s per ${last.work.unit}, peak RSS ${rss.toFixed(0)} MB`);
        } finally {
          if (!warm.has(main)) await server.stop();
        }
      }
    }
    const [a, b] = builds.map((main) => results.get(main)!);
    const ma = median(a!.values)!;
    const mb = median(b!.values)!;
    console.log(`\n${workload} medians: A ${ma.toPrecision(4)} ${last!.unit}, B ${mb.toPrecision(4)} ${last!.unit}; B/A = ${(mb / ma).toFixed(2)}x (${last!.lowerIsBetter ? 'lower' : 'higher'} is better)`);
    const ca = median(a!.cpu)!;
    const cb = median(b!.cpu)!;
    console.log(`regmirror CPU per ${last!.work.unit} (medians): A ${ca.toFixed(3)} s, B ${cb.toFixed(3)} s; B/A = ${(cb / ca).toFixed(2)}x`);
    console.log(`peak RSS: A ${Math.max(...a!.rss).toFixed(0)} MB, B ${Math.max(...b!.rss).toFixed(0)} MB`);
    console.log(`A = ${builds[0]}\nB = ${builds[1]}`);
  } finally {
    await Promise.all([...warm.values()].map((s) => s.stop()));
    await upstream.stop();
  }
}

runScript(main);
