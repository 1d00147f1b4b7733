/**
 * `npm run bench`: sets up an upstream registry, regmirror, Distribution's proxy and nginx on
 * 127.0.0.1, runs workloads 1-6 of issue 3 against each in alternation, prints one table and writes
 * bench/results/latest.json. Settings: see settings.ts. Absolute numbers depend on the (shared,
 * noisy) machine; the ratios within one run are what the targets are about.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { coldNotes, runColdPulls, runColdStampede } from './cold.js';
import { buildRows, formatTable, previousValues, Samples, writeResults } from './report.js';
import { deriveSamples, misses, rowSpecs } from './rows.js';
import { runScript } from './script.js';
import { startDistributionProxy, startNginx, startRegmirror } from './servers.js';
import { benchSettings, formatSize } from './settings.js';
import { startUpstream } from './upstream.js';
import { runWarmWorkloads, wrkErrors } from './warm.js';

const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)} s`;

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const settings = benchSettings();
  if (!process.env.BENCH_REGMIRROR && !existsSync(fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)))) {
    throw new Error('dist/cli/main.js is missing: run `npm run build` first (npm run bench does)');
  }
  const samples = new Samples();
  console.log(`regmirror bench: ${settings.quick ? 'quick, ' : ''}${settings.rounds}/${settings.coldRounds}/${settings.stampedeRounds} rounds (warm/cold/stampede), ${settings.seconds} s runs, blobs ${formatSize(settings.smallBlob)} / ${formatSize(settings.midBlob)} / ${formatSize(settings.bigBlob)}`);

  console.log('seeding the upstream registry');
  const upstream = await startUpstream(settings);
  try {
    console.log(`[${elapsed()}] warm workloads (1-3)`);
    const regmirror = await startRegmirror(upstream.registry.url);
    const distribution = await startDistributionProxy(upstream.registry.url);
    const nginx = await startNginx([upstream.big, upstream.small].flatMap((i) => [
      { urlPath: i.blobPath, file: i.layer.path, contentType: 'application/octet-stream' },
      { urlPath: i.manifestPath, file: i.manifestFile, contentType: i.image.mediaType },
    ]));
    try {
      await runWarmWorkloads(settings, { regmirror, distribution, limit: nginx }, upstream, samples);
    } finally {
      await Promise.all([regmirror.stop(), distribution.stop(), nginx.stop()]);
    }
    console.log(`[${elapsed()}] cold pulls (4)`);
    await runColdPulls(settings, upstream, samples);
    console.log(`[${elapsed()}] cold blob, concurrent clients (5)`);
    await runColdStampede(settings, upstream, samples);
  } finally {
    await upstream.stop();
  }

  deriveSamples(samples);
  const rows = buildRows(rowSpecs(settings), samples, await previousValues(settings.quick));
  const notes = [...wrkErrors, ...coldNotes];
  console.log(`\n${formatTable(rows)}\n`);
  for (const note of notes) console.log(`note: ${note}`);
  const missed = misses(rows);
  console.log(missed.length ? `targets missed (${missed.length}):\n  ${missed.join('\n  ')}` : 'every target met');
  const path = await writeResults({
    meta: {
      date: new Date().toISOString(),
      // Only the repository's own build is of its checked-out commit.
      commit: process.env.BENCH_REGMIRROR ? undefined : gitCommit(),
      regmirror: process.env.BENCH_REGMIRROR ?? 'dist/cli/main.js',
      nodeFlags: process.env.BENCH_NODE_FLAGS ?? '',
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGB: Math.round(totalmem() / 2 ** 30),
      runSeconds: Math.round((Date.now() - started) / 1000),
      ...settings,
    },
    rows,
    notes,
  });
  console.log(`[${elapsed()}] results written to ${path}`);
}

runScript(main);
