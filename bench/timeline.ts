/**
 * Where a cold pull spends its time: `node --import tsx bench/timeline.ts`. Pulls the big image
 * with skopeo straight from the upstream, then through a fresh regmirror (BENCH_ROUNDS times each),
 * and prints every 100 ms the bytes skopeo has written, the bytes regmirror has put in its folder
 * (the download's progress: the spool file, then the stored blob), how busy the machine's CPUs
 * were (every process, in % of one CPU) and regmirror's own share. docs/performance.md, finding 3,
 * quotes it. Honours BENCH_REGMIRROR and BENCH_LINK_MBPS (with it set, everything crosses link.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { skopeoCopyToDir, tempDir } from '../test/support/index.js';
import { startLink } from './link.js';
import { fetchImage } from './measure.js';
import { cpuSeconds } from './memory.js';
import { startRegmirror, type BenchServer } from './servers.js';
import { benchSettings } from './settings.js';
import { startUpstream } from './upstream.js';

const TICK_MS = 100;

/** Bytes of every file under `dir` (0 while it does not exist). */
function bytesUnder(dir: string): number {
  let total = 0;
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name), { throwIfNoEntry: false })?.size ?? 0;
    }
  } catch {
    // a file renamed or removed between listing and stat: counted at the next tick
  }
  return total;
}

/** The machine's busy and total CPU time so far, in clock ticks (/proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, n) => sum + n, 0);
  return { busy: total - fields[3]! - fields[4]!, total }; // idle and iowait
}

async function timeline(label: string, source: string, image: string, mirror: BenchServer | undefined): Promise<void> {
  const dir = tempDir('bench-timeline');
  const dest = join(dir, 'image');
  const mirrorData = mirror?.logPath ? join(dirname(mirror.logPath), 'data') : undefined;
  const lines: string[] = [];
  let done = false;
  const started = performance.now();
  const pull = skopeoCopyToDir(`${new URL(source).host}/${image}`, dest).finally(() => (done = true));
  try {
    let machine = machineTicks();
    let mirrorCpu = mirror ? cpuSeconds(mirror.pid) ?? 0 : 0;
    let last = started;
    while (!done) {
      await sleep(TICK_MS);
      const now = performance.now();
      const m = machineTicks();
      const share = (m.busy - machine.busy) / (m.total - machine.total); // of all CPUs
      const cpuNow = mirror ? cpuSeconds(mirror.pid) ?? mirrorCpu : 0;
      const mirrorPct = ((cpuNow - mirrorCpu) / ((now - last) / 1000)) * 100;
      lines.push([
        `${((now - started) / 1000).toFixed(1).padStart(5)} s`,
        `skopeo ${(bytesUnder(dest) / 1e6).toFixed(0).padStart(4)} MB`,
        mirrorData ? `regmirror ${(bytesUnder(mirrorData) / 1e6).toFixed(0).padStart(4)} MB` : '',
        `CPUs ${(share * 100 * availableParallelism()).toFixed(0).padStart(3)} %`,
        mirror ? `regmirror ${mirrorPct.toFixed(0).padStart(3)} %` : '',
      ].filter(Boolean).join('  '));
      machine = m;
      mirrorCpu = cpuNow;
      last = now;
    }
    await pull;
    console.log(`${label}: ${((performance.now() - started) / 1000).toFixed(2)} s`);
    for (const line of lines) console.log(`  ${line}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  const link = process.env.BENCH_LINK_MBPS ? await startLink(upstream.registry.url, settings.linkBytesPerSecond) : undefined;
  const source = link?.url ?? upstream.registry.url;
  try {
    for (let round = 0; round < settings.coldRounds; round++) {
      await timeline('direct', source, upstream.big.name, undefined);
      const mirror = await startRegmirror(source);
      try {
        await fetchImage(mirror.url, upstream.small); // a cold cache, not a cold process
        await timeline('regmirror', mirror.url, upstream.big.name, mirror);
      } finally {
        await mirror.stop();
      }
    }
  } finally {
    await link?.stop();
    await upstream.stop();
  }
}

await main();
