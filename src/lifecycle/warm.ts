/**
 * `regmirror warm`: pulls images through a mirror's registry API so the next pull is warm. Each
 * image's manifest is fetched by tag (with `?ns=<registry>` when the reference names one), then the
 * manifests of the chosen platforms, then every config and layer; blobs the mirror already holds
 * (a HEAD says `X-Regmirror-Cache: hit`) are not downloaded again. Blobs shared by several images
 * are fetched once. Failures are per image: the others go on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { parseDigest } from '../oci/digest.js';
import { isValidRepositoryName, isValidTag, looksLikeRegistryHost } from '../oci/reference.js';

/** An image reference: `[registry/]repository[:tag][@digest]`. */
export interface ImageRef {
  /** As given. */
  text: string;
  /** The registry host named, if any (then sent as `?ns=`). */
  registry: string | undefined;
  repository: string;
  /** Tag or digest. */
  reference: string;
}

/** A platform, e.g. `linux/arm64/v8`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

/** Progress callbacks, per image (named by its reference text). */
export interface WarmReporter {
  /** The image's manifests are resolved: `bytes` of `blobs` blobs are to be fetched. */
  planned(image: string, bytes: number, blobs: number): void;
  /** `bytes` more of the image arrived (or were found cached). */
  progress(image: string, bytes: number): void;
  finished(image: string): void;
  failed(image: string, error: Error): void;
}

/** How to warm. */
export interface WarmOptions {
  /** The mirror's registry listener, e.g. `http://127.0.0.1:5000`. */
  mirrorUrl: string;
  /** Platforms to pick from multi-platform images, or every one. */
  platforms: Platform[] | 'all';
  /** Blob downloads at once (default 4). */
  concurrency?: number | undefined;
  /** Extra request headers (e.g. authorization for a mirror that asks for it). */
  headers?: Record<string, string> | undefined;
  reporter: WarmReporter;
}

/** The outcome for one image. */
export interface WarmResult {
  image: string;
  error?: Error | undefined;
}

interface Blob {
  digest: string;
  size: number;
}

interface ManifestDocument {
  manifests?: { digest?: string; platform?: Platform }[];
  config?: Blob;
  layers?: Blob[];
}

/** How long a downloaded blob may take to be committed by the mirror (verification, fsync, rename or upload). */
const COMMIT_WAIT_MS = 60_000;

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Parses `[registry/]repository[:tag][@digest]`; throws with a clear message when malformed. */
export function parseImageRef(text: string): ImageRef {
  const [name = '', digest, extra] = text.trim().split('@');
  const slash = name.indexOf('/');
  const registry = slash > 0 && looksLikeRegistryHost(name.slice(0, slash)) ? name.slice(0, slash) : undefined;
  let path = registry === undefined ? name : name.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) [path, tag] = [path.slice(0, colon), path.slice(colon + 1)];
  const valid = extra === undefined && isValidRepositoryName(path) && (tag === undefined || isValidTag(tag)) && (digest === undefined || parseDigest(digest) !== undefined);
  if (!valid) throw new Error(`"${text}" is not an image reference (e.g. alpine:3.20, ghcr.io/org/app:v1, quay.io/org/app@sha256:...)`);
  return { text, registry, repository: path, reference: digest ?? tag ?? 'latest' };
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.trim().split('/');
  if (!os || !architecture || extra !== undefined) throw new Error(`"${text}" is not a platform (e.g. linux/amd64, linux/arm64/v8)`);
  return { os, architecture, variant };
}

/** Writes a platform as `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Warms every image; resolves with one result per image, in order. */
export async function warmImages(images: ImageRef[], options: WarmOptions): Promise<WarmResult[]> {
  const concurrency = options.concurrency ?? 4;
  const dispatcher = new Agent({ connections: concurrency + 2 });
  const client = new MirrorClient(options.mirrorUrl, options.headers ?? {}, dispatcher);
  try {
    const plans = await Promise.all(images.map(async (image) => {
      try {
        const blobs = await resolveBlobs(client, image, options.platforms);
        options.reporter.planned(image.text, blobs.reduce((sum, b) => sum + b.size, 0), blobs.length);
        return { image, blobs };
      } catch (err) {
        return { image, error: err as Error };
      }
    }));
    const fetches = new Map<string, Promise<void>>();
    const queue: (() => Promise<void>)[] = [];
    const results = plans.map(async (plan): Promise<WarmResult> => {
      if (plan.error) {
        options.reporter.failed(plan.image.text, plan.error);
        return { image: plan.image.text, error: plan.error };
      }
      const { image, blobs } = plan;
      const waits = blobs.map((blob) => {
        const shared = fetches.get(blob.digest);
        if (shared) return shared.then(() => options.reporter.progress(image.text, blob.size));
        const fetched = new Promise<void>((resolve, reject) => {
          queue.push(() => client.fetchBlob(image, blob, (n) => options.reporter.progress(image.text, n)).then(resolve, reject));
        });
        fetches.set(blob.digest, fetched);
        return fetched;
      });
      const failure = (await Promise.allSettled(waits)).find((r) => r.status === 'rejected');
      if (failure) {
        const error = failure.reason as Error;
        options.reporter.failed(image.text, error);
        return { image: image.text, error };
      }
      options.reporter.finished(image.text);
      return { image: image.text };
    });
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let task = queue.shift(); task; task = queue.shift()) await task().catch(() => undefined);
    }));
    return await Promise.all(results);
  } finally {
    await dispatcher.close();
  }
}

