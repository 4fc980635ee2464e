// The metrics history (src/metrics-history.ts) and GET /v1/admin/series (docs/protocol.md §8.7):
// rollups and expiry on an injected clock; the endpoint's messages/s counts match generated
// traffic; the same admin check as /metrics.
import t from 'tap';
import { openStorage } from '../storage/env.js';
import { MetricsHistory, quantile, RESOLUTIONS, type SampleSource } from '../src/metrics-history.js';
import { freePort } from './helpers/child-server.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

const TOKEN = 'admin-token-for-tests-0123456789abcdef';
const BOUNDS = [0.001, 0.01, 0.1];

t.test('quantile interpolates within a histogram bucket', async (t) => {
  t.equal(quantile([0, 0, 0, 0], BOUNDS, 0.5), null, 'nothing recorded');
  t.equal(quantile([10, 0, 0, 0], BOUNDS, 0.5), 0.0005);
  t.ok(Math.abs(quantile([0, 10, 0, 0], BOUNDS, 0.5)! - 0.0055) < 1e-12, 'halfway into 1–10 ms');
  t.equal(quantile([99, 0, 0, 1], BOUNDS, 0.99), 0.001, 'the 99th of 100 is in the first bucket');
  t.equal(quantile([0, 0, 0, 5], BOUNDS, 0.99), 0.1, 'overflow reads as the last bound');
});

t.test('1 s → 1 min → 1 h rollups, batched writes and expiry (injected clock)', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  let now = Date.UTC(2026, 0, 1, 10, 0, 0, 20); // 20 ms after a second, as the sampler ticks
  const c = {
    connections: 3, messages: 0, framesOut: 0, channelDeliveries: 0, errors: 0, rateLimited: 0, sendBuckets: [0, 0, 0, 0], cpuMicros: 0,
    commitBuckets: [0, 0, 0, 0], shard0: 0,
  };
  const source: SampleSource = {
    latencyBounds: BOUNDS,
    read: () => ({ ...c, sendBuckets: [...c.sendBuckets], commitBuckets: [...c.commitBuckets], shardCpuMicros: new Map([[0, c.shard0]]) }),
  };
  const h = new MetricsHistory(storage, source, { clock: () => now, timers: false });
  h.tick(); // baseline
  const t0 = Math.floor(now / 1000) * 1000;
  // 120 seconds: 2 messages a second, each in the 1–10 ms latency bucket; connections 3 then 5.
  for (let i = 0; i < 120; i++) {
    now += 1000;
    c.messages += 2;
    c.sendBuckets[1] += 2;
    c.commitBuckets[0] += 1; // one commit a second, under the first bound
    c.shard0 += 250_000; // a shard busy a quarter of each second
    if (i === 60) c.connections = 5;
    h.tick();
  }
  const sec = h.series('messages', t0, now, 1000);
  t.equal(sec.resolution, 1000);
  t.equal(sec.points.length, 119, 'the last second is still open');
  t.ok(sec.points.every(([, v]) => v === 2), '2 a second');
  t.equal(sec.points[0][0], t0);
  const min = h.series('messages', t0, now, 60_000);
  t.same(min.points, [[t0, 2]], 'minutes: the mean rate; the second minute stays open until a sample after it');
  t.same(h.series('connections', t0, now, 60_000).points, [[t0, 3]], 'a gauge: the mean of its samples');
  const p50 = h.series('send_p50_ms', t0, now, 60_000).points;
  t.equal(p50[0][1], 5.5, 'p50 from the bucket counts: halfway into 1–10 ms');
  t.equal(h.series('commit_p99_ms', t0, now, 60_000).points[0][1], 0.99 * 1, 'commit p99 from the shards\' commit buckets (first bound 1 ms)');
  t.same(h.series('shard_cpu_max_percent', t0, now, 60_000).points, [[t0, 25]], 'the busiest shard: 25 % of a core');

  await h.flush();
  t.equal(storage.db.metricSeries.get(['messages', 1000, t0]), 2, 'written to LMDB in the flush');
  t.same(h.series('messages', t0, now, 60_000).points, min.points, 'read back the same from storage');

  // An hour and a bit later: the hour bucket closes; the 1 s points expire, minutes stay.
  now += 3_700_000;
  c.messages += 7;
  h.tick();
  const hours = h.series('messages', t0 - 3_600_000, now, 3_600_000).points;
  t.equal(hours.length, 1, 'the first hour closed');
  t.equal(Math.round(hours[0][1] * 3600), 2 * 120, 'hour point × 3600 = every message in it (the 7 are in the next hour)');
  t.same(h.series('connections', t0, now, 60_000).points, [[t0, 3], [t0 + 60_000, 5]], 'the second minute closed too');
  await h.flush();
  t.equal(h.series('messages', t0, t0 + 200_000, 1000).points.length, 0, '1 s points older than an hour deleted');
  t.equal(h.series('messages', t0, t0 + 200_000, 60_000).points.length, 2, 'minutes kept for a day');
  t.equal(h.resolutionFor(now - 900_000, now), 1000, '15 minutes: 1 s');
  t.equal(h.resolutionFor(now - 86_400_000, now), 60_000, '24 hours: 1 min');
  t.equal(h.resolutionFor(now - 7 * 86_400_000, now), 3_600_000, 'a week: 1 h');
  t.equal(RESOLUTIONS.length, 3);
  await h.stop();
});

