import { describe, expect, it } from 'vitest';
import { CounterRates } from './rates.js';

describe('CounterRates', () => {
  it('measures from the start until a reading is a window old, then over the last window', () => {
    const rates = new CounterRates(0, ['a'], 60_000);
    expect(rates.observe(0, { a: 0 })).toBeNull();
    expect(rates.observe(10_000, { a: 20 })).toEqual({ perSecond: { a: 2 }, seconds: 10 });
    expect(rates.observe(30_000, { a: 30 })).toEqual({ perSecond: { a: 1 }, seconds: 30 });
    // 70 s: the reading at 10 s is the newest a minute old.
    expect(rates.observe(70_000, { a: 140 })).toEqual({ perSecond: { a: 2 }, seconds: 60 });
  });

  it('measures since the last reading when nothing asked for longer than the window', () => {
    const rates = new CounterRates(0, ['a'], 60_000);
    rates.observe(5_000, { a: 5 });
    expect(rates.observe(605_000, { a: 65 })).toEqual({ perSecond: { a: 0.1 }, seconds: 600 });
  });

  it('keeps at most one reading a second', () => {
    const rates = new CounterRates(0, ['a'], 60_000);
    for (let t = 1_000; t < 2_000; t += 10) rates.observe(t, { a: t });
    // Had 1,990 ms been kept, it would be the base at 61,990 ms.
    expect(rates.observe(61_990, { a: 0 })?.seconds).toBe(60.99);
  });
});
