// Seeds registries with generated images through skopeo, and pulls them back with it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLayout, type LayoutBlob } from './oci-layout.js';
import { run, tempDir } from './process.js';

/** Registry credentials. */
export interface Credentials {
  username: string;
  password: string;
}

/** A blob as stored on disk: a layout's or a `dir:` copy's. */
export interface BlobFile {
  digest: string;
  size: number;
  path: string;
}

/** What to seed; see seedImage. */
export interface SeedOptions {
  repo: string;
  tag: string;
  /** Bytes of random content of each layer. */
  layerSizes: number[];
  /** 'oci' (default) pushes as built; 'v2s2' converts to Docker schema 2. */
  format?: 'oci' | 'v2s2';
  /** Platforms such as 'linux/arm64/v8': pushes an index (manifest list) of them. */
  platforms?: string[];
  /** false: random bytes (gzip level 0, fast) instead of random hex text (gzips to half). */
  compressible?: false;
  /** 'none': uncompressed tar layers (fastest for huge ones; oci format only). Default 'gzip'. */
  compression?: 'gzip' | 'none';
  /** For registries that want them to push (basic, or a token service user). */
  creds?: Credentials;
}

/** A seeded image, to compare what clients get against. */
export interface SeededImage {
  /** host/repo:tag */
  ref: string;
  repo: string;
  tag: string;
  /** What the tag resolves to: the index digest for multi-platform images. */
  manifestDigest: string;
  mediaType: string;
  /** The index's manifests, as pushed. */
  manifests?: { platform: string; digest: string }[];
  /** Configs and layers of all platforms, with their files in layoutDir. */
  blobs: BlobFile[];
  layoutDir: string;
}

/** Options for the skopeo helpers. */
export interface SkopeoOptions {
  creds?: Credentials;
  /** --override-arch / --override-os: the platform to pick from an index. */
  overrideArch?: string;
  overrideOs?: string;
  /** Copy every manifest of an index (--all). */
  all?: boolean;
}

interface RawManifest {
  mediaType?: string;
  manifests?: { digest: string; platform?: { os: string; architecture: string; variant?: string } }[];
}

const sha256 = (bytes: string | Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const docker = (ref: string): string => (ref.includes('://') || ref.startsWith('docker:') ? ref : `docker://${ref}`);
const toBlobFile = ({ digest, size, path }: LayoutBlob): BlobFile => ({ digest, size, path });

let authFile: string | undefined;

/** Runs skopeo without the user's stored credentials. */
function skopeo(args: string[], opts: SkopeoOptions = {}): Promise<string> {
  authFile ??= join(tempDir('skopeo-auth'), 'auth.json');
  const global = [
    ...(opts.overrideArch ? ['--override-arch', opts.overrideArch] : []),
    ...(opts.overrideOs ? ['--override-os', opts.overrideOs] : []),
  ];
  return run('skopeo', [...global, ...args], { REGISTRY_AUTH_FILE: authFile });
}

const credsFlag = (flag: string, creds?: Credentials): string[] => (creds ? [flag, `${creds.username}:${creds.password}`] : []);

/** The manifest a reference resolves to, byte for byte (`skopeo inspect --raw`). */
export function skopeoInspectRaw(ref: string, opts: SkopeoOptions = {}): Promise<string> {
  return skopeo(['inspect', '--raw', '--tls-verify=false', ...credsFlag('--creds', opts.creds), docker(ref)], opts);
}

/** The digest of the manifest (or index) a reference resolves to. */
export async function skopeoInspectDigest(ref: string, opts: SkopeoOptions = {}): Promise<string> {
  return sha256(await skopeoInspectRaw(ref, opts));
}

/** The sha256 digest (`sha256:<hex>`) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Builds an image layout of random content and pushes it to registry.host with skopeo. */
export async function seedImage(registry: { host: string }, opts: SeedOptions): Promise<SeededImage> {
  const format = opts.format ?? 'oci';
  const compression = opts.compression ?? 'gzip';
  if (format === 'v2s2' && compression === 'none') throw new Error('v2s2 needs gzip layers: skopeo would recompress them');
  const layoutDir = tempDir('layout');
  const layout = await writeLayout(layoutDir, {
    tag: opts.tag,
    layerSizes: opts.layerSizes,
    platforms: opts.platforms ?? ['linux/amd64'],
    compressible: opts.compressible ?? true,
    compression,
    index: opts.platforms !== undefined,
  });
  const ref = `${registry.host}/${opts.repo}:${opts.tag}`;
  await skopeo([
    'copy', '--dest-tls-verify=false', ...credsFlag('--dest-creds', opts.creds),
    // Converting formats rewrites manifests; otherwise keep every digest as built.
    ...(format === 'v2s2' ? ['--format', 'v2s2'] : ['--preserve-digests']),
    ...(opts.platforms ? ['--all'] : []),
    `oci:${layoutDir}:${opts.tag}`, docker(ref),
  ]);
  const raw = await skopeoInspectRaw(ref, { creds: opts.creds });
  const pushed = JSON.parse(raw) as RawManifest;
  const platform = (p?: { os: string; architecture: string; variant?: string }): string =>
    p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : '';
  return {
    ref,
    repo: opts.repo,
    tag: opts.tag,
    manifestDigest: sha256(raw),
    mediaType: pushed.mediaType ?? '',
    ...(pushed.manifests ? { manifests: pushed.manifests.map((m) => ({ platform: platform(m.platform), digest: m.digest })) } : {}),
    blobs: layout.blobs.map(toBlobFile),
    layoutDir,
  };
}

/** What a `dir:` copy holds. */
export interface CopiedImage {
  dir: string;
  /** Digest of manifest.json: the index's with `all`, else the picked platform's manifest. */
  manifestDigest: string;
  /** Digests of the per-platform manifests stored beside an index (with `all`). */
  manifests: string[];
  /** Configs and layers. */
  blobs: BlobFile[];
}

/** Pulls srcRef (host/repo:tag or @digest) into destDir with `skopeo copy ... dir:`. */
export async function skopeoCopyToDir(srcRef: string, destDir: string, opts: SkopeoOptions = {}): Promise<CopiedImage> {
  await skopeo([
    'copy', '--src-tls-verify=false', ...credsFlag('--src-creds', opts.creds), ...(opts.all ? ['--all'] : []),
    docker(srcRef), `dir:${destDir}`,
  ], opts);
  const names = await readdir(destDir);
  const blobs = await Promise.all(
    names.filter((name) => /^[0-9a-f]{64}$/.test(name)).map(async (name) => {
      const path = join(destDir, name);
      return { digest: `sha256:${name}`, size: (await stat(path)).size, path };
    }),
  );
  return {
    dir: destDir,
    manifestDigest: sha256(await readFile(join(destDir, 'manifest.json'))),
    manifests: names.filter((name) => name.endsWith('.manifest.json')).map((name) => `sha256:${name.split('.')[0]}`),
    blobs,
  };
}
