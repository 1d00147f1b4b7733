import { describe, expect, it } from 'vitest';
import { TopImages } from './top-images.js';

describe('TopImages', () => {
  it('counts pulls exactly while the distinct images fit', () => {
    const top = new TopImages(10);
    for (let i = 0; i < 5; i++) top.add('docker.io', 'library/alpine');
    for (let i = 0; i < 3; i++) top.add('ghcr.io', 'org/tool');
    top.add('docker.io', 'library/busybox');
    expect(top.top(2)).toEqual([
      { upstream: 'docker.io', repository: 'library/alpine', pulls: 5, error: 0 },
      { upstream: 'ghcr.io', repository: 'org/tool', pulls: 3, error: 0 },
    ]);
  });

  it('keeps memory bounded and the heavy hitters on top under a long tail', () => {
    const top = new TopImages(20);
    for (let round = 0; round < 200; round++) {
      top.add('docker.io', 'library/alpine');
      if (round % 2 === 0) top.add('docker.io', 'library/nginx');
      for (let j = 0; j < 5; j++) top.add('quay.io', `tail/image-${round}-${j}`);
    }
    expect(top.size).toBe(20);
    const [first, second] = top.top(2);
    expect(first).toMatchObject({ repository: 'library/alpine' });
    expect(second).toMatchObject({ repository: 'library/nginx' });
    // Space-Saving never under-counts, and over-counts by at most `error`.
    expect(first!.pulls - first!.error).toBeLessThanOrEqual(200);
    expect(first!.pulls).toBeGreaterThanOrEqual(200);
    expect(second!.pulls).toBeGreaterThanOrEqual(100);
  });

  it('evicts one of the least-counted images for a new one', () => {
    const top = new TopImages(2);
    top.add('a', 'x');
    top.add('a', 'x');
    top.add('a', 'y');
    top.add('a', 'z');
    expect(top.top(2)).toEqual([
      { upstream: 'a', repository: 'x', pulls: 2, error: 0 },
      { upstream: 'a', repository: 'z', pulls: 2, error: 1 },
    ]);
  });
});
