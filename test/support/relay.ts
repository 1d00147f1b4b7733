// An HTTP relay that forwards everything to a target and records what passed through.
import { Agent, createServer, request, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { closeServer, listen } from './http.js';

/** One request seen by a relay; status and bytes fill in as the response goes out. */
export interface RecordedRequest {
  method: string;
  /** Path with query, as the client sent it. */
  path: string;
  /** 0 until the response starts; 502 when the target could not be reached. */
  status: number;
  /** Response body bytes sent to the client so far. */
  bytes: number;
}

/** A running relay. */
export interface Relay {
  url: string;
  host: string;
  requests: RecordedRequest[];
  /** How many recorded requests match (all when no predicate). */
  count(pred?: (r: RecordedRequest) => boolean): number;
  /** Response body bytes sent for the matching requests. */
  bytesFor(pred?: (r: RecordedRequest) => boolean): number;
  /** Forgets the recorded requests. */
  reset(): void;
  stop(): Promise<void>;
}

/** Matches blob GETs (`/v2/<name>/blobs/sha256:<hex>`), query allowed. */
export function isBlobGet(r: Pick<RecordedRequest, 'method' | 'path'>): boolean {
  return r.method === 'GET' && /^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}(\?|$)/.test(r.path);
}

/** Matches manifest GETs and HEADs. */
export function isManifestRequest(r: Pick<RecordedRequest, 'method' | 'path'>): boolean {
  return (r.method === 'GET' || r.method === 'HEAD') && /^\/v2\/.+\/manifests\/[^/]+$/.test(r.path.split('?')[0]!);
}

/** Lets a relay (the faulty upstream) answer or alter responses. */
export interface RelayHooks {
  /** Answers the request without forwarding it; returns true when it did. */
  answer?(req: IncomingMessage, res: ServerResponse): boolean;
  /**
   * Sends the target's response body itself (the status and headers are out already),
   * adding what it sends to record.bytes; returns true when it does.
   */
  send?(req: IncomingMessage, target: IncomingMessage, res: ServerResponse, record: RecordedRequest): boolean;
  /** Forwards the client's Host header instead of the target's (requests signed for the relay's address, as S3's are). */
  keepHost?: boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te']);

function endToEnd(raw: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
  }
  return kept;
}

/** Counts the bytes passing through into the record. */
function counter(record: RecordedRequest): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      record.bytes += chunk.length;
      callback(null, chunk);
    },
  });
}

/** Starts a relay with hooks; see startCountingRelay for the plain one. */
export async function startRelay(targetUrl: string, hooks: RelayHooks = {}): Promise<Relay> {
  const target = new URL(targetUrl);
  const agent = new Agent({ keepAlive: true });
  const requests: RecordedRequest[] = [];

  const server = createServer((req, res) => {
    const record: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0, bytes: 0 };
    requests.push(record);
    res.once('close', () => (record.status ||= res.statusCode));
    if (hooks.answer?.(req, res)) return;
    const headers: OutgoingHttpHeaders = { ...req.headers, host: hooks.keepHost ? req.headers.host : target.host };
    for (const name of HOP_BY_HOP) delete headers[name];
    const forward = request({ hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (upstream) => {
      record.status = upstream.statusCode ?? 502;
      res.writeHead(record.status, upstream.statusMessage, endToEnd(upstream.rawHeaders));
      if (!hooks.send?.(req, upstream, res, record)) pipeline(upstream, counter(record), res).catch(() => res.destroy());
    });
    forward.once('error', () => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502).end();
    });
    pipeline(req, forward).catch(() => forward.destroy());
  });

  const url = await listen(server);
  return {
    url,
    host: new URL(url).host,
    requests,
    count: (pred = () => true) => requests.filter(pred).length,
    bytesFor: (pred = () => true) => requests.filter(pred).reduce((sum, r) => sum + r.bytes, 0),
    reset: () => void requests.splice(0),
    async stop() {
      await closeServer(server);
      agent.destroy();
    },
  };
}

/** Starts a relay on 127.0.0.1 that forwards every request to targetUrl unchanged but for Host. */
export function startCountingRelay(targetUrl: string): Promise<Relay> {
  return startRelay(targetUrl);
}
