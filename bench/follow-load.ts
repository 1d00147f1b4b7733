/**
 * A load client that follows redirects, for workload 2 against regmirror with storage.redirect
 * (wrk does not follow a 307): `node --import tsx bench/follow-load.ts URL CONNECTIONS SECONDS SIZE`.
 * CONNECTIONS loops share one undici Agent (a kept-alive connection per loop and origin); each asks
 * URL, follows a 307 to its Location, reads the body whole and counts it, until SECONDS have passed.
 * A final status other than 200 or a body other than SIZE bytes is an error. Prints one line,
 * `FOLLOW_JSON {...}`, for bench/load.ts. Its own process, so that it has a JS thread of its own.
 */
import { Agent } from 'undici';

const [url, connections, seconds, size] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const agent = new Agent({ keepAliveTimeout: 30_000 });
const totals = { requests: 0, redirects: 0, bytes: 0, errors: 0 };

/**
 * One GET, its body counted and dropped. A raw dispatch handler, no stream per response: the
 * least CPU per byte undici offers (about 1.2x its request() here), for the client shares the two cores.
 */
function get(target: string): Promise<{ status: number; location: string | undefined; bytes: number }> {
  const { origin, pathname, search } = new URL(target);
  return new Promise((resolve, reject) => {
    const res = { status: 0, location: undefined as string | undefined, bytes: 0 };
    agent.dispatch({ origin, path: pathname + search, method: 'GET' }, {
      // Its presence tells undici this handler speaks the new API (otherwise taken for the legacy one).
      onRequestStart: () => undefined,
      onResponseStart(_controller, statusCode, headers) {
        res.status = statusCode;
        const location = headers.location;
        res.location = Array.isArray(location) ? location[0] : location;
      },
      onResponseData(_controller, chunk) {
        res.bytes += chunk.length;
      },
      onResponseEnd: () => resolve(res),
      onResponseError: (_controller, err) => reject(err),
    });
  });
}

async function client(deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    try {
      let res = await get(url);
      if (res.status === 307 && res.location !== undefined) {
        totals.redirects++;
        res = await get(new URL(res.location, url).href);
      }
      if (res.status === 200 && res.bytes === size) {
        totals.requests++;
        totals.bytes += res.bytes;
      } else {
        totals.errors++;
      }
    } catch {
      totals.errors++;
    }
  }
}

const started = performance.now();
// Requests under way at the deadline finish and count; the duration runs until the last one ends.
await Promise.all(Array.from({ length: connections }, () => client(started + seconds * 1000)));
const durationUs = Math.round((performance.now() - started) * 1000);
console.log(`FOLLOW_JSON ${JSON.stringify({ ...totals, durationUs })}`);
await agent.close();
