// skopeo and podman with regmirror as their HTTPS proxy, as dockerd would use it. The upstream
// registries serve TLS with a test CA that the regmirror process trusts (NODE_EXTRA_CA_CERTS), and
// regmirror's config maps the real names (ghcr.io, docker.io with registry-1.docker.io) to them:
// the clients never resolve those names, the proxy terminates them. The clients trust only
// regmirror's CA: SSL_CERT_FILE for skopeo, the certs.d copies `regmirror config podman --proxy`
// writes for podman, whose proxy setting comes from the containers.conf drop-in it writes too.
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueServerCertificate } from '../../src/tls/ca.js';
import { initLocalCa, type LocalCaFiles } from '../../src/tls/init.js';
import { runClientCommand } from '../clients/real-client-fixture.js';
import { spawnMirror, type MirrorProcess } from '../harness/process-mirror.js';
import { freePort, isBlobGet, isManifestRequest, run, seedImage, startCountingRelay, startRegistry, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { certificateVia, startTlsFront, type TlsFront } from './support.js';

type Upstream = 'docker.io' | 'ghcr.io' | 'quay.io';

let registry: Registry;
let alpine: SeededImage;
let tool: SeededImage;
let relays: Record<Upstream, Relay>;
let fronts: TlsFront[];
let ca: LocalCaFiles;
let proxy: string;
let mirror: MirrorProcess;
let home: string;
let written: string;

beforeAll(async () => {
  registry = await startRegistry();
  [alpine, tool] = await Promise.all([
    seedImage(registry, { repo: 'library/alpine', tag: '3.17', layerSizes: [200_000], format: 'v2s2' }),
    seedImage(registry, { repo: 'team/tool', tag: '1.0', layerSizes: [100_000, 50_000], platforms: ['linux/amd64', 'linux/arm64/v8'] }),
  ]);
  relays = { 'docker.io': await startCountingRelay(registry.url), 'ghcr.io': await startCountingRelay(registry.url), 'quay.io': await startCountingRelay(registry.url) };
  // The upstreams' TLS: a test CA regmirror trusts; quay.io's certificate comes from a CA nobody trusts.
  const testCa = await createCa({ commonName: 'upstream test CA', days: 2 });
  const rogueCa = await createCa({ commonName: 'rogue CA', days: 2 });
  const leaf = await issueServerCertificate(testCa, { names: ['127.0.0.1'], days: 1 });
  const rogue = await issueServerCertificate(rogueCa, { names: ['127.0.0.1'], days: 1 });
  fronts = [await startTlsFront(relays['docker.io'].url, leaf), await startTlsFront(relays['ghcr.io'].url, leaf), await startTlsFront(relays['quay.io'].url, rogue)];
  const dir = tempDir('proxy-e2e');
  ca = (await initLocalCa({ dir: join(dir, 'tls'), names: ['127.0.0.1'] })).files;
  proxy = `127.0.0.1:${await freePort()}`;
  const configFile = join(dir, 'regmirror.yaml');
  const config = {
    version: 1,
    storage: { path: join(dir, 'data') },
    proxy: { listen: proxy, hosts: ['ghcr.io', 'quay.io', '*.docker.io'], caCert: ca.caCert, caKey: ca.caKey },
    upstreams: {
      'docker.io': { url: fronts[0]!.url, hosts: ['registry-1.docker.io', 'index.docker.io'] },
      'ghcr.io': { url: fronts[1]!.url },
      'quay.io': { url: fronts[2]!.url, retries: 0 },
    },
  };
  await writeFile(configFile, JSON.stringify(config)); // JSON is YAML
  await writeFile(join(dir, 'upstream-ca.crt'), testCa.cert);
  process.env.NODE_EXTRA_CA_CERTS = join(dir, 'upstream-ca.crt'); // read by the child at its start
  try {
    mirror = await spawnMirror(['--config', configFile]);
  } finally {
    delete process.env.NODE_EXTRA_CA_CERTS;
  }
  written = tempDir('podman-proxy-config');
  await runClientCommand(['config', 'podman', '--proxy', '--config', configFile, '--write', written]);
  home = tempDir('proxy-client-home');
  await Promise.all([writeFile(join(home, 'auth.json'), '{}'), writeFile(join(home, 'registries.conf'), '')]);
});

afterAll(async () => {
  mirror?.child.kill('SIGTERM');
  await Promise.all((fronts ?? []).map((f) => f.stop()));
  await Promise.all(Object.values(relays ?? {}).map((r) => r.stop()));
  await registry?.stop();
});

/** What a client needs besides its proxy: no user credentials, no system registries.conf. */
const clientEnv = (): NodeJS.ProcessEnv => ({ HOME: home, REGISTRY_AUTH_FILE: join(home, 'auth.json'), CONTAINERS_REGISTRIES_CONF: join(home, 'registries.conf'), XDG_RUNTIME_DIR: home });

/** skopeo through the proxy, trusting regmirror's CA alone. */
const skopeo = (args: string[]): Promise<string> =>
  run('skopeo', args, { ...clientEnv(), HTTPS_PROXY: `http://${proxy}`, NO_PROXY: '', SSL_CERT_FILE: ca.caCert, SSL_CERT_DIR: home });

/** podman with only the generated drop-in telling it about the proxy, into a fresh store. */
async function podmanPull(ref: string, certDir: string): Promise<string> {
  const store = tempDir('podman-store');
  const podman = ['--root', join(store, 'root'), '--runroot', join(store, 'run'), '--tmpdir', join(store, 'tmp'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
  // podman takes engine.env only for variables its environment lacks (undefined: left out of it).
  const env = { ...clientEnv(), CONTAINERS_CONF: join(written, 'containers.conf.d', 'regmirror-proxy.conf'), HTTPS_PROXY: undefined, https_proxy: undefined };
  await run('podman', [...podman, 'pull', '--quiet', '--cert-dir', certDir, ref], env);
  return run('podman', [...podman, 'images', '--format', '{{.Repository}}:{{.Tag}}'], env);
}

const upstreamRequests = (name: Upstream): number => relays[name].count((r) => isBlobGet(r) || isManifestRequest(r));

describe('clients with regmirror as HTTPS proxy', () => {
  it('skopeo pulls ghcr.io through it; the second pull comes from the cache', async () => {
    const dest = tempDir('skopeo-pull');
    await skopeo(['--override-arch', 'amd64', 'copy', 'docker://ghcr.io/team/tool:1.0', `dir:${dest}`]);
    const amd64 = (await readdir(dest)).filter((name) => /^[0-9a-f]{64}$/.test(name));
    expect(amd64).toHaveLength(3); // config and two layers
    for (const name of amd64) {
      const seeded = tool.blobs.find((b) => b.digest === `sha256:${name}`)!;
      expect(readFileSync(join(dest, name)).equals(readFileSync(seeded.path))).toBe(true);
    }
    expect(relays['ghcr.io'].count(isBlobGet)).toBe(3);
    relays['ghcr.io'].reset();
    await skopeo(['--override-arch', 'amd64', 'copy', 'docker://ghcr.io/team/tool:1.0', `dir:${tempDir('skopeo-pull')}`]);
    expect(upstreamRequests('ghcr.io')).toBe(0);
  });

  it('podman pulls docker.io (registry-1.docker.io) with the files config podman --proxy writes; again from the cache', async () => {
    const certDir = join(written, 'certs.d', 'registry-1.docker.io');
    expect(await podmanPull('docker.io/library/alpine:3.17', certDir)).toContain('docker.io/library/alpine:3.17');
    expect(relays['docker.io'].count(isBlobGet)).toBe(alpine.blobs.length);
    relays['docker.io'].reset();
    expect(await podmanPull('docker.io/library/alpine:3.17', certDir)).toContain('docker.io/library/alpine:3.17');
    expect(upstreamRequests('docker.io')).toBe(0);
  });

  it('presents regmirror\'s certificate for the registry hosts', async () => {
    const served = await certificateVia(proxy, 'ghcr.io:443', readFileSync(ca.caCert, 'utf8'));
    expect(served.authorized).toBe(true);
    expect(served.cert.subjectAltName).toBe('DNS:ghcr.io');
  });

  it('refuses a host outside the list', async () => {
    await expect(skopeo(['inspect', '--raw', 'docker://example.org/team/tool:1.0'])).rejects.toThrow(/Forbidden/);
  });

  it('keeps verifying upstream certificates: an untrusted one fails the pull', async () => {
    // regmirror answers 502 UPSTREAM_UNAVAILABLE ("upstream quay.io: TLS certificate rejected"): no request reached quay.io.
    await expect(skopeo(['inspect', '--raw', 'docker://quay.io/team/tool:1.0'])).rejects.toThrow(/502 Bad Gateway/);
    expect(relays['quay.io'].count()).toBe(0);
  });
});
