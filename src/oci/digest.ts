/** Content digests as the OCI image spec defines them (algorithm:encoded). */
import { createHash } from 'node:crypto';

/** A validated digest string such as `sha256:<64 hex>`. */
export type Digest = string & { readonly __digest: unique symbol };

/** Hash algorithms regmirror can verify, with the length of their hex encoding. */
export const DIGEST_ALGORITHMS: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

const DIGEST_FORM = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Returns the digest if it is well formed and of a supported algorithm, else undefined. */
export function parseDigest(value: string): Digest | undefined {
  const m = DIGEST_FORM.exec(value);
  if (!m) return undefined;
  const [, algorithm, encoded] = m as unknown as [string, string, string];
  const length = DIGEST_ALGORITHMS[algorithm];
  if (length === undefined || encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) return undefined;
  return value as Digest;
}

/** The algorithm part of a valid digest. */
export function digestAlgorithm(digest: Digest): string {
  return digest.slice(0, digest.indexOf(':'));
}

/** The encoded (hex) part of a valid digest. */
export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** The digest of `data` with the given algorithm (sha256 unless told). */
export function digestOf(data: Uint8Array, algorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}
