/**
 * Sends a blob with positional reads into reused buffers instead of a stream of fresh ones: no
 * allocation per chunk, so a busy mirror neither churns the garbage collector (nor pays page faults
 * on new memory) nor grows its RSS with throughput. Each response holds two buffers (one filled
 * while the other is written) or, past DOUBLE_BUFFER_BELOW responses at once, one; a buffer is
 * reused only once the socket has taken its bytes (the write callback).
 */
import type { ServerResponse } from 'node:http';

const CHUNK_BYTES = 512 * 1024;
const DOUBLE_BUFFER_BELOW = 16;
/** Free buffers kept for the next responses (the rest are left to the garbage collector). */
const MAX_POOLED = 64;
const pool: Buffer[] = [];
let active = 0;

const take = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
const give = (buffer: Buffer): void => void (pool.length < MAX_POOLED && pool.push(buffer));

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/** Writes bytes `start`..`end` (inclusive) obtained with `read`, then ends the response (destroys it on failure). */
export async function sendByReads(res: ServerResponse, read: (buffer: Buffer, position: number) => Promise<number>, start: number, end: number): Promise<void> {
  active++;
  const buffers = Array.from({ length: active > DOUBLE_BUFFER_BELOW ? 1 : 2 }, take);
  const writes: Promise<void>[] = [];
  let position = start;
  try {
    for (let i = 0; position <= end && !res.destroyed; i = (i + 1) % buffers.length) {
      await writes[i]; // this buffer's previous bytes are in the socket
      const buffer = buffers[i]!;
      const n = await read(end - position + 1 < buffer.length ? buffer.subarray(0, end - position + 1) : buffer, position);
      if (n === 0) throw new Error(`blob ended at byte ${position}, before ${end}`);
      writes[i] = write(res, buffer.subarray(0, n));
      writes[i]!.catch(() => undefined);
      position += n;
    }
    await Promise.all(writes);
    res.end();
  } catch {
    res.destroy();
  } finally {
    await Promise.allSettled(writes); // a destroyed socket calls back too
    buffers.forEach(give);
    active--;
  }
}
