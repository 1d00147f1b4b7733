/**
 * Workload 4 alone, for as many rounds as it takes to see through the noise:
 * `BENCH_ROUNDS=9 node --import tsx bench/cold-series.ts`. Prints every round's ratio of regmirror
 * and of Distribution's proxy to the direct pull, with the median and the range: a cold pull's
 * ratio moves by a tenth or more from round to round on a shared 2-core machine, more than the
 * three rounds of a full run can settle. Writes no results file. Honours BENCH_REGMIRROR.
 */
import { runColdPulls } from './cold.js';
import { median, Samples } from './report.js';
import { benchSettings } from './settings.js';
import { runScript } from './script.js';
import { startUpstream } from './upstream.js';

const ROWS = { 'w4.pull': 'cold image pull (skopeo)', 'w4.blob.total': 'cold blob (curl), total', 'w4.multi': 'cold multi-layer image' };

async function main(): Promise<void> {
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  const samples = new Samples();
  try {
    await runColdPulls(settings, upstream, samples);
  } finally {
    await upstream.stop();
  }
  for (const [id, label] of Object.entries(ROWS)) {
    const { regmirror = [], distribution = [], limit: direct = [] } = samples.of(id);
    console.log(`${label}: direct ${direct.map((s) => s.toFixed(2)).join(' ')} s`);
    for (const [name, times] of [['regmirror', regmirror], ['distribution', distribution]] as const) {
      const ratios = times.map((t, i) => t / direct[i]!);
      const low = Math.min(...ratios);
      const high = Math.max(...ratios);
      console.log(`  ${name} / direct: ${ratios.map((r) => r.toFixed(2)).join(' ')}; median ${median(ratios)!.toFixed(3)}x, ${low.toFixed(2)}-${high.toFixed(2)}x`);
    }
  }
}

runScript(main);
