// Raw HTTP over a socket, for requests fetch refuses to send (NUL bytes, slow or malformed clients).
import { connect, type Socket } from 'node:net';

/** Sends `request` as bytes and resolves with everything the server sent back before closing (or `waitMs`). */
export function rawRequest(host: string, port: number, request: string | Buffer, waitMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    const done = (): void => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    socket.setTimeout(waitMs, done);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', done);
    socket.on('error', (err) => (chunks.length ? done() : reject(err)));
    socket.write(request);
  });
}

/** Opens a socket and resolves when it is connected. */
export function openSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host, () => resolve(socket));
    socket.once('error', reject);
  });
}
