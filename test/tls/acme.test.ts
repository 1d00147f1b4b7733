// ACME against Debian's pebble on loopback, with real HTTP-01 validation: pebble fetches the
// challenge from regmirror's responder on localhost. A listener obtains its certificate at start,
// serves HTTPS with it, keeps it across a restart, and renews it once it is within renewBefore.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import type { ConfigInput } from '../../src/config/schema.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { freePort, tempDir } from '../support/index.js';
import { startPebble, type Pebble } from './pebble.js';
import { collectLog, eventually, servedCertificate } from './served.js';

type AcmeInput = NonNullable<NonNullable<NonNullable<ConfigInput['listeners']>[number]['tls']>['acme']>;

let pebble: Pebble;
const mirrors: TestMirror[] = [];
const acmeDir = tempDir('acme-state');

/** A mirror whose listener gets its certificate from pebble, for `localhost`. */
async function acmeMirror(settings: Partial<AcmeInput> = {}, logStream?: NodeJS.WritableStream): Promise<TestMirror> {
  const mirror = await startTestMirror({
    ...(logStream ? { logStream } : {}),
    upstreams: { 'quay.io': { url: 'http://127.0.0.1:1' } },
    tls: {
      acme: {
        domains: ['localhost'],
        email: 'ops@example.com',
        directory: pebble.directory,
        directoryCA: pebble.directoryCA,
        path: acmeDir,
        challengeAddress: `127.0.0.1:${pebble.challengePort}`,
        pollInterval: '100ms',
        selfCheck: false, // it would fetch http://localhost:80/, not pebble's challenge port
        ...settings,
      },
    },
  });
  mirrors.push(mirror);
  return mirror;
}

beforeAll(async () => {
  pebble = await startPebble();
});

afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await pebble?.stop();
});

describe('ACME certificates (pebble)', () => {
  let firstSerial: string;

  it('obtains a certificate over HTTP-01 at start and serves HTTPS with it', async () => {
    const mirror = await acmeMirror();
    const root = await pebble.root();
    const served = await servedCertificate(mirror.host, { ca: root, servername: 'localhost' });
    expect(served.error).toBeUndefined();
    expect(served.authorized).toBe(true);
    expect(served.cert.subjectAltName).toBe('DNS:localhost');
    expect(pebble.output()).toMatch(/Attempting to validate w\/ HTTP: http:\/\/localhost:\d+\/\.well-known\/acme-challenge\//);
    firstSerial = served.cert.serialNumber;

    const dispatcher = new Agent({ connect: { ca: root, servername: 'localhost' } });
    const res = await request(`${mirror.url}/v2/`, { dispatcher });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    await dispatcher.close();
    // Pebble's directory is trusted by the ACME client only, not by the process.
    await expect(request(pebble.directory)).rejects.toThrow(/self-signed|unable to verify|certificate/);
    await mirror.close();
  });

  it('serves the stored certificate after a restart without ordering again', async () => {
    const orders = (pebble.output().match(/Issued certificate serial/g) ?? []).length;
    const mirror = await acmeMirror();
    expect((await servedCertificate(mirror.host)).cert.serialNumber).toBe(firstSerial);
    expect((pebble.output().match(/Issued certificate serial/g) ?? []).length).toBe(orders);
    await mirror.close();
  });

  it('renews a certificate within renewBefore of expiry, and serves the new one without a restart', async () => {
    // Pebble's certificates are valid for years: a renewal window of a century makes this one due.
    const mirror = await acmeMirror({ renewBefore: '36500d', checkInterval: '300ms' });
    const started = (await servedCertificate(mirror.host)).cert.serialNumber;
    expect(started).toBe(firstSerial); // the stored one is served at once, then renewed
    const root = await pebble.root();
    const renewed = await eventually(async () => {
      const served = await servedCertificate(mirror.host, { ca: root, servername: 'localhost' });
      return served.cert.serialNumber !== firstSerial ? served : undefined;
    }, 15_000, 'the renewed certificate');
    expect(renewed.authorized).toBe(true);
    expect(renewed.cert.subjectAltName).toBe('DNS:localhost');
    await mirror.close();
  });

  it('fails startup with the CA\'s reason when no certificate can be obtained', async () => {
    // The responder listens where pebble does not look: validation is refused.
    await expect(acmeMirror({ challengeAddress: `127.0.0.1:${await freePort()}`, path: tempDir('acme-state') })).rejects.toThrow(
      /config error at listeners\[0\]\.tls: cannot obtain a certificate for localhost from https:\/\/127\.0\.0\.1:\d+\/dir: .*connection refused/,
    );
  });

  it('keeps serving the current certificate when a renewal fails, and logs it', async () => {
    const served = (await servedCertificate((await acmeMirror()).host)).cert.serialNumber;
    // Something else holds the challenge port: the responder cannot open, the renewal fails.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(pebble.challengePort, '127.0.0.1', resolve));
    const log = collectLog();
    try {
      const mirror = await acmeMirror({ renewBefore: '36500d', checkInterval: '200ms' }, log.stream);
      const [failure] = await eventually(async () => {
        const failures = log.entries('acme: renewal failed');
        return failures.length ? failures : undefined;
      }, 5_000, 'the failed renewal in the log');
      expect((await servedCertificate(mirror.host)).cert.serialNumber).toBe(served);
      expect(failure!.level).toBe(50);
      expect(failure!.err).toMatch(/EADDRINUSE/);
      await mirror.close();
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
