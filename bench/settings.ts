/**
 * What one bench run does: blob sizes, rounds and durations, from the environment.
 *   BENCH_QUICK=1   a smoke run: small blobs, short runs, one round (about a minute)
 *   BENCH_ROUNDS=N  rounds of every workload (default: 5 warm, 3 of workload 4, 2 of workload 5, 3 of
 *                   the S3 column; 1 when quick)
 *   BENCH_SECONDS=N seconds of each timed load run (default 3; 2 when quick)
 *   BENCH_LINK_MBIT=N megabits/s of the link in workload 4's linked row (default 1000)
 *   BENCH_S3=0      skip the S3 column (issue 8: regmirror on a bucket of OpenStack Swift's s3api)
 *   BENCH_ONLY=s3   run the S3 column alone
 */

/** The sizes and timings of a run. */
export interface BenchSettings {
  quick: boolean;
  /** The S3 column: with the rest (on), skipped (off), or alone (only). */
  s3: 'on' | 'off' | 'only';
  /** Rounds of workloads 1-3 (short runs: many alternations beat long runs on a noisy machine). */
  rounds: number;
  /** Rounds of workload 4 (each a fresh mirror per pull). */
  coldRounds: number;
  /** Rounds of workload 5 (the slowest: Distribution fetches the blob once per client). */
  stampedeRounds: number;
  /** Rounds of the S3 column (Swift sends 100-200 MB/s here: a 500 MB series alone takes 5-10 s). */
  s3Rounds: number;
  /** Seconds of each wrk run (workloads 2 and 3) and of each single-client series (workload 1). */
  seconds: number;
  /** Bytes of the one layer of the small image (workloads 2 and 3). */
  smallBlob: number;
  /** Bytes of the big incompressible layer (workloads 1, 4 and 5). */
  bigBlob: number;
  /** Bytes of the layer of the middle image: workload 5's second size, to see whether RSS grows with it. */
  midBlob: number;
  /** Layer sizes of the multi-layer image (workload 4). */
  multiLayers: number[];
  /** Layer sizes of the image whose blobs the S3 column asks for all at once, cold (its workload 5). */
  manyColdLayers: number[];
  /** Concurrent connections of workloads 2 and 3. */
  connections: number;
  /** Clients asking at once for the same cold blob (workload 5). */
  coldClients: number;
  /** Bandwidth of the link in front of the upstream in workload 4's linked row, Mbit/s (BENCH_LINK_MBIT). */
  linkMbit: number;
}

const MB = 1_000_000;

/** The positive integer in environment variable `name`, or `fallback` when it is unset or empty. */
export function positiveInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, not "${text}"`);
  return value;
}

function s3Mode(): BenchSettings['s3'] {
  const { BENCH_S3: s3 = '', BENCH_ONLY: only = '' } = process.env;
  if (!['', '0', '1'].includes(s3)) throw new Error(`BENCH_S3 must be 0 or 1, not "${s3}"`);
  if (!['', 's3'].includes(only)) throw new Error(`BENCH_ONLY must be s3, not "${only}"`);
  if (only && s3 === '0') throw new Error('BENCH_ONLY=s3 with BENCH_S3=0 leaves nothing to run');
  return only ? 'only' : s3 === '0' ? 'off' : 'on';
}

/** Reads the settings from the environment. */
export function benchSettings(): BenchSettings {
  const quick = process.env.BENCH_QUICK === '1';
  const rounds = (full: number): number => positiveInt('BENCH_ROUNDS', quick ? 1 : full);
  return {
    quick,
    s3: s3Mode(),
    rounds: rounds(5),
    coldRounds: rounds(3),
    stampedeRounds: rounds(2),
    s3Rounds: rounds(3),
    seconds: positiveInt('BENCH_SECONDS', quick ? 2 : 3),
    smallBlob: 5 * MB,
    bigBlob: quick ? 50 * MB : 500 * MB,
    midBlob: quick ? 10 * MB : 100 * MB,
    multiLayers: quick ? [1 * MB, 2 * MB, 3 * MB] : [1 * MB, 2 * MB, 4 * MB, 8 * MB, 16 * MB, 32 * MB],
    manyColdLayers: Array.from({ length: 8 }, () => (quick ? 6 * MB : 60 * MB)),
    connections: 64,
    coldClients: 16,
    linkMbit: positiveInt('BENCH_LINK_MBIT', 1000),
  };
}

/** "500 MB" for 500_000_000. */
export function formatSize(bytes: number): string {
  return bytes >= MB ? `${Math.round(bytes / MB)} MB` : `${Math.round(bytes / 1000)} kB`;
}

/** Bytes per second of a link of `mbit` Mbit/s. */
export const linkBytesPerSecond = (mbit: number): number => mbit * 125_000;

/** "1 Gbit/s" for 1000, "500 Mbit/s" for 500. */
export function formatLink(mbit: number): string {
  return mbit >= 1000 && mbit % 1000 === 0 ? `${mbit / 1000} Gbit/s` : `${mbit} Mbit/s`;
}
