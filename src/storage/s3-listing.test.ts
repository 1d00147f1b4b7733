// The S3 driver's listing against a fake S3 endpoint that answers as a store may: without a size.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listen } from '../../test/support/http.js';
import { S3Driver } from './s3.js';

/** One ListObjectsV2 page: an object with its size, and one without. */
const LISTING = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>cache</Name><Prefix>blobs/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
  <Contents><Key>blobs/sha256/aa/aa01</Key><Size>3</Size></Contents>
  <Contents><Key>blobs/sha256/bb/bb01</Key></Contents>
</ListBucketResult>`;

let server: Server;
let driver: S3Driver;

beforeAll(async () => {
  server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/xml' }).end(LISTING));
  const endpoint = await listen(server);
  driver = new S3Driver({ bucket: 'cache', endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'id', secretAccessKey: 'key' } });
});

afterAll(async () => {
  driver?.close();
  if (server) await closeServer(server);
});

describe('S3Driver.listWithSizes', () => {
  it('gives no size for an object the listing has none of, rather than 0', async () => {
    const listed: { key: string; size?: number }[] = [];
    for await (const entry of driver.listWithSizes('blobs/')) listed.push(entry);
    expect(listed).toEqual([
      { key: 'blobs/sha256/aa/aa01', size: 3 },
      { key: 'blobs/sha256/bb/bb01', size: undefined },
    ]);
  });
});
