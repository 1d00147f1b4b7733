import { describe, expect, it } from 'vitest';
import { rewriteLink } from './registry-api.js';

describe('rewriteLink', () => {
  it('keeps the client path and ns so the next page routes to the same upstream', () => {
    const link = '</v2/library/alpine/tags/list?last=3.17&n=1>; rel="next"';
    expect(rewriteLink(link, '/v2/docker.io/library/alpine/tags/list?n=1', null)).toBe('</v2/docker.io/library/alpine/tags/list?last=3.17&n=1>; rel="next"');
    expect(rewriteLink(link, '/v2/alpine/tags/list?n=1&ns=docker.io', 'docker.io')).toBe('</v2/alpine/tags/list?last=3.17&n=1&ns=docker.io>; rel="next"');
    expect(rewriteLink('https://cdn.example/x?last=a&n=2; rel="next"', '/v2/a/tags/list', null)).toBe('https://cdn.example/x?last=a&n=2; rel="next"');
  });
});
