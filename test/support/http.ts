// Small node:http helpers shared by the fixtures.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1 on a free port; resolves with the base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes a server, cutting open (keep-alive or stalled) connections. */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/** Decodes a `Basic` Authorization header. */
export function basicCredentials(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString();
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * One read of `url`/metrics, as a function from a metric's name to its value: an unlabelled
 * metric's, or the sum of a labelled one's series (0 before it has any). It throws for a metric the
 * server does not declare, so a renamed one cannot read as 0.
 */
export async function metricsOf(url: string): Promise<(name: string) => number> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`${url}/metrics answered ${res.status}`);
  const lines = (await res.text()).split('\n');
  return (name) => {
    if (!lines.some((line) => line.startsWith(`# TYPE ${name} `))) throw new Error(`${url}/metrics has no metric ${name}`);
    return lines
      .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  };
}

/** The value of one metric on `url`/metrics (see metricsOf). */
export async function metric(url: string, name: string): Promise<number> {
  return (await metricsOf(url))(name);
}
