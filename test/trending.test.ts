// Trending channels (docs/protocol.md "Trending channels"): the windowed counts and their top
// list against a brute-force count over a simulated day (time is an argument there), and a
// generated workload on a real server whose channel.trending orders channels by activity.
import t from 'tap';
import { TOP_KEEP, TrendingCounts, type TrendingRow } from '../actors/trending-counts.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('TrendingCounts: every answer equals a brute-force count of the window, as buckets roll out', async (t) => {
  const specs = { '1h': { spanMs: 3_600_000, bucketMs: 60_000 }, '24h': { spanMs: 86_400_000, bucketMs: 900_000 } };
  const counts = new TrendingCounts(specs);
  const events: { channel: string; posts: number; joins: number; at: number }[] = [];
  // A seeded generator: the same workload every run.
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const channels = Array.from({ length: 120 }, (_, i) => `c:${i}`);
  const brute = (window: '1h' | '24h', now: number, limit: number): TrendingRow[] => {
    const { spanMs, bucketMs } = specs[window];
    const oldest = Math.floor(now / bucketMs) - Math.ceil(spanMs / bucketMs) + 1;
    const totals = new Map<string, { posts: number; joins: number }>();
    for (const e of events) {
      if (Math.floor(e.at / bucketMs) < oldest) continue;
      const a = totals.get(e.channel) ?? { posts: 0, joins: 0 };
      a.posts += e.posts;
      a.joins += e.joins;
      totals.set(e.channel, a);
    }
    return [...totals].map(([channel, a]) => ({ channel, name: `n${channel}`, title: `T ${channel}`, ...a, score: a.posts + a.joins }))
      .sort((a, b) => b.score - a.score || b.posts - a.posts || (a.channel < b.channel ? -1 : 1)).slice(0, limit);
  };
  let now = 1_800_000_000_000;
  let checks = 0;
  let mismatches = 0;
  for (let step = 0; step < 4000; step++) {
    now += Math.floor(rnd() * 40_000); // ~20 s apart on average: 4000 steps ≈ 22 h
    // Skewed: a few channels are much busier, and which ones changes over the day.
    const hot = Math.floor(now / 7_200_000) % 10;
    const channel = rnd() < 0.4 ? channels[hot * 3 + Math.floor(rnd() * 3)] : channels[Math.floor(rnd() * channels.length)];
    const e = { channel, posts: Math.floor(rnd() * 4), joins: Math.floor(rnd() * 3), at: now };
    if (e.posts + e.joins === 0) e.posts = 1;
    events.push(e);
    counts.add(channel, `n${channel}`, `T ${channel}`, e, now);
    if (step % 25 === 0) {
      for (const window of ['1h', '24h'] as const) {
        for (const limit of [1, 10, TOP_KEEP]) {
          checks++;
          const got = counts.top(window, limit, now);
          const want = brute(window, now, limit);
          if (JSON.stringify(got) !== JSON.stringify(want)) {
            if (mismatches++ === 0) t.same(got, want, `first mismatch: ${window} limit ${limit} at step ${step}`);
          }
        }
      }
    }
  }
  t.equal(mismatches, 0, `all ${checks} answers exact (error 0)`);
  // Long after: everything left both windows.
  now += 2 * 86_400_000;
  t.same(counts.top('24h', 10, now), [], 'an idle day later, nothing is trending');
  t.same(counts.top('1h', 10, now), []);
  t.equal(counts.size, 0, 'and no channel is remembered');
});

t.test('channel.trending orders 30 channels of a generated workload by posts + joins', async (t) => {
  const s = await startTestServer(t, { channelPostsPerSecond: 100_000 });
  const owner = await connect(t, s, await newDevice(s, await newUser(s, 'own')));
  const viewers = await Promise.all(['v1', 'v2', 'v3'].map(async (n) => connect(t, s, await newDevice(s, await newUser(s, n)))));
  const N = 30;
  // Channel i: score i + 1, split between posts and joins differently per channel.
  const plan = Array.from({ length: N }, (_, i) => {
    const posts = (i * 7) % (i + 2);
    return { posts, joins: i + 1 - posts };
  });
  const ids: string[] = [];
  for (let i = 0; i < N; i++) ids.push((await owner.channelCreate({ name: `tr${process.pid % 1000}_${i}`, title: `Channel ${i}` })).channel);
  await Promise.all(ids.map(async (channel, i) => {
    for (let p = 0; p < plan[i].posts; p++) await owner.channelPost({ channel, body: `post ${p}` });
    // Joins: sockets join and leave again (each join of a socket is counted).
    for (let j = 0; j < plan[i].joins; j++) {
      const v = viewers[j % viewers.length];
      await v.channelJoin({ channel });
      await v.channelLeave({ channel });
    }
  }));
  const total = plan.reduce((n, p) => n + p.posts + p.joins, 0);

  // Counts reach the trending actor after their commits: ask until all of them are in.
  let top: any[] = [];
  const deadline = Date.now() + 15_000;
  for (;;) {
    top = await owner.trendingChannels({ window: '1h', limit: 50 });
    if (top.reduce((n, r) => n + r.score, 0) === total || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(top.length, N, 'every active channel is listed');
  t.same(top.map((r) => r.channel), [...ids].reverse(), 'ordered by activity, busiest first');
  t.same(top.map((r) => [r.posts, r.joins, r.score]), plan.map((p) => [p.posts, p.joins, p.posts + p.joins]).reverse(), 'exact posts, joins and score');
  t.match(top[0], { channel: ids[N - 1], name: `tr${process.pid % 1000}_${N - 1}`, title: `Channel ${N - 1}` });

  const five = await owner.trendingChannels({ window: '1h', limit: 5 });
  t.same(five.map((r) => r.channel), ids.slice(N - 5).reverse(), 'limit 5: the top five');
  t.equal((await viewers[0].trendingChannels({ window: '24h' })).length, 10, 'default limit 10, the day window, any user');
  t.same((await owner.trendingChannels({ window: '24h', limit: 50 })).map((r) => r.score), top.map((r) => r.score), 'the day counts the same');

  // Validation: a fresh socket for each (three bad frames close one).
  for (const [fields, what] of [[{ window: '2h' }, 'unknown window'], [{}, 'window required'], [{ window: '1h', limit: 51 }, 'limit at most 50'], [{ window: '1h', limit: 0 }, 'limit at least 1']] as const) {
    const c = await connect(t, s, await newDevice(s, await newUser(s, 'bad')));
    await t.rejects(c.request('channel.trending', fields), { code: 'bad_frame' }, what);
    c.close();
  }
});
