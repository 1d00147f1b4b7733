/**
 * What receiving and hashing the big blob costs node alone, by receive path, with no mirror:
 * `node [node options] --import tsx bench/receive.ts` downloads the 500 MB blob from the bench's
 * upstream a few times each with undici's `request()`, node's `http` client and a raw socket that
 * reads into one reused buffer (`onread`: no allocation per read; a measurement, not an HTTP
 * client), hashing it, and prints the CPU seconds and V8's mark-compacts per download
 * (docs/performance.md, finding 5). Honours BENCH_QUICK and BENCH_ROUNDS.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { connect } from 'node:net';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { runScript } from './script.js';
import { benchSettings } from './settings.js';
import { startUpstream } from './upstream.js';

type Receive = (url: URL, size: number) => Promise<void>;

const hashAll = async (body: AsyncIterable<Buffer>): Promise<void> => {
  const hash = createHash('sha256');
  for await (const chunk of body) hash.update(chunk);
  hash.digest();
};

function rawSocket(url: URL, size: number): Promise<void> {
  const hash = createHash('sha256');
  let head = true;
  let received = 0;
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer: Buffer.allocUnsafe(64 * 1024),
        callback: (n: number, buffer: Uint8Array) => {
          let chunk = Buffer.from(buffer.buffer, buffer.byteOffset, n);
          if (head) {
            const end = chunk.indexOf('\r\n\r\n'); // the bench's upstream sends its head in the first read
            head = false;
            chunk = chunk.subarray(end + 4);
          }
          hash.update(chunk);
          received += chunk.length;
          if (received >= size) {
            socket.destroy();
            resolve();
          }
          return true;
        },
      },
    });
    socket.on('error', reject);
    socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
  });
}

async function main(): Promise<void> {
  const settings = benchSettings();
  const upstream = await startUpstream(settings);
  const dispatcher = new Agent();
  const agent = new http.Agent({ keepAlive: true });
  let majors = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
  }).observe({ entryTypes: ['gc'] });
  const paths: Record<string, Receive> = {
    'undici request()': async (url) => hashAll((await request(url, { dispatcher })).body),
    "node's http": async (url) => hashAll(await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, { agent }, resolve).on('error', reject))),
    'raw socket, one reused buffer': rawSocket,
  };
  try {
    const url = new URL(upstream.registry.url + upstream.big.blobPath);
    for (const [name, receive] of Object.entries(paths)) {
      for (let round = 0; round < settings.rounds; round++) {
        majors = 0;
        const cpu = process.cpuUsage();
        const started = performance.now();
        await receive(url, upstream.big.layer.size);
        const used = process.cpuUsage(cpu);
        console.log(`${name}: ${((performance.now() - started) / 1000).toFixed(2)} s, CPU ${((used.user + used.system) / 1e6).toFixed(2)} s, mark-compacts ${majors}`);
      }
    }
  } finally {
    await dispatcher.close();
    agent.destroy();
    await upstream.stop();
  }
}

runScript(main);