t.test('the series endpoint: messages/s points sum to the sends made; admin token; bad requests', async (t) => {
  const s = await startTestServer(t, { adminToken: TOKEN });
  const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
  const url = (q: string) => `${s.base}/v1/admin/series?${q}`;
  t.equal((await fetch(url('metric=messages'))).status, 401, 'no token');
  t.equal((await fetch(url('metric=messages'), { headers: { authorization: 'Bearer wrong-token-wrong-token-wrong' } })).status, 401, 'a wrong token');
  const unknown = await fetch(url('metric=nope'), auth);
  t.equal(unknown.status, 400);
  t.match((await unknown.json()).message, /known: connections, messages/);
  t.equal((await fetch(url('metric=messages&from=10&to=5'), auth)).status, 400, 'from after to');
  t.equal((await fetch(url('metric=messages&from=abc'), auth)).status, 400, 'not a number');

  const from = Date.now() - 1000;
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newUser(s, 'bob');
  const a = await connect(t, s, ann);
  const N = 25;
  for (let i = 0; i < N; i++) await a.send({ to: bob.user, body: `m${i}` });
  const deadline = Date.now() + 15_000;
  let sum = 0;
  let status = 0;
  let body: { metric: string; resolution: number; points: [number, number][] } | undefined;
  // Polls until the sampler has counted every send; asserts once after, so the plan is the same every run.
  while (Date.now() < deadline) {
    const res = await fetch(url(`metric=messages&from=${from}&to=${Date.now()}`), auth);
    status = res.status;
    if (status !== 200) break;
    body = await res.json();
    sum = body!.points.reduce((n, [, v]) => n + v, 0);
    if (sum >= N) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.equal(status, 200, 'the series answers');
  t.equal(sum, N, 'the 1 s points add up to the sends');
  t.equal(body!.metric, 'messages');
  t.equal(body!.resolution, 1000);
  const conns = await (await fetch(url(`metric=connections&from=${from}`), auth)).json();
  t.ok(conns.points.some(([, v]: [number, number]) => v >= 1), 'the connection is seen');
  // The shards' figures reach the history too (fetched each second beside the sampler): wait for them.
  const until = Date.now() + 15_000;
  let commits: [number, number][] = [];
  let shardCpu: [number, number][] = [];
  while (Date.now() < until && (commits.length === 0 || shardCpu.length === 0)) {
    commits = (await (await fetch(url(`metric=commit_p99_ms&from=${from}`), auth)).json()).points;
    shardCpu = (await (await fetch(url(`metric=shard_cpu_max_percent&from=${from}`), auth)).json()).points;
    if (commits.length === 0 || shardCpu.length === 0) await new Promise((r) => setTimeout(r, 250));
  }
  t.ok(commits.some(([, v]) => v > 0), 'commit latency points from the sends\' commits');
  t.ok(shardCpu.length > 0 && shardCpu.every(([, v]) => v >= 0 && v <= 100), 'the busiest shard\'s CPU, 0–100 %');
  t.equal((await fetch(`${s.base}/admin`)).status, 200, 'the page (no data in it) is served');
});

t.test('ADMIN_PORT: the series and the page there without a token, not on the main port', async (t) => {
  const adminPort = await freePort();
  const s = await startTestServer(t, { adminPort });
  t.equal((await fetch(`${s.base}/v1/admin/series?metric=messages`)).status, 404);
  t.equal((await fetch(`${s.base}/admin`)).status, 404);
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/admin/series?metric=connections`);
  t.equal(res.status, 200);
  t.match(await res.json(), { metric: 'connections', resolution: 1000 });
  t.equal((await fetch(`http://127.0.0.1:${adminPort}/v1/admin/series?metric=x`)).status, 400);
  const js = await fetch(`http://127.0.0.1:${adminPort}/admin/uplot.js`);
  t.equal(js.status, 200);
  t.match(await js.text(), /uPlot/);
});
