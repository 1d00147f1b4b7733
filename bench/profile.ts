/**
 * Profiles regmirror under one workload: `node --import tsx bench/profile.ts w1|w2|w3|w4|w4pull|w5`
 * (see workload.ts). Honours BENCH_QUICK, BENCH_SECONDS and BENCH_REGMIRROR like the bench. Runs
 * regmirror with --cpu-prof, prints where its main thread spent the time, and keeps the
 * .cpuprofile (open it in Chrome DevTools or speedscope).
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { printSummary, summarize } from './cpuprofile.js';
import { fetchImage } from './measure.js';
import { watchPeakRss } from './memory.js';
import { runScript } from './script.js';
import { startRegmirror } from './servers.js';
import { benchSettings } from './settings.js';
import { startUpstream } from './upstream.js';
import { isCold, parseWorkload, runWorkload } from './workload.js';

async function main(): Promise<void> {
  const workload = parseWorkload(process.argv[2], 'bench/profile.ts w1|w2|w3|w4|w4pull|w5');
  const settings = benchSettings();
  const profileDir = mkdtempSync(join(tmpdir(), 'regmirror-profile-'));
  const upstream = await startUpstream(settings);
  try {
    const mirror = await startRegmirror(upstream.registry.url, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] });
    // Warm workloads fill the cache first; cold ones only warm the process with the small image.
    await fetchImage(mirror.url, upstream.small, 2);
    if (!isCold(workload)) await fetchImage(mirror.url, upstream.big, 2);
    const meter = watchPeakRss(mirror.pid);
    const result = await runWorkload(workload, mirror.url, upstream, settings);
    const rss = meter.stop();
    await mirror.stop();
    console.log(`${workload}: ${result.summary}, peak RSS ${rss?.toFixed(0)} MB`);
    const [file] = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no profile written in ${profileDir}`);
    printSummary(`regmirror main thread, ${workload}`, await summarize(join(profileDir, file)));
    console.log(`\nprofile: ${join(profileDir, file)}`);
  } finally {
    await upstream.stop();
  }
}

runScript(main);
