// Consistent-hash ring properties: even spread, minimal movement on growth, determinism, arg validation.
import t from 'tap';
import { HashRing } from '../actors/ring.js';

const KEYS = 100_000;
const keys: string[] = Array.from({ length: KEYS }, (_, i) => `user:${i}`);

t.test('even spread: every shard within ±10% of the mean', async (t) => {
  const cases = [
    { name: 'N=2', n: 2 },
    { name: 'N=3', n: 3 },
    { name: 'N=4', n: 4 },
    { name: 'N=8', n: 8 },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const ring = new HashRing(c.n);
      t.equal(ring.shardCount, c.n);
      const counts = new Array<number>(c.n).fill(0);
      let outOfRange = 0;
      for (const k of keys) {
        const s = ring.shardOf(k);
        if (Number.isInteger(s) && s >= 0 && s < c.n) counts[s]++;
        else outOfRange++;
      }
      t.equal(outOfRange, 0, 'every key maps to 0..N-1');
      const mean = KEYS / c.n;
      const worst = Math.max(...counts.map((x) => Math.abs(x - mean) / mean));
      t.comment(`${c.name} counts=${counts.join(',')} worst deviation=${(worst * 100).toFixed(2)}%`);
      counts.forEach((x, i) => {
        t.ok(x >= mean * 0.9 && x <= mean * 1.1, `shard ${i}: ${x} within ±10% of ${mean.toFixed(0)}`);
      });
    });
  }
});

t.test('minimal movement: N -> N+1 moves ~1/(N+1) of keys, all onto the new shard', async (t) => {
  const cases = [1, 2, 3, 4, 7].map((n) => ({ name: `${n}->${n + 1}`, n }));
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const before = new HashRing(c.n);
      const after = new HashRing(c.n + 1);
      let moved = 0;
      let wrongDest = 0;
      for (const k of keys) {
        const a = before.shardOf(k);
        const b = after.shardOf(k);
        if (a !== b) {
          moved++;
          if (b !== c.n) wrongDest++;
        }
      }
      const ideal = 1 / (c.n + 1);
      const frac = moved / KEYS;
      t.comment(`${c.name} moved=${moved} (${(frac * 100).toFixed(2)}%, ideal ${(ideal * 100).toFixed(2)}%)`);
      t.ok(frac >= 0.7 * ideal, `moved fraction ${frac.toFixed(4)} >= ${(0.7 * ideal).toFixed(4)}`);
      t.ok(frac <= 1.3 * ideal, `moved fraction ${frac.toFixed(4)} <= ${(1.3 * ideal).toFixed(4)}`);
      t.equal(wrongDest, 0, 'every moved key lands on the new shard');
    });
  }
});

t.test('determinism: rings built with the same args agree on every key', async (t) => {
  const cases = [
    { name: 'N=1', n: 1, v: undefined },
    { name: 'N=5 default vnodes', n: 5, v: undefined },
    { name: 'N=8 vnodes=64', n: 8, v: 64 },
  ];
  const mixed = [...keys.slice(0, 20_000), 'thread:d:a:b', 'channel:news', 'user:u1', '', 'é', '😀'];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const a = new HashRing(c.n, c.v);
      const b = new HashRing(c.n, c.v);
      let diff = 0;
      for (const k of mixed) if (a.shardOf(k) !== b.shardOf(k)) diff++;
      t.equal(diff, 0, 'no disagreements');
    });
  }
});

t.test('bad arguments throw RangeError', async (t) => {
  const cases: { name: string; n: number; v?: number }[] = [
    { name: 'shardCount 0', n: 0 },
    { name: 'shardCount -1', n: -1 },
    { name: 'shardCount 1.5', n: 1.5 },
    { name: 'shardCount NaN', n: NaN },
    { name: 'virtualNodes 0', n: 2, v: 0 },
    { name: 'virtualNodes -1', n: 2, v: -1 },
    { name: 'virtualNodes 1.5', n: 2, v: 1.5 },
  ];
  for (const c of cases) {
    t.throws(() => new HashRing(c.n, c.v), RangeError, c.name);
  }
});
