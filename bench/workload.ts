/** One workload run once against one regmirror: what bench/profile.ts and bench/ab.ts measure. */
import { blobLoad, coldBlob, manifestLoad, singleClientThroughput, stampede, timedPull } from './measure.js';
import type { BenchSettings } from './settings.js';
import type { BenchUpstream } from './upstream.js';

/** w1-w3 want a warm cache; w4 (one cold blob), w4pull (a cold skopeo pull of the big image) and w5 a cold one. */
export const WORKLOADS = ['w1', 'w2', 'w3', 'w4', 'w4pull', 'w5'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** Parses a command-line workload name. */
export function parseWorkload(text: string | undefined, usage: string): Workload {
  if (!WORKLOADS.includes(text as Workload)) throw new Error(`usage: ${usage}`);
  return text as Workload;
}

export const isCold = (w: Workload): boolean => w.startsWith('w4') || w === 'w5';

/** A run's headline number (higher is better unless `lowerIsBetter`) and a one-line summary. */
export interface WorkloadResult {
  value: number;
  unit: string;
  lowerIsBetter: boolean;
  summary: string;
  /** How much work the run was (GB sent, thousands of requests, or one run), to divide CPU time by. */
  work: { amount: number; unit: 'GB' | 'k requests' | 'run' };
}

/** Runs `workload` once against the regmirror at `url` (warmed or fresh, as the workload wants). */
export async function runWorkload(workload: Workload, url: string, upstream: BenchUpstream, settings: BenchSettings): Promise<WorkloadResult> {
  const { big, small } = upstream;
  switch (workload) {
    case 'w1': {
      const { mbps, bytes } = await singleClientThroughput(url + big.blobPath, big.layer.size, settings);
      return { value: mbps, unit: 'MB/s', lowerIsBetter: false, summary: `${mbps.toFixed(0)} MB/s`, work: { amount: bytes / 1e9, unit: 'GB' } };
    }
    case 'w2':
    case 'w3': {
      const r = workload === 'w2' ? await blobLoad(url, small, settings) : await manifestLoad(url, small, settings);
      const summary = `${r.requestsPerSec.toFixed(0)} req/s, ${(r.bytesPerSec / 1e6).toFixed(0)} MB/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ${r.errors} errors`;
      return workload === 'w2'
        ? { value: r.bytesPerSec / 1e6, unit: 'MB/s', lowerIsBetter: false, summary, work: { amount: r.bytes / 1e9, unit: 'GB' } }
        : { value: r.requestsPerSec, unit: 'req/s', lowerIsBetter: false, summary, work: { amount: r.requests / 1000, unit: 'k requests' } };
    }
    case 'w4': {
      const t = await coldBlob(url, big);
      return { value: t.total, unit: 's', lowerIsBetter: true, summary: `first byte ${t.firstByte.toFixed(3)} s, total ${t.total.toFixed(2)} s`, work: { amount: 1, unit: 'run' } };
    }
    case 'w4pull': {
      const seconds = await timedPull(url, big);
      return { value: seconds, unit: 's', lowerIsBetter: true, summary: `skopeo pull ${seconds.toFixed(2)} s`, work: { amount: 1, unit: 'run' } };
    }
    case 'w5': {
      const s = await stampede(url, big, settings.coldClients);
      return { value: s.seconds, unit: 's', lowerIsBetter: true, summary: `${s.complete}/${s.transfers.length} whole, digest ${s.digestOk ? 'ok' : 'WRONG'}, all done ${s.seconds.toFixed(2)} s`, work: { amount: 1, unit: 'run' } };
    }
  }
}
