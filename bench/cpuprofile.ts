/** Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: by function and by file. */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

/** A line of the summary: self time (no callees) and total time (with callees), in percent of all samples. */
export interface HotSpot {
  name: string;
  selfPct: number;
  totalPct: number;
}

const shortUrl = (url: string): string => url.replace(/^file:\/\/.*?\/(dist|src|node_modules)\//, '$1/').replace(/^node:/, 'node:');

/** Sums self and total hits per key (a function or a file); recursion is counted once per stack. */
function aggregate(profile: CpuProfile, keyOf: (n: ProfileNode) => string): HotSpot[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    all += hits;
    const key = keyOf(n);
    self.set(key, (self.get(key) ?? 0) + hits);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(byId.get(id)!);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + hits);
    }
  }
  return [...total.keys()].map((name) => ({ name, selfPct: (100 * (self.get(name) ?? 0)) / all, totalPct: (100 * total.get(name)!) / all }));
}

/** The top `count` functions by self time, and every file by self time. */
export async function summarize(path: string, count = 25): Promise<{ functions: HotSpot[]; files: HotSpot[]; seconds: number }> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  const fn = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const file = (n: ProfileNode): string => shortUrl(n.callFrame.url) || n.callFrame.functionName;
  const bySelf = (a: HotSpot, b: HotSpot): number => b.selfPct - a.selfPct;
  return {
    functions: aggregate(profile, fn).sort(bySelf).slice(0, count),
    files: aggregate(profile, file).sort(bySelf).filter((h) => h.selfPct >= 0.5),
    seconds: (profile.endTime - profile.startTime) / 1e6,
  };
}

/** Prints a summary. */
export function printSummary(title: string, s: Awaited<ReturnType<typeof summarize>>): void {
  const line = (h: HotSpot): string => `${h.selfPct.toFixed(1).padStart(5)}% ${h.totalPct.toFixed(1).padStart(5)}%  ${h.name}`;
  console.log(`\n${title} (${s.seconds.toFixed(1)} s profiled)\n  self  total  by function`);
  for (const h of s.functions) console.log(line(h));
  console.log('  self  total  by file');
  for (const h of s.files) console.log(line(h));
}
