import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../upstream/errors.js';
import { errorForFailure, isUnavailable } from './upstream-errors.js';

const failure = (kind: UpstreamError['failure']): UpstreamError => new UpstreamError('quay.io', kind, `what quay.io really said (${kind})`);
const tokenServiceAnswered = (status: number, retryAfter?: string): UpstreamError =>
  new UpstreamError('quay.io', 'unavailable', `token service answered ${status}`, { answer: { status, retryAfter } });

describe('a failure of the upstream client', () => {
  it('is answered with the upstream\'s name and a category, the raw error kept as the cause', () => {
    const rejected = failure('tls');
    const answer = errorForFailure(rejected, 'quay.io');
    expect([answer.status, answer.code, answer.message, answer.cause]).toEqual([502, 'UPSTREAM_UNAVAILABLE', 'upstream quay.io: TLS certificate rejected', rejected]);
    expect(errorForFailure(failure('redirect-refused'), 'quay.io').message).toBe('upstream quay.io: redirect refused');
  });

  it('tells a token service that is down from one that is busy, passing its Retry-After on', () => {
    const down = errorForFailure(tokenServiceAnswered(503), 'quay.io');
    expect([down.status, down.code, down.message]).toEqual([502, 'UPSTREAM_UNAVAILABLE', 'upstream quay.io: token service unavailable']);
    const busy = errorForFailure(tokenServiceAnswered(429, '30'), 'quay.io');
    expect([busy.status, busy.code, busy.message, busy.headers]).toEqual([429, 'TOOMANYREQUESTS', 'upstream quay.io: rate limited', { 'retry-after': '30' }]);
  });

  it('lets stale content be served when it is an outage (a rejected certificate is one), never for refused credentials', () => {
    const unavailable = (err: UpstreamError): boolean => isUnavailable(errorForFailure(err, 'quay.io'));
    const stale = (['unreachable', 'timeout', 'tls', 'redirect-refused', 'protocol', 'auth'] as const).filter((kind) => unavailable(failure(kind)));
    expect(stale).toEqual(['unreachable', 'timeout', 'tls', 'redirect-refused', 'protocol']);
    expect([unavailable(tokenServiceAnswered(503)), unavailable(tokenServiceAnswered(429))]).toEqual([true, true]);
  });
});