/** The configs and layers of the image's chosen platforms, each once. */
async function resolveBlobs(client: MirrorClient, image: ImageRef, platforms: Platform[] | 'all'): Promise<Blob[]> {
  const root = await client.manifest(image, image.reference);
  const documents = [root];
  if (root.manifests) {
    const entries = root.manifests.filter((m): m is { digest: string; platform?: Platform } => typeof m.digest === 'string');
    const chosen = platforms === 'all' ? entries : platforms.map((wanted) => {
      const match = entries.find((m) => m.platform && matches(m.platform, wanted));
      if (!match) {
        const offered = entries.flatMap((m) => (m.platform ? [formatPlatform(m.platform)] : [])).join(', ');
        throw new Error(`no ${formatPlatform(wanted)} image (it has ${offered || 'no platforms'})`);
      }
      return match;
    });
    for (const entry of chosen) documents.push(await client.manifest(image, entry.digest));
  }
  const blobs = new Map<string, Blob>();
  for (const doc of documents) {
    for (const blob of [doc.config, ...(doc.layers ?? [])]) {
      if (blob && typeof blob.digest === 'string' && Number.isSafeInteger(blob.size)) blobs.set(blob.digest, { digest: blob.digest, size: blob.size });
    }
  }
  return [...blobs.values()];
}

function matches(offered: Platform, wanted: Platform): boolean {
  return offered.os === wanted.os && offered.architecture === wanted.architecture && (wanted.variant === undefined || offered.variant === wanted.variant);
}

/** The registry API of the mirror, as warm uses it. */
class MirrorClient {
  constructor(
    private readonly base: string,
    private readonly headers: Record<string, string>,
    private readonly dispatcher: Agent,
  ) {}

  async manifest(image: ImageRef, reference: string): Promise<ManifestDocument> {
    const res = await this.send(image, `manifests/${reference}`, 'GET', { accept: ACCEPT });
    const body = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`manifest ${reference}: ${describeFailure(res.statusCode, body)}`);
    try {
      return JSON.parse(body) as ManifestDocument;
    } catch {
      throw new Error(`manifest ${reference}: not JSON`);
    }
  }

  /** Fetches a blob (unless the mirror holds it already), reporting bytes as they arrive. */
  async fetchBlob(image: ImageRef, blob: Blob, onBytes: (n: number) => void): Promise<void> {
    const head = await this.send(image, `blobs/${blob.digest}`, 'HEAD');
    await head.body.dump();
    if (head.statusCode === 200 && head.headers['x-regmirror-cache'] === 'hit') {
      onBytes(blob.size);
      return;
    }
    const res = await this.send(image, `blobs/${blob.digest}`, 'GET');
    if (res.statusCode !== 200) throw new Error(`blob ${blob.digest}: ${describeFailure(res.statusCode, await res.body.text())}`);
    let received = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      onBytes(chunk.length);
    }
    if (received !== blob.size) throw new Error(`blob ${blob.digest}: got ${received} of ${blob.size} bytes`);
    await this.untilKept(image, blob);
  }

  /**
   * Waits until the mirror says the blob is stored (it commits after the last byte is sent), so
   * a warmed image is in the cache when warm says so. Mirrors that do not say are not waited for.
   */
  private async untilKept(image: ImageRef, blob: Blob): Promise<void> {
    const deadline = Date.now() + COMMIT_WAIT_MS;
    for (;;) {
      const head = await this.send(image, `blobs/${blob.digest}`, 'HEAD');
      await head.body.dump();
      const outcome = head.headers['x-regmirror-cache'];
      if (outcome === undefined || outcome === 'hit') return;
      if (Date.now() > deadline) throw new Error(`blob ${blob.digest}: downloaded, but the mirror did not keep it (is its disk full?)`);
      await sleep(100);
    }
  }

  private send(image: ImageRef, path: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}): ReturnType<typeof request> {
    const ns = image.registry === undefined ? '' : `?ns=${encodeURIComponent(image.registry)}`;
    const url = `${this.base.replace(/\/$/, '')}/v2/${image.repository}/${path}${ns}`;
    return request(url, { method, headers: { ...this.headers, ...headers }, dispatcher: this.dispatcher }).catch((err: unknown) => {
      throw new Error(`cannot reach the mirror at ${this.base}: ${(err as Error).message}`);
    });
  }
}

/** A registry error answer in one line: `404 MANIFEST_UNKNOWN: manifest unknown`. */
function describeFailure(status: number, body: string): string {
  try {
    const first = (JSON.parse(body) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (first?.code) return `${status} ${first.code}${first.message ? `: ${first.message}` : ''}`;
  } catch {
    // not an OCI error body
  }
  return `HTTP ${status}`;
}
