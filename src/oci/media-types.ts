/** Manifest media types and the Accept negotiation clients rely on. */

export const MEDIA_TYPE = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What regmirror asks upstreams for when a client sends no Accept header: every modern form. */
export const DEFAULT_MANIFEST_ACCEPT = [
  MEDIA_TYPE.ociIndex,
  MEDIA_TYPE.ociManifest,
  MEDIA_TYPE.dockerManifestList,
  MEDIA_TYPE.dockerManifest,
].join(', ');

/** Media types whose documents list child manifests (indexes). */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE.ociIndex || mediaType === MEDIA_TYPE.dockerManifestList;
}

/** A media type without its parameters (`; charset=...`). */
export function withoutParameters(mediaType: string): string {
  return mediaType.split(';')[0]!.trim();
}

/** Accept headers parsed lately: a fleet of clients sends a handful of them, over and over. */
const parsedAccepts = new Map<string, readonly string[]>();
const PARSED_ACCEPTS_KEPT = 64;

/** The media types listed in an Accept header, without parameters; empty when none was sent. */
export function parseAccept(header: string | string[] | undefined): readonly string[] {
  if (header === undefined) return [];
  const joined = Array.isArray(header) ? header.join(',') : header;
  let parsed = parsedAccepts.get(joined);
  if (parsed === undefined) {
    parsed = Object.freeze(joined.split(',').map((part) => withoutParameters(part).toLowerCase()).filter((part) => part.length > 0));
    if (parsedAccepts.size >= PARSED_ACCEPTS_KEPT) parsedAccepts.clear(); // bounded whatever clients send
    parsedAccepts.set(joined, parsed);
  }
  return parsed;
}

/** True when a manifest of `mediaType` may be answered to a client that sent `accepted`. */
export function isAcceptable(mediaType: string, accepted: readonly string[]): boolean {
  if (accepted.length === 0) return true;
  return accepted.some((a) => a === mediaType || a === '*/*' || a === 'application/*');
}

/** True when a document is a JSON object with a numeric schemaVersion, as every manifest is. */
export function looksLikeManifest(document: Buffer): boolean {
  try {
    const parsed = JSON.parse(document.toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null && typeof (parsed as { schemaVersion?: unknown }).schemaVersion === 'number';
  } catch {
    return false;
  }
}

/** The media type a manifest document declares, or what its shape implies when it declares none. */
export function manifestMediaType(document: Buffer, headerType: string | undefined): string {
  try {
    const parsed = JSON.parse(document.toString('utf8')) as { mediaType?: unknown; manifests?: unknown; schemaVersion?: unknown };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
    if (headerType && headerType !== 'application/octet-stream' && headerType !== 'application/json') return headerType;
    if (Array.isArray(parsed.manifests)) return MEDIA_TYPE.ociIndex;
    if (parsed.schemaVersion === 1) return MEDIA_TYPE.dockerSchema1Signed;
    return MEDIA_TYPE.ociManifest;
  } catch {
    return headerType ?? MEDIA_TYPE.ociManifest;
  }
}
