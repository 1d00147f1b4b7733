// A relay whose blob downloads can be made to fail in the ways real upstreams fail.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isBlobGet, startRelay, type RecordedRequest, type Relay } from './relay.js';

/**
 * 'corrupt': one byte flipped, length and headers kept; 'truncate': the socket closes after
 * half the body; 'stall': half the body, then nothing; {status}: that error status instead.
 */
export type Fault = 'corrupt' | 'truncate' | 'stall' | { status: number; retryAfter?: number };

/** A relay that applies its current fault to blob GETs. */
export interface FaultyUpstream extends Relay {
  /** Sets the fault (null: none), for the next `times` blob GETs or until changed. */
  setFault(fault: Fault | null, times?: number): void;
  /** How many responses were altered so far. */
  readonly faulted: number;
}

function answerStatus(res: ServerResponse, fault: { status: number; retryAfter?: number }): void {
  const code = fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE';
  res.writeHead(fault.status, {
    'content-type': 'application/json',
    ...(fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) }),
  });
  res.end(JSON.stringify({ errors: [{ code, message: 'fault injected by the test upstream' }] }));
}

/** Streams the body, flipping the middle byte or stopping halfway. */
function sendFaulty(target: IncomingMessage, res: ServerResponse, record: RecordedRequest, fault: 'corrupt' | 'truncate' | 'stall'): void {
  const half = Math.floor(Number(target.headers['content-length'] ?? 0) / 2);
  let position = 0;
  target.on('data', (data: Buffer) => {
    let chunk = data;
    if (fault !== 'corrupt' && position + chunk.length >= half) {
      const head = chunk.subarray(0, half - position);
      record.bytes += head.length;
      target.destroy();
      res.write(head, () => fault === 'truncate' && res.destroy());
      return;
    }
    if (fault === 'corrupt' && half >= position && half < position + chunk.length) {
      chunk = Buffer.from(chunk);
      chunk[half - position]! ^= 0xff;
    }
    position += chunk.length;
    record.bytes += chunk.length;
    if (!res.write(chunk)) {
      target.pause();
      res.once('drain', () => target.resume());
    }
  });
  target.once('end', () => res.end());
  res.once('close', () => target.destroy());
}

/** Starts a relay to targetUrl whose blob GETs suffer `fault` (changeable with setFault). */
export async function startFaultyUpstream(targetUrl: string, fault: Fault | null = null): Promise<FaultyUpstream> {
  let current = fault;
  let remaining = Infinity;
  let faulted = 0;
  /** The fault for this request, counted as used; null when none applies. */
  const take = (req: IncomingMessage, applies: (f: Fault) => boolean): Fault | null => {
    const f = current;
    if (f === null || !applies(f) || !isBlobGet({ method: req.method ?? '', path: req.url ?? '' })) return null;
    faulted++;
    if (--remaining <= 0) current = null;
    return f;
  };
  const relay = await startRelay(targetUrl, {
    answer(req, res) {
      const f = take(req, (x) => typeof x === 'object');
      if (f === null || typeof f !== 'object') return false;
      answerStatus(res, f);
      return true;
    },
    send(req, target, res, record) {
      const ok = target.statusCode === 200 || target.statusCode === 206;
      const f = take(req, (x) => typeof x === 'string' && ok);
      if (f === null || typeof f === 'object') return false;
      sendFaulty(target, res, record, f);
      return true;
    },
  });
  return {
    ...relay,
    setFault(next: Fault | null, times = Infinity) {
      current = next;
      remaining = times;
    },
    get faulted() {
      return faulted;
    },
  };
}
