/**
 * vitest global setup: the test run gets a temp folder of its own, TMPDIR for every worker and for
 * the tools they start (skopeo, podman, containerd), removed when the run ends. A worker that is
 * killed, a test that makes folders with mkdtemp, or a tool that leaves files behind leaks nothing
 * into the machine's /tmp. The prefix is short: containerd and podman put sockets in there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'rmt-'));
  process.env.TMPDIR = dir;
  return () => {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      console.warn(`could not remove the run's temp folder ${dir}: ${(err as Error).message}`);
    }
  };
}
