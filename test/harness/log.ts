// Captures what a test mirror logs (its `logStream`), one parsed JSON object per line.
import { PassThrough } from 'node:stream';

/** A log line as pino writes it. */
export type LogEntry = Record<string, unknown>;

/** A stream to give a test mirror as `logStream`, and the entries it received so far. */
export function captureLog(): { stream: PassThrough; entries: LogEntry[] } {
  const stream = new PassThrough();
  const entries: LogEntry[] = [];
  stream.on('data', (chunk: Buffer) => entries.push(...chunk.toString().split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogEntry)));
  return { stream, entries };
}
