import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from './client.js';

const UPSTREAM_URL = 'https://registry.example';
const BLOB_PATH = '/v2/team/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000';
const agents: MockAgent[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

/** A client whose blob request is answered by a redirect to `location` (every time); `failures` gets what it observes. */
function redirectingTo(location: string, failures: string[]): UpstreamClient {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  agent.get(UPSTREAM_URL).intercept({ path: BLOB_PATH }).reply(307, '', { headers: { location } }).persist();
  return new UpstreamClient({ name: 'test', url: UPSTREAM_URL, timeouts: { connect: 1_000, headers: 1_000, idle: 1_000 }, retries: 0, dispatcher: agent, onFailure: (f) => failures.push(f) });
}

describe('redirects the mirror does not follow', () => {
  it.each([
    ['to an invalid URL', 'http://[::1', 'redirect to an invalid URL'],
    ['to a non-HTTP URL', 'file:///etc/passwd', 'redirect to a non-HTTP URL'],
    ['in a loop', BLOB_PATH, 'too many redirects'],
  ])('%s fail as a protocol error, observed once', async (_, location, detail) => {
    const failures: string[] = [];
    await expect(redirectingTo(location, failures).request({ method: 'GET', path: BLOB_PATH })).rejects.toMatchObject({ name: 'UpstreamError', failure: 'protocol', message: expect.stringContaining(detail) });
    expect(failures).toEqual(['protocol']);
  });
});
