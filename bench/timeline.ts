/**
 * Where a cold pull spends its time: `node --import tsx bench/timeline.ts`. Pulls the big image
 * with skopeo straight from the upstream, then through a fresh regmirror (BENCH_ROUNDS times each,
 * 3 by default), and prints every 100 ms the bytes skopeo has written, the bytes regmirror has put
 * in its folder (the download's progress: the spool file, then the stored blob), how busy the
 * machine's CPUs were (every process, in % of one CPU), the time the host took them away (steal)
 * and regmirror's own share. docs/performance.md, finding 3, quotes it. Honours BENCH_REGMIRROR and
 * BENCH_LINK_MBIT (with it set, everything crosses a link of that bandwidth, link.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { skopeoCopyToDir, tempDir, type Relay } from '../test/support/index.js';
import { withFreshMirror } from './cold.js';
import { startLink } from './link.js';
import { cpuSeconds } from './memory.js';
import type { BenchServer } from './servers.js';
import { runScript } from './script.js';
import { benchSettings, linkBytesPerSecond } from './settings.js';
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
    // the folder changed while it was listed: this tick shows 0
  }
  return total;
}

/** The machine's CPU time so far, in clock ticks (/proc/stat): busy, taken by the host (steal), in all. */
function machineTicks(): { busy: number; steal: number; total: number } {
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return { busy, steal: steal!, total: busy + idle! + iowait! + steal! };
}

async function timeline(label: string, source: string, image: string, mirror: BenchServer | undefined): Promise<void> {
  const dir = tempDir('bench-timeline');
  const dest = join(dir, 'image');
  const mirrorData = mirror?.logPath ? join(dirname(mirror.logPath), 'data') : undefined;
  const lines: string[] = [];
  let done = false;
  const started = performance.now();
  let failure: unknown;
  const pull = skopeoCopyToDir(`${new URL(source).host}/${image}`, dest)
    .catch((err: unknown) => void (failure = err))
    .finally(() => (done = true));
  try {
    let machine = machineTicks();
    let mirrorCpu = mirror ? cpuSeconds(mirror.pid) ?? 0 : 0;
    let last = started;
    while (!done) {
      await sleep(TICK_MS);
      const now = performance.now();
      const m = machineTicks();
      const cpus = availableParallelism() / (m.total - machine.total); // from ticks to CPUs
      const cpuNow = mirror ? cpuSeconds(mirror.pid) ?? mirrorCpu : 0;
      const mirrorPct = ((cpuNow - mirrorCpu) / ((now - last) / 1000)) * 100;
      lines.push([
        `${((now - started) / 1000).toFixed(1).padStart(5)} s`,
        `skopeo ${(bytesUnder(dest) / 1e6).toFixed(0).padStart(4)} MB`,
        mirrorData ? `regmirror ${(bytesUnder(mirrorData) / 1e6).toFixed(0).padStart(4)} MB` : '',
        `CPUs ${((m.busy - machine.busy) * cpus * 100).toFixed(0).padStart(3)} %`,
        `steal ${((m.steal - machine.steal) * cpus * 100).toFixed(0).padStart(3)} %`,
        mirror ? `regmirror ${mirrorPct.toFixed(0).padStart(3)} %` : '',
      ].filter(Boolean).join('  '));
      machine = m;
      mirrorCpu = cpuNow;
      last = now;
    }
    await pull;
    if (failure) throw failure;
    console.log(`${label}: ${((performance.now() - started) / 1000).toFixed(2)} s`);
    for (const line of lines) console.log(`  ${line}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  let link: Relay | undefined;
  try {
    if (process.env.BENCH_LINK_MBIT) link = await startLink(upstream.registry.url, linkBytesPerSecond(settings.linkMbit));
    const source = link?.url ?? upstream.registry.url;
    for (let round = 0; round < settings.coldRounds; round++) {
      await timeline('direct', source, upstream.big.name, undefined);
      await withFreshMirror('regmirror', source, upstream.small, (mirror) => timeline('regmirror', mirror.url, upstream.big.name, mirror));
    }
  } finally {
    await link?.stop();
    await upstream.stop();
  }
}

runScript(main);
