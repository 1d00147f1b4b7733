import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { resolveS3Credentials } from './s3-credentials.js';

describe('resolveS3Credentials', () => {
  it('reads literal values, environment variables and files; none at all means the SDK chain', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'regmirror-s3-')), 'secret');
    writeFileSync(file, 'from-file\n');
    expect(resolveS3Credentials({ accessKeyId: 'id', secretAccessKey: 'key' })).toEqual({ accessKeyId: 'id', secretAccessKey: 'key' });
    expect(resolveS3Credentials({ accessKeyIdEnv: 'ID', secretAccessKeyEnv: 'KEY' }, { ID: 'a', KEY: 'b' })).toEqual({ accessKeyId: 'a', secretAccessKey: 'b' });
    expect(resolveS3Credentials({ accessKeyId: 'id', secretAccessKeyFile: file })).toEqual({ accessKeyId: 'id', secretAccessKey: 'from-file' });
    expect(resolveS3Credentials(undefined)).toBeUndefined();
    expect(resolveS3Credentials({})).toBeUndefined();
  });

  it('names the problem: a missing variable, an unreadable file, half a pair', () => {
    expect(() => resolveS3Credentials({ accessKeyIdEnv: 'NOPE', secretAccessKey: 'x' }, {})).toThrow('config error at storage.credentials: environment variable NOPE is not set');
    expect(() => resolveS3Credentials({ accessKeyId: 'id', secretAccessKeyFile: '/nonexistent/secret' })).toThrow('secretAccessKeyFile');
    expect(() => resolveS3Credentials({ accessKeyId: 'id' })).toThrow('both an access key id and a secret access key are needed');
  });
});

describe('storage settings', () => {
  const base = { version: 1, upstreams: { 'ghcr.io': { url: 'https://ghcr.io' } } };

  it('needs a bucket for the s3 driver, and refuses one for the filesystem driver', () => {
    expect(() => parseConfig({ ...base, storage: { driver: 's3' } })).toThrow('config error at storage.bucket: the s3 driver needs a bucket');
    expect(() => parseConfig({ ...base, storage: { bucket: 'cache' } })).toThrow('config error at storage.bucket: only the s3 driver uses a bucket');
    const config = parseConfig({ ...base, storage: { driver: 's3', bucket: 'cache', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true } });
    expect(config.storage).toMatchObject({ driver: 's3', bucket: 'cache', prefix: '', region: 'us-east-1', forcePathStyle: true, redirect: false });
  });
});
