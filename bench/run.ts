/**
 * `npm run bench`: sets up an upstream registry, regmirror, Distribution's proxy and nginx on
 * 127.0.0.1, runs workloads 1-6 of issue 3 against each in alternation, then the S3 column of
 * issue 8 (s3.ts), prints the tables and writes bench/results/latest.json. Settings: see
 * settings.ts. Absolute numbers depend on the (shared, noisy) machine; the ratios within one run
 * are what the targets are about.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { coldNotes, runColdPulls, runColdStampede, runLinkedColdPulls, runPinnedColdPulls } from './cold.js';
import { buildColumnTable, buildRows, formatColumnTable, formatTable, previousValues, Samples, writeResults } from './report.js';
import { deriveSamples, misses, rowSpecs, s3RowSpecs, S3_COLUMNS, S3_RATIOS } from './rows.js';
import { runS3Column, s3Notes, type S3Column } from './s3.js';
import { runScript } from './script.js';
import { startDistributionProxy, startNginx, startRegmirror } from './servers.js';
import { benchSettings, formatLink, formatSize, type BenchSettings } from './settings.js';
import { startUpstream, type BenchUpstream } from './upstream.js';
import { loadErrors, runPinnedManifestLoad, runWarmWorkloads, warmNotes } from './warm.js';

const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)} s`;

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** Workloads 1-5 of issue 3: regmirror against Distribution's proxy and nginx or the upstream. */
async function runIssue3Workloads(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  console.log(`[${elapsed()}] warm workloads (1-3)`);
  const regmirror = await startRegmirror(upstream.registry.url);
  const distribution = await startDistributionProxy(upstream.registry.url);
  const nginx = await startNginx([upstream.big, upstream.small].flatMap((i) => [
    { urlPath: i.blobPath, file: i.layer.path, contentType: 'application/octet-stream' },
    { urlPath: i.manifestPath, file: i.manifestFile, contentType: i.image.mediaType },
  ]));
  try {
    await runWarmWorkloads(settings, { regmirror, distribution, limit: nginx }, upstream, samples);
    console.log(`[${elapsed()}] warm manifest by tag (3), the server on a CPU of its own`);
    await runPinnedManifestLoad(settings, { regmirror, distribution, limit: nginx }, upstream, samples);
  } finally {
    await Promise.all([regmirror.stop(), distribution.stop(), nginx.stop()]);
  }
  console.log(`[${elapsed()}] cold pulls (4)`);
  await runColdPulls(settings, upstream, samples);
  console.log(`[${elapsed()}] cold pulls (4), the mirror on a CPU of its own`);
  await runPinnedColdPulls(settings, upstream, samples);
  console.log(`[${elapsed()}] cold pulls (4) over a link of ${formatLink(settings.linkMbit)}`);
  await runLinkedColdPulls(settings, upstream, samples);
  console.log(`[${elapsed()}] cold blob, concurrent clients (5)`);
  await runColdStampede(settings, upstream, samples);
}

async function main(): Promise<void> {
  const settings = benchSettings();
  if (!process.env.BENCH_REGMIRROR && !existsSync(fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)))) {
    throw new Error('dist/cli/main.js is missing: run `npm run build` first (npm run bench does)');
  }
  const samples = new Samples();
  const s3Samples = new Samples<S3Column>();
  let s3Ran = false;
  console.log(`regmirror bench: ${settings.quick ? 'quick, ' : ''}${settings.s3 === 'only' ? 'S3 column only, ' : settings.s3 === 'off' ? 'no S3 column, ' : ''}${settings.rounds}/${settings.coldRounds}/${settings.stampedeRounds}/${settings.s3Rounds} rounds (warm/cold/stampede/S3), ${settings.seconds} s runs, blobs ${formatSize(settings.smallBlob)} / ${formatSize(settings.midBlob)} / ${formatSize(settings.bigBlob)}`);

  console.log('seeding the upstream registry');
  const upstream = await startUpstream(settings);
  try {
    if (settings.s3 !== 'only') await runIssue3Workloads(settings, upstream, samples);
    if (settings.s3 !== 'off') {
      console.log(`[${elapsed()}] S3 column: warm blobs (1, 2) and many cold ones (5) from regmirror on Swift's s3api`);
      s3Ran = await runS3Column(settings, upstream, s3Samples);
    }
  } finally {
    await upstream.stop();
  }

  deriveSamples(samples);
  const rows = settings.s3 === 'only' ? [] : buildRows(rowSpecs(settings), samples, await previousValues(settings.quick));
  const s3 = s3Ran ? buildColumnTable(S3_COLUMNS, S3_RATIOS, s3RowSpecs(settings), s3Samples) : undefined;
  const notes = [...loadErrors, ...warmNotes, ...coldNotes, ...s3Notes];
  if (rows.length) console.log(`\n${formatTable(rows)}\n`);
  if (s3) console.log(`\nS3 column (ratios: medians of per-round ratios)\n${formatColumnTable(s3)}\n`);
  for (const note of notes) console.log(`note: ${note}`);
  const missed = misses(rows);
  if (rows.length) console.log(missed.length ? `targets missed (${missed.length}):\n  ${missed.join('\n  ')}` : 'every target met');
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
    s3,
    notes,
  });
  console.log(`[${elapsed()}] results written to ${path}`);
}

runScript(main);
