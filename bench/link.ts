/**
 * A link of limited bandwidth in front of the upstream, for workload 4's linked rows: on one
 * machine the upstream answers as fast as the CPUs allow, so a cold pull through a mirror competes
 * with the upstream and the client for the same cores; a mirror in use downloads over a network
 * link from a registry elsewhere. Every response body that passes shares one token bucket, as the
 * responses on one link share its bandwidth.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startRelay, type Relay } from '../test/support/index.js';

const SLACK_MS = 10;

/** Starts a relay to `targetUrl` whose response bodies together get at most `bytesPerSecond`. */
export function startLink(targetUrl: string, bytesPerSecond: number): Promise<Relay> {
  let free = 0; // when the link has sent everything queued so far (performance.now() ms)
  const paced = (record: { bytes: number }): Transform =>
    new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        record.bytes += chunk.length;
        const now = performance.now();
        // Time the link sat idle only because a timer fired late is not lost: up to SLACK_MS is made up.
        free = Math.max(free, now - SLACK_MS) + (chunk.length / bytesPerSecond) * 1000;
        // A chunk leaves once the link has carried it; waits under a millisecond are not worth a timer.
        if (free - now < 1) callback(null, chunk);
        else setTimeout(() => callback(null, chunk), free - now);
      },
    });
  return startRelay(targetUrl, {
    send(_req, target, res, record) {
      pipeline(target, paced(record), res).catch(() => res.destroy());
      return true;
    },
  });
}
