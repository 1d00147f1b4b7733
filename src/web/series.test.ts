import { describe, expect, it } from 'vitest';
import { RingSeries } from './series.js';

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

describe('RingSeries', () => {
  it('adds requests and bytes into the interval of their time, hits apart', () => {
    const series = new RingSeries({ intervalSeconds: 10, spanSeconds: 60 });
    series.add(1_000_000, true, 100);
    series.add(1_005_000, false, 40);
    series.add(1_012_000, true, 7);
    const w = series.window(1_012_000);
    expect(w.requests).toEqual([0, 0, 0, 0, 2, 1]);
    expect(w.hits).toEqual([0, 0, 0, 0, 1, 1]);
    expect(w.bytesFromCache).toEqual([0, 0, 0, 0, 100, 7]);
    expect(w.bytesOther).toEqual([0, 0, 0, 0, 40, 0]);
    expect(w.start).toBe(960);
    expect(w.intervalSeconds).toBe(10);
  });

  it('forgets intervals older than the span, and reuses their slots', () => {
    const series = new RingSeries({ intervalSeconds: 10, spanSeconds: 60 });
    series.add(0, false, 5);
    series.add(30_000, false, 5);
    series.add(60_000, true, 9); // the slot of t=0, emptied first
    const w = series.window(60_000);
    expect(w.requests).toEqual([0, 0, 1, 0, 0, 1]);
    expect(sum(w.bytesOther)).toBe(5);
    expect(sum(series.window(200_000).requests)).toBe(0);
  });
});
