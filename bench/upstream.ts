/** The upstream: a real Distribution registry seeded with the bench's images through skopeo. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { seedImage, startRegistry, type BlobFile, type Registry, type SeededImage } from '../test/support/index.js';
import type { BenchSettings } from './settings.js';

/** A seeded image and the paths the workloads ask for. */
export interface BenchImage {
  image: SeededImage;
  /** Its largest layer. */
  layer: BlobFile;
  /** `/v2/<repo>/blobs/<layer digest>` */
  blobPath: string;
  /** `/v2/<repo>/manifests/<tag>` */
  manifestPath: string;
  /** The manifest document the tag resolves to, as pushed. */
  manifestFile: string;
  /** `repo:tag`, to put after a registry host. */
  name: string;
}

/** The running upstream and its images. */
export interface BenchUpstream {
  registry: Registry;
  /** One small layer: warm blob and manifest load (workloads 2, 3). */
  small: BenchImage;
  /** Several layers: a whole-image cold pull (workload 4). */
  multi: BenchImage;
  /** One middle-sized layer: workload 5 at a second size. */
  mid: BenchImage;
  /** One big incompressible layer (workloads 1, 4, 5). */
  big: BenchImage;
  stop(): Promise<void>;
}

/** Pushes an image of `layerSizes` to `registry` as `repo:latest` (incompressible: random bytes, uncompressed). */
export async function seed(registry: Registry, repo: string, layerSizes: number[], incompressible: boolean): Promise<BenchImage> {
  const image = await seedImage(registry, {
    repo,
    tag: 'latest',
    layerSizes,
    // Random bytes in an uncompressed tar: the blob is as big as asked and nothing can shrink it.
    ...(incompressible ? { compressible: false, compression: 'none' } : {}),
  });
  const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  return {
    image,
    layer,
    blobPath: `/v2/${repo}/blobs/${layer.digest}`,
    manifestPath: `/v2/${repo}/manifests/latest`,
    manifestFile: join(image.layoutDir, 'blobs', 'sha256', image.manifestDigest.slice('sha256:'.length)),
    name: `${repo}:latest`,
  };
}

/** Starts the upstream registry and pushes the four images. */
export async function startUpstream(settings: BenchSettings): Promise<BenchUpstream> {
  const registry = await startRegistry();
  const small = await seed(registry, 'library/small', [settings.smallBlob], true);
  const multi = await seed(registry, 'library/multi', settings.multiLayers, false);
  const mid = await seed(registry, 'library/mid', [settings.midBlob], true);
  const big = await seed(registry, 'library/big', [settings.bigBlob], true);
  return {
    registry, small, multi, mid, big,
    async stop() {
      await registry.stop();
      await Promise.all([small, multi, mid, big].map((i) => rm(i.image.layoutDir, { recursive: true, force: true })));
    },
  };
}
