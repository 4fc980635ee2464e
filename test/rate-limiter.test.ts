// The RateLimiter contract against the in-memory bucketed counter, plus what is particular to it:
// the bound on keys, how much it reads, and RATE_LIMITS=off's limiter.
import t from 'tap';
import { BucketedRateLimiter, NoRateLimiter, formatWindows, parseWindows } from '../src/limits/rate-limiter.js';
import { fakeClock, rateLimiterContract } from './helpers/rate-limiter-contract.js';

t.test('BucketedRateLimiter', async (t) => {
  rateLimiterContract(t, (_t, windows, clock) => new BucketedRateLimiter(windows, { clock, sweep: false }));
});

t.test('maxKeys: beyond it the least recently hit key is forgotten', async (t) => {
  const clock = fakeClock();
  const l = new BucketedRateLimiter([{ limit: 1, windowMs: 60_000 }], { clock, maxKeys: 3, sweep: false });
  for (const k of ['a', 'b', 'c']) l.consume(k);
  clock.advance(1);
  l.consume('a'); // refused, not a hit: a stays oldest
  l.consume('d');
  t.equal(l.size, 3);
  t.equal(l.consume('a'), 0, 'a was forgotten (laxer, never wrongly refused)');
  t.ok(l.consume('c') > 0, 'c is still tracked');
});

t.test('a key stores only its non-empty buckets, and old ones are dropped as it is written', async (t) => {
  const clock = fakeClock();
  const l = new BucketedRateLimiter([{ limit: 1_000_000, windowMs: 86_400_000 }], { clock, sweep: false });
  for (let i = 0; i < 5000; i++) {
    l.consume('k');
    clock.advance(1000);
  }
  const levels = (l as any).keys.get('k').levels as { idx: number[] }[];
  t.ok(levels[0].idx.length <= 122, `seconds kept: ${levels[0].idx.length}`);
  t.ok(levels[1].idx.length <= 122, `minutes kept: ${levels[1].idx.length}`);
  t.ok(levels[2].idx.length <= 26, `hours kept: ${levels[2].idx.length}`);
});

t.test('NoRateLimiter allows everything', async (t) => {
  const l = new NoRateLimiter();
  for (let i = 0; i < 1000; i++) t.equal(l.consume('x'), 0);
});

t.test('windows parse and print', async (t) => {
  t.same(parseWindows('2/s,5/m,10/h,100/d'), [{ limit: 2, windowMs: 1000 }, { limit: 5, windowMs: 60_000 }, { limit: 10, windowMs: 3_600_000 }, { limit: 100, windowMs: 86_400_000 }]);
  t.same(parseWindows('20/10s'), [{ limit: 20, windowMs: 10_000 }]);
  t.equal(formatWindows(parseWindows('2/s,5/m,3/15m')), '2/s,5/m,3/15m');
  t.throws(() => parseWindows('5 per minute'));
  t.throws(() => parseWindows('0/s'));
});

t.test('record counts hits without checking (another node allowed them), negative takes them back', async (t) => {
  const clock = fakeClock();
  const l = new BucketedRateLimiter([{ limit: 3, windowMs: 60_000 }], { clock, sweep: false });
  l.record('k', 5);
  t.equal(l.size, 1, 'a key first seen in a record is tracked');
  const wait = l.consume('k');
  t.ok(wait > 0 && wait <= 120_000, `over the limit: consume refused (retry ${wait})`);
  clock.advance(wait);
  t.equal(l.consume('k'), 0, 'allowed once the retry has passed: the recorded hits left the window');

  l.record('r', 3);
  t.ok(l.peek('r') > 0, 'at the limit');
  l.record('r', -1);
  t.equal(l.peek('r'), 0, 'a negative record is a refund');
  t.equal(l.consume('r'), 0);
  t.ok(l.consume('r') > 0);
  l.record('r', -100);
  t.equal(l.peek('r', 3), 0, 'a refund beyond the hits takes them all, never below zero');
  t.equal(l.consume('r', 3), 0);

  const before = l.size;
  l.record('nothing', 0);
  l.record('nothing', NaN);
  l.record('absent', -1);
  t.equal(l.size, before, 'zero, NaN and a refund of an unknown key track nothing');
});

t.test('record keeps the memory bounds: maxKeys evicts the least recently hit, sweep forgets idle keys', async (t) => {
  const clock = fakeClock();
  const l = new BucketedRateLimiter([{ limit: 1, windowMs: 60_000 }], { clock, maxKeys: 3, sweep: false });
  for (const k of ['a', 'b', 'c']) l.record(k, 1);
  l.record('a', 1); // a hit: a is now the newest
  l.record('d', 1);
  t.equal(l.size, 3);
  t.equal(l.consume('b'), 0, 'b (least recently hit) was forgotten');
  t.ok(l.peek('a') > 0, 'a, recorded again, is still tracked');
  clock.advance(60_000 + 3_600_000 + 1);
  l.sweep();
  t.equal(l.size, 0, 'recorded keys are swept like hit ones');
});
