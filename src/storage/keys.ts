/**
 * The key layout of the store, all in one place:
 *
 *   blobs/<alg>/<hex[0:2]>/<hex>                     content, by digest (layers, configs, manifests)
 *   repositories/<upstream>/<repo>/_blobs/<alg>/<hex>       link: this repository is known to hold it
 *   repositories/<upstream>/<repo>/_manifests/<alg>/<hex>   link + media type of a manifest (JSON)
 *   repositories/<upstream>/<repo>/_tags/<tag>               tag record: digest, media type, fetched at (JSON)
 *   repositories/<upstream>/<repo>/_lists/<sha256 of path>  last tags/referrers answer, for when upstream is down
 *   _health/probe                                      written by the readiness check
 *
 * Content is shared by every upstream (same digest, same bytes); links scope it, so a blob is only
 * served for a repository that upstream said holds it. Names and digests are validated before they
 * reach here, so keys never contain `..` or absolute parts.
 */
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js';

/** Key of a blob's content. */
export function blobKey(digest: Digest): string {
  const hex = digestHex(digest);
  return `blobs/${digestAlgorithm(digest)}/${hex.slice(0, 2)}/${hex}`;
}

/** Prefix of everything recorded for a repository of an upstream. */
export function repositoryPrefix(upstream: string, repository: string): string {
  return `repositories/${upstream}/${repository}/`;
}

/** Key of the link that says `repository` holds blob `digest`. */
export function blobLinkKey(upstream: string, repository: string, digest: Digest): string {
  return `${repositoryPrefix(upstream, repository)}_blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

/** Key of the record of a manifest held by `repository`. */
export function manifestLinkKey(upstream: string, repository: string, digest: Digest): string {
  return `${repositoryPrefix(upstream, repository)}_manifests/${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

/** Key of a tag record. */
export function tagKey(upstream: string, repository: string, tag: string): string {
  return `${repositoryPrefix(upstream, repository)}_tags/${tag}`;
}

/** Key of the last answer upstream gave to a list request (tags, referrers), by a hash of its path. */
export function listKey(upstream: string, repository: string, pathHash: string): string {
  return `${repositoryPrefix(upstream, repository)}_lists/${pathHash}`;
}

/** Key the readiness check writes to prove storage is writable. */
export const HEALTH_PROBE_KEY = '_health/probe';
