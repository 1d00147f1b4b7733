/**
 * A link of limited bandwidth in front of the upstream, for workload 4's linked row: on one machine
 * the upstream answers as fast as the CPUs allow, so a cold pull through a mirror competes with the
 * upstream and the client for the same cores; a mirror in use downloads over a network link from a
 * registry elsewhere. This models the link's bandwidth only, not its round-trip time. Every response
 * body that passes shares one token bucket, as the responses on one link share its bandwidth.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startRelay, type Relay } from '../test/support/index.js';

/**
 * The bucket's depth, in milliseconds of the link's time: after an idle moment (or a timer that
 * fired late) this much traffic passes at once, so the average rate is the link's.
 */
const BURST_MS = 10;

/** Starts a relay to `targetUrl` whose response bodies together get at most `bytesPerSecond` on average. */
export function startLink(targetUrl: string, bytesPerSecond: number): Promise<Relay> {
  let busyUntil = 0; // when the link has carried everything let through so far (performance.now() ms)
  const paced = (record: { bytes: number }): Transform => {
    let timer: NodeJS.Timeout | undefined;
    return new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        const now = performance.now();
        busyUntil = Math.max(busyUntil, now - BURST_MS) + (chunk.length / bytesPerSecond) * 1000;
        const send = (): void => {
          record.bytes += chunk.length;
          callback(null, chunk);
        };
        // A chunk leaves once the link has carried it; waits under a millisecond are not worth a timer.
        if (busyUntil - now < 1) send();
        else timer = setTimeout(send, busyUntil - now);
      },
      destroy(err, callback) {
        clearTimeout(timer);
        callback(err);
      },
    });
  };
  return startRelay(targetUrl, {
    send(_req, target, res, record) {
      pipeline(target, paced(record), res).catch(() => res.destroy());
      return true;
    },
  });
}
