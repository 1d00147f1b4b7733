// A relay in front of an S3 API (the Swift fixture) whose requests can be made to fail the ways a
// bucket fails: an error status, or the connection cut while the request is being sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startRelay, type RecordedRequest, type Relay } from './relay.js';

/** The S3 requests a test tells apart (path-style addressing). */
export type S3Operation = 'PutObject' | 'CreateMultipartUpload' | 'UploadPart' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'other';

/** What a request to the S3 API asks for, from its method and query. */
export function s3Operation(r: Pick<RecordedRequest, 'method' | 'path'>): S3Operation {
  const query = new URLSearchParams(r.path.split('?')[1] ?? '');
  const upload = query.has('uploadId');
  if (r.method === 'PUT') return query.has('partNumber') && upload ? 'UploadPart' : upload ? 'other' : 'PutObject';
  if (r.method === 'POST') return query.has('uploads') ? 'CreateMultipartUpload' : upload ? 'CompleteMultipartUpload' : 'other';
  return r.method === 'DELETE' && upload ? 'AbortMultipartUpload' : 'other';
}

/** A fault: which requests it hits, and how. */
export interface StoreFault {
  operation: S3Operation;
  /**
   * 'error': the body is read, then 500 InternalError; 'cut': the connection closes after the
   * body's first bytes; 'stall': the body is read and no answer ever comes.
   */
  how: 'error' | 'cut' | 'stall';
  /** Hits this many requests at most, then the store is healed (default: until setFault(null)). */
  times?: number;
  /** Only requests whose path (with query) contains this. */
  pathContains?: string;
  /** Only this part of a multipart upload (UploadPart). */
  part?: number;
}

/** A relay to an S3 API that applies its current fault. */
export interface FaultyStore extends Relay {
  /** Sets the fault (null: none, the store healed). */
  setFault(fault: StoreFault | null): void;
  /** How many requests the fault hit so far. */
  readonly faulted: number;
  /** How many requests of one operation were recorded (only those whose path contains `pathContains`). */
  countOf(operation: S3Operation, pathContains?: string): number;
}

function hits(fault: StoreFault | null, req: IncomingMessage): boolean {
  const r = { method: req.method ?? 'GET', path: req.url ?? '/' };
  if (fault === null || s3Operation(r) !== fault.operation) return false;
  if (fault.pathContains !== undefined && !r.path.includes(fault.pathContains)) return false;
  return fault.part === undefined || new URLSearchParams(r.path.split('?')[1]).get('partNumber') === String(fault.part);
}

function fail(req: IncomingMessage, res: ServerResponse, how: StoreFault['how']): void {
  if (how === 'cut') {
    const cut = (): void => void req.socket.destroy();
    req.once('data', cut);
    req.once('end', cut);
    return;
  }
  req.resume();
  if (how === 'stall') return;
  req.once('end', () => {
    res.writeHead(500, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>fault injected by the test store</Message></Error>');
  });
}

/** Starts a relay to the S3 API at targetUrl; requests keep their Host, so their signatures hold. */
export async function startFaultyStore(targetUrl: string): Promise<FaultyStore> {
  let current: StoreFault | null = null;
  let faulted = 0;
  const relay = await startRelay(targetUrl, {
    keepHost: true,
    answer(req, res) {
      if (!hits(current, req)) return false;
      faulted++;
      fail(req, res, current!.how);
      if (current!.times !== undefined && --current!.times === 0) current = null;
      return true;
    },
  });
  return {
    ...relay,
    setFault(fault: StoreFault | null) {
      current = fault && { ...fault };
    },
    get faulted() {
      return faulted;
    },
    countOf: (operation, pathContains = '') => relay.count((r) => s3Operation(r) === operation && r.path.includes(pathContains)),
  };
}
