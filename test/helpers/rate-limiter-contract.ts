// The RateLimiter contract (src/limits/rate-limiter.ts) as one suite every implementation runs (in
// memory now, a cluster-wide store later). Time is an injected clock: nothing sleeps.
import type { Test } from 'tap';
import type { RateLimiter, RateWindow } from '../../src/limits/rate-limiter.js';

export interface FakeClock { now: number; (): number; advance(ms: number): void }

export function fakeClock(start = Date.UTC(2030, 0, 1, 12, 34, 56, 789)): FakeClock {
  const c = (() => c.now) as FakeClock;
  c.now = start;
  c.advance = (ms) => void (c.now += ms);
  return c;
}

export type OpenLimiter = (t: Test, windows: RateWindow[], clock: FakeClock) => Promise<RateLimiter> | RateLimiter;

const S = 1000, M = 60_000, H = 3_600_000, D = 86_400_000;
const NOTES: RateWindow[] = [{ limit: 2, windowMs: S }, { limit: 5, windowMs: M }, { limit: 10, windowMs: H }, { limit: 100, windowMs: D }];

export function rateLimiterContract(t: Test, open: OpenLimiter): void {
  const make = async (t: Test, windows: RateWindow[], clock = fakeClock()) => {
    const l = await open(t, windows, clock);
    t.teardown(() => l.stop());
    return { l, clock };
  };

  t.test('up to the limit allowed; beyond, a retry in ms; a refusal is not counted', async (t) => {
    const { l, clock } = await make(t, [{ limit: 3, windowMs: M }]);
    t.same([l.consume('k'), l.consume('k'), l.consume('k')], [0, 0, 0]);
    const wait = l.consume('k');
    t.ok(wait > 0 && wait <= 2 * M, `refused with retry ${wait}`);
    for (let i = 0; i < 20; i++) l.consume('k');
    clock.advance(wait);
    t.equal(l.consume('k'), 0, 'allowed once the retry has passed (the refusals did not count)');
  });

  t.test('keys are independent', async (t) => {
    const { l } = await make(t, [{ limit: 1, windowMs: H }]);
    t.equal(l.consume('a'), 0);
    t.ok(l.consume('a') > 0);
    t.equal(l.consume('b'), 0, 'another key has its own count');
  });

  t.test('several windows at once (2/s, 5/min, 10/h, 100/day): each one binds in turn', async (t) => {
    const { l, clock } = await make(t, NOTES);
    t.same([l.consume('u'), l.consume('u')], [0, 0]);
    const perSecond = l.consume('u');
    t.ok(perSecond > 0 && perSecond <= 2 * S, `the 2/s window: retry ${perSecond}`);
    clock.advance(2 * S);
    t.same([l.consume('u'), l.consume('u')], [0, 0], '4 in the minute');
    clock.advance(2 * S);
    t.equal(l.consume('u'), 0, '5 in the minute');
    clock.advance(2 * S);
    const perMinute = l.consume('u');
    t.ok(perMinute > 2 * S && perMinute <= 2 * M, `the 5/min window: retry ${perMinute}`);
    clock.advance(perMinute);
    t.equal(l.consume('u'), 0, 'allowed after the retry it was given');
    // 10 an hour: spend the rest a minute apart.
    let allowed = 6;
    for (let i = 0; i < 10; i++) {
      clock.advance(61 * S);
      if (l.consume('u') === 0) allowed++;
    }
    t.equal(allowed, 10, 'no more than 10 in the hour');
    const perHour = l.peek('u');
    t.ok(perHour > M && perHour <= 2 * H, `the 10/h window: retry ${perHour}`);
  });

  t.test('a day window remembers hits from hours ago, and forgets them after a day', async (t) => {
    const { l, clock } = await make(t, [{ limit: 100, windowMs: D }]);
    for (let i = 0; i < 100; i++) {
      t.equal(l.consume('d'), 0);
      clock.advance(10 * M); // 100 hits over ~16.7 hours
    }
    const wait = l.consume('d');
    t.ok(wait > 0, `the 101st within the day is refused (retry ${wait})`);
    clock.advance(D + H);
    t.equal(l.consume('d'), 0, 'a day later it is allowed');
  });

  t.test('the retry is honest: waiting it out is enough, waiting much less is not', async (t) => {
    const { l, clock } = await make(t, [{ limit: 5, windowMs: 10 * M }]);
    for (let i = 0; i < 5; i++) l.consume('r');
    const wait = l.consume('r');
    t.ok(wait > 0);
    clock.advance(Math.floor(wait / 2));
    t.ok(l.consume('r') > 0, 'still refused halfway');
    clock.advance(wait);
    t.equal(l.consume('r'), 0, 'allowed after the whole retry');
  });

  t.test('peek does not count; refund takes a hit back', async (t) => {
    const { l } = await make(t, [{ limit: 2, windowMs: H }]);
    t.equal(l.peek('p'), 0);
    l.consume('p');
    l.consume('p');
    t.ok(l.peek('p') > 0, 'at the limit');
    l.refund('p');
    t.equal(l.peek('p'), 0, 'room again after a refund');
    t.equal(l.consume('p'), 0);
    t.ok(l.consume('p') > 0);
  });

  t.test('a cost larger than a window is refused, never counted', async (t) => {
    const { l } = await make(t, [{ limit: 3, windowMs: M }]);
    t.ok(l.consume('c', 4) > 0);
    t.equal(l.consume('c', 3), 0);
  });

  t.test('memory: keys idle for longer than the longest window are swept', async (t) => {
    const { l, clock } = await make(t, [{ limit: 5, windowMs: S }, { limit: 50, windowMs: H }]);
    for (let i = 0; i < 1000; i++) l.consume(`ip${i}`);
    t.equal(l.size, 1000);
    clock.advance(30 * M);
    l.consume('fresh');
    l.sweep();
    t.equal(l.size, 1001, 'nothing swept while a window can still read it');
    clock.advance(2 * H + M);
    l.sweep();
    t.equal(l.size, 0, 'all swept');
  });
}
