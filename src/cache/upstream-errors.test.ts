import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../upstream/errors.js';
import { errorForFailure, isUnavailable } from './upstream-errors.js';

const failure = (kind: UpstreamError['failure']): UpstreamError => new UpstreamError('quay.io', kind, `what quay.io really said (${kind})`);

describe('a failure of the upstream client', () => {
  it('is answered with the upstream\'s name and a category, the raw error kept as the cause', () => {
    const rejected = failure('tls');
    const answer = errorForFailure(rejected, 'quay.io');
    expect([answer.status, answer.code, answer.message, answer.cause]).toEqual([502, 'UPSTREAM_UNAVAILABLE', 'upstream quay.io: TLS certificate rejected', rejected]);
  });

  it('lets stale content be served when it is an outage (a rejected certificate is one), never for refused credentials', () => {
    const stale = (['unreachable', 'timeout', 'tls', 'protocol', 'auth'] as const).filter((kind) => isUnavailable(failure(kind)));
    expect(stale).toEqual(['unreachable', 'timeout', 'tls', 'protocol']);
  });
});
