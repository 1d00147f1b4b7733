// Small HTTP helpers for tests that talk to regmirror directly (as containerd or curl would).
import { createHash } from 'node:crypto';

/** A response read whole. */
export interface ReadResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** Sends a request and reads the whole body. */
export async function send(url: string, init: RequestInit = {}): Promise<ReadResponse> {
  const res = await fetch(url, init);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body };
}

/** The sha256 digest of a buffer, in `sha256:<hex>` form. */
export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The OCI error codes of an error body. */
export function errorCodes(body: Buffer): string[] {
  const parsed = JSON.parse(body.toString('utf8')) as { errors: { code: string }[] };
  return parsed.errors.map((e) => e.code);
}

/** Accept header of a client that takes every manifest form (as containerd sends). */
export const ACCEPT_ALL =
  'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
