import { describe, expect, it } from 'vitest';
import { isAcceptable, MEDIA_TYPE, parseAccept } from './media-types.js';

describe('parseAccept', () => {
  it('lists the media types without parameters, lower-cased, from one header or several', () => {
    expect(parseAccept(undefined)).toEqual([]);
    expect(parseAccept(`${MEDIA_TYPE.ociIndex}; q=0.9, APPLICATION/JSON ,, `)).toEqual([MEDIA_TYPE.ociIndex, 'application/json']);
    expect(parseAccept([MEDIA_TYPE.dockerManifest, `${MEDIA_TYPE.ociManifest};q=0.5`])).toEqual([MEDIA_TYPE.dockerManifest, MEDIA_TYPE.ociManifest]);
  });

  it('answers a header it parsed before the same, and stays right past what it keeps', () => {
    const header = `${MEDIA_TYPE.ociManifest}, ${MEDIA_TYPE.dockerManifest}`;
    const first = parseAccept(header);
    expect(parseAccept(header)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true); // shared between requests: nobody may change it
    for (let i = 0; i < 200; i++) expect(parseAccept(`application/x-${i}+json`)).toEqual([`application/x-${i}+json`]);
    expect(parseAccept(header)).toEqual([MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifest]);
    expect(isAcceptable(MEDIA_TYPE.ociIndex, parseAccept(header))).toBe(false);
  });
});
