// Shard supervision on a real server: a shard worker that dies is restarted in place while
// clients are connected; its sockets are closed with 1012 and replay; nothing acknowledged is
// lost; an ask pending to the dead shard fails at once; shards dying too often stop the server.
import t from 'tap';
import { CloseCode, ErrorCode } from '../protocol/codes.js';
import { directThreadId } from '../protocol/ids.js';
import { threadAddress, userAddress } from '../actors/router.js';
import type { ShardCluster } from '../actors/cluster.js';
import { createLogger } from '../actors/log.js';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';
import { collect, connect, newDevice, newUser, startTestServer, tempDataDir, type TestUser } from './helpers/server.js';
import { metric } from './helpers/metrics.js';

const FAST_RECONNECT = { reconnect: { minMs: 10, maxMs: 50 } };

/** A new user whose user actor lives on shard `shard` (`on`) or on another one (`off`). */
async function userWhere(s: { base: string; server: { cluster: ShardCluster } }, shard: number, on: boolean, prefix: string): Promise<TestUser> {
  for (let i = 0; i < 40; i++) {
    const u = await newUser(s, prefix);
    if ((s.server.cluster.router.threadOf(userAddress(u.user)) === shard) === on) return u;
  }
  throw new Error('no user id hashed where wanted in 40 tries');
}

/** A thread id whose actor lives on shard `shard`. */
function threadOn(cluster: ShardCluster, shard: number): string {
  for (let i = 0; ; i++) if (cluster.router.threadOf(threadAddress(`g_probe${i}`)) === shard) return `g_probe${i}`;
}

t.test('a killed shard restarts in place: clients on it reconnect and replay, nothing acknowledged is lost', async (t) => {
  const s = await startTestServer(t, { shards: 2 });
  const { cluster } = s.server;
  const victim = 1;
  const ann = await userWhere(s, victim, true, 'ann');
  const bob = await userWhere(s, victim, false, 'bob');
  const annPhone = await connect(t, s, await newDevice(s, ann), FAST_RECONNECT);
  const bobPhone = await connect(t, s, await newDevice(s, bob), FAST_RECONNECT);
  const bobGot = collect(bobPhone, 'msg');
  const annClosed = annPhone.next('close', (c) => c.code === CloseCode.serviceRestart, 30_000);
  const annBack = annPhone.next('synced', undefined, 30_000);

  const before = await Promise.all(Array.from({ length: 10 }, (_, i) => annPhone.send({ to: bob.user, body: `before ${i}` })));
  // These are in flight when the shard dies: the SDK resends them by cid until acknowledged.
  const during = Array.from({ length: 20 }, (_, i) => annPhone.send({ to: bob.user, body: `during ${i}` }));
  await cluster.killShard(victim);
  await cluster.shardReady(victim);
  t.match(await annClosed, { code: CloseCode.serviceRestart }, 'the socket whose user actor lived there is closed with 1012');
  await annBack;
  const acked = [...before, ...(await Promise.all(during))];
  const after = await Promise.all(Array.from({ length: 10 }, (_, i) => annPhone.send({ to: bob.user, body: `after ${i}` })));
  acked.push(...after);
  t.comment(`shard restart took ${cluster.lastRestartMs.toFixed(1)} ms (death seen → ready, recovery re-run)`);

  const seqs = acked.map((a) => a.seq).sort((a, b) => a - b);
  t.equal(new Set(seqs).size, 40, '40 distinct acknowledged seqs');
  const thread = directThreadId(ann.user, bob.user);
  const page = await annPhone.history({ thread, limit: 100 });
  const stored = page.messages.map((m: { seq: number }) => m.seq).sort((a: number, b: number) => a - b);
  t.same(stored, seqs, 'every acknowledged message is in history, once');
  await new Promise<void>((resolve) => {
    const check = () => bobGot.length >= 40 && resolve();
    check();
    bobPhone.on('msg', check);
  });
  t.same(bobGot.map((m) => m.seq).sort((a, b) => a - b), seqs, 'bob got each acknowledged message exactly once');
  t.equal(await metric(s.base, 'parley_shard_restarts_total'), 1, 'the restart is counted in /metrics');
  t.equal(s.server.state, 'ready');
});

t.test('an ask pending to a shard that dies answers unavailable at once, not after the ask timeout', async (t) => {
  const s = await startTestServer(t, { shards: 2, askTimeoutMs: 120_000 });
  const { cluster } = s.server;
  const victim = 2;
  await cluster.stallShard(victim); // a hung worker: it will never answer
  const thread = threadOn(cluster, victim);
  const started = Date.now();
  const pending = cluster.ask(threadAddress(thread), { op: 'recover' });
  await cluster.killShard(victim);
  const err = await pending.then(
    () => null,
    (e: unknown) => e,
  );
  t.match(err, { code: ErrorCode.unavailable, message: /stopped/ }, 'failed by the death, not by the timeout');
  t.ok(Date.now() - started < 120_000);
  await cluster.shardReady(victim);
  t.equal(await cluster.ask(threadAddress(thread), { op: 'recover' }), null, 'the restarted shard answers');
});

t.test('shards dying too often stop the server instead of restarting forever', async (t) => {
  const dataDir = tempDataDir(t);
  const config = loadConfig([], {}, { port: 0, host: '127.0.0.1', shards: 2, passwordCost: 10, logLevel: 'silent', dataDir, maxShardRestarts: 2 });
  let fatal!: (err: unknown) => void;
  const gaveUp = new Promise<unknown>((resolve) => (fatal = resolve));
  const server = await startServer(config, createLogger(config.logLevel), { onFatal: (err) => fatal(err) });
  t.teardown(() => server.stop());
  await server.cluster.killShard(1);
  await server.cluster.shardReady(1);
  t.equal(server.cluster.restarts, 1, 'the first death is restarted');
  await server.cluster.killShard(2);
  t.match(await gaveUp, { name: 'ShardFailure', message: /2 shard deaths within a minute/ });
  t.equal(server.cluster.restarts, 1, 'the second death within the minute is not restarted');
});
