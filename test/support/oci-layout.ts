// Writes OCI image layouts of random content: real tar layers, valid configs and manifests.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';

/** A blob in a layout. */
export interface LayoutBlob {
  digest: string;
  size: number;
  path: string;
  mediaType: string;
}

/** An OCI descriptor as manifests and indexes hold it. */
interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** What a layout is built from. */
export interface LayoutSpec {
  tag: string;
  /** Bytes of random content in each layer (one file per layer). */
  layerSizes: number[];
  /** One platform: a manifest; several: an index of one manifest each (own layers). */
  platforms: string[];
  /** Default true: hex text that gzips to about half; false: random bytes. */
  compressible: boolean;
  /** 'gzip' (level 1, or 0 for random bytes) or 'none' (an uncompressed tar layer). */
  compression: 'gzip' | 'none';
  /** Wraps the manifests in an index even for one platform. */
  index: boolean;
}

/** What a layout holds: the top manifest (or index) and every blob, manifests excluded. */
export interface Layout {
  dir: string;
  top: Descriptor;
  manifests: { platform: string; descriptor: Descriptor }[];
  blobs: LayoutBlob[];
}

const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  tar: 'application/vnd.oci.image.layer.v1.tar',
  tarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

const CHUNK = 1 << 20;
const randomBytesAsync = promisify(randomBytes);

/** A ustar header for a regular file or directory owned by root. */
function tarHeader(name: string, size: number, type: '0' | '5'): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => void header.write(value, offset, length, 'ascii');
  const octal = (offset: number, length: number, value: number): void => field(offset, length, value.toString(8).padStart(length - 1, '0'));
  field(0, 100, name);
  octal(100, 8, type === '5' ? 0o755 : 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000);
  field(148, 8, ' '.repeat(8));
  field(156, 1, type);
  field(257, 8, 'ustar\u000000');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\u0000 `);
  return header;
}

/** A tar stream of one directory and one file of `size` random bytes. */
async function* tarLayer(fileName: string, size: number, compressible: boolean, diffId: Hash): AsyncGenerator<Buffer> {
  const emit = (chunk: Buffer): Buffer => (diffId.update(chunk), chunk);
  yield emit(tarHeader('data/', 0, '5'));
  yield emit(tarHeader(`data/${fileName}`, size, '0'));
  for (let left = size; left > 0; left -= CHUNK) {
    const length = Math.min(left, CHUNK);
    const random = await randomBytesAsync(compressible ? Math.ceil(length / 2) : length);
    yield emit(compressible ? Buffer.from(random.toString('hex').slice(0, length)) : random);
  }
  yield emit(Buffer.alloc((512 - (size % 512)) % 512 + 1024));
}

/** Passes bytes through while hashing and counting them. */
function measure(hash: Hash, total: { size: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      total.size += chunk.length;
      callback(null, chunk);
    },
  });
}

const blobPath = (dir: string, digest: string): string => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));

/** Stores JSON as a blob; returns its descriptor. */
async function writeJsonBlob(dir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(blobPath(dir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Streams one layer to disk; returns it and its diff_id. */
async function writeLayer(dir: string, fileName: string, size: number, spec: LayoutSpec): Promise<{ blob: LayoutBlob; diffId: string }> {
  const diffId = createHash('sha256');
  const digest = createHash('sha256');
  const total = { size: 0 };
  const tmp = join(dir, `${fileName}.tmp`);
  const tar = Readable.from(tarLayer(fileName, size, spec.compressible, diffId));
  if (spec.compression === 'gzip') {
    // Random bytes do not compress: level 0 (stored blocks) is valid gzip at disk speed.
    const level = spec.compressible ? 1 : 0;
    await pipeline(tar, createGzip({ level, chunkSize: CHUNK }), measure(digest, total), createWriteStream(tmp));
  } else {
    await pipeline(tar, measure(digest, total), createWriteStream(tmp));
  }
  const blob: LayoutBlob = {
    digest: `sha256:${digest.digest('hex')}`,
    size: total.size,
    path: '',
    mediaType: spec.compression === 'gzip' ? MEDIA.tarGzip : MEDIA.tar,
  };
  blob.path = blobPath(dir, blob.digest);
  await rename(tmp, blob.path);
  return { blob, diffId: `sha256:${diffId.digest('hex')}` };
}

/** Parses 'os/arch[/variant]'. */
function parsePlatform(text: string): Platform {
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture) throw new Error(`bad platform ${text}`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Writes the layers, config and manifest of one platform. */
async function writeImage(dir: string, platformText: string, spec: LayoutSpec): Promise<{ descriptor: Descriptor; blobs: LayoutBlob[] }> {
  const platform = parsePlatform(platformText);
  const layers = [];
  for (const [i, size] of spec.layerSizes.entries()) {
    layers.push(await writeLayer(dir, `${platformText.replaceAll('/', '-')}-layer${i}.bin`, size, spec));
  }
  const config = await writeJsonBlob(dir, MEDIA.config, {
    created: '2024-01-01T00:00:00Z',
    ...platform,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
  });
  const descriptor = await writeJsonBlob(dir, MEDIA.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config,
    layers: layers.map(({ blob }) => ({ mediaType: blob.mediaType, digest: blob.digest, size: blob.size })),
  });
  const configBlob = { ...config, path: blobPath(dir, config.digest) };
  return { descriptor: { ...descriptor, platform }, blobs: [configBlob, ...layers.map((layer) => layer.blob)] };
}

/** Writes an OCI image layout into `dir` (which must exist). */
export async function writeLayout(dir: string, spec: LayoutSpec): Promise<Layout> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests: Layout['manifests'] = [];
  const blobs: LayoutBlob[] = [];
  for (const platform of spec.platforms) {
    const image = await writeImage(dir, platform, spec);
    manifests.push({ platform, descriptor: image.descriptor });
    blobs.push(...image.blobs);
  }
  const top = spec.index
    ? await writeJsonBlob(dir, MEDIA.index, { schemaVersion: 2, mediaType: MEDIA.index, manifests: manifests.map((m) => m.descriptor) })
    : manifests[0]!.descriptor;
  const ref = { ...top, annotations: { 'org.opencontainers.image.ref.name': spec.tag } };
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [ref] }));
  return { dir, top, manifests, blobs };
}
