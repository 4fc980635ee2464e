// NatsRateLimiter (src/limits/nats-rate-limiter.ts) on a real nats-server: the RateLimiter contract,
// then two and three limiters as nodes of one cluster. Time in the limits is an injected clock; the
// sync runs on its real timer, and every test waits for the sync it expects (stats via until()).
import t, { type Test } from 'tap';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { loadConfig } from '../src/config.js';
import { EdgeLimits, type LimitName } from '../src/limits/edge-limits.js';
import { NatsRateLimiter, natsRateLimits, type NatsRateLimiterOptions } from '../src/limits/nats-rate-limiter.js';
import type { RateWindow } from '../src/limits/rate-limiter.js';
import { natsMissing, startNats, type LocalNats } from './helpers/nats-server.js';
import { fakeClock, rateLimiterContract, type FakeClock } from './helpers/rate-limiter-contract.js';

const PREFIX = 'parley.test';
const M = 60_000;
const TIMEOUT = 30_000; // a safety net: each wait ends on the event it waits for
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

let nats: LocalNats;
let names = 0;
/** A subject of its own for each test: no test hears another's syncs. */
const freshName = () => `limit${++names}`;

async function openConnection(t: Test): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  return nc;
}

type NodeOptions = Partial<Omit<NatsRateLimiterOptions, 'nc' | 'nodeId'>>;

async function openNode(t: Test, nodeId: string, windows: RateWindow[], clock: FakeClock, opts: NodeOptions & { name: string }) {
  const nc = await openConnection(t);
  const l = new NatsRateLimiter(windows, { nc, prefix: PREFIX, nodeId, clock, sweep: false, ...opts });
  t.teardown(() => l.stop());
  await l.ready();
  return { l, nc };
}

/** `n` nodes on one nats-server and one clock, one limit. */
async function openCluster(t: Test, n: number, windows: RateWindow[], opts: NodeOptions = {}) {
  const clock = fakeClock();
  const name = freshName();
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await openNode(t, `node${i}`, windows, clock, { name, ...opts }));
  return { clock, name, nodes: nodes.map((x) => x.l), conns: nodes.map((x) => x.nc) };
}

t.test('NatsRateLimiter', { skip: natsMissing }, async (t) => {
  nats = await startNats(t);

  t.test('the RateLimiter contract, on a real nats-server', async (t) => {
    rateLimiterContract(t, async (t, windows, clock) => {
      const nc = await openConnection(t);
      const l = new NatsRateLimiter(windows, { nc, name: freshName(), prefix: PREFIX, nodeId: 'solo', clock, sweep: false });
      await l.ready();
      return l;
    });
  });

  t.test('a subject of plain tokens only', async (t) => {
    const nc = await openConnection(t);
    for (const [prefix, name] of [['parley.*', 'x'], [PREFIX, 'a b'], [PREFIX, '>'], ['', 'x']]) {
      t.throws(() => new NatsRateLimiter([{ limit: 1, windowMs: M }], { nc, prefix, name, nodeId: 'a' }), RangeError, `'${prefix}', '${name}'`);
    }
  });

  t.test('hits on A count on B: B refuses once A used the limit', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a, b] } = await openCluster(t, 2, [{ limit: 3, windowMs: M }]);
    t.same([a.consume('u'), a.consume('u'), a.consume('u')], [0, 0, 0]);
    t.ok(a.consume('u') > 0, 'A refuses its 4th');
    t.equal(b.peek('u'), 0, 'before the sync B knows nothing (the documented lag)');
    await b.until((s) => s.appliedKeys >= 1);
    const wait = b.consume('u');
    t.ok(wait > 0 && wait <= 2 * M, `B refuses: retry ${wait}`);
    t.equal(a.stats.published, 1, 'the three hits went as one message');
    t.equal(b.stats.published, 0, 'a refusal on B is not a hit: nothing to send');
  });

  t.test('hits spread over two nodes add up', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a, b] } = await openCluster(t, 2, [{ limit: 4, windowMs: M }]);
    t.same([a.consume('u'), a.consume('u'), b.consume('u'), b.consume('u')], [0, 0, 0, 0]);
    await Promise.all([a.until((s) => s.applied >= 1), b.until((s) => s.applied >= 1)]);
    t.ok(a.consume('u') > 0, 'A counts B’s two: refused');
    t.ok(b.consume('u') > 0, 'B counts A’s two: refused');
  });

  t.test('a peer’s hits count even beyond the limit (both nodes used it within one interval)', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a, b] } = await openCluster(t, 2, [{ limit: 3, windowMs: M }]);
    t.same([a.consume('u'), a.consume('u'), a.consume('u'), b.consume('u'), b.consume('u'), b.consume('u')], [0, 0, 0, 0, 0, 0], 'the documented overshoot: each node allowed the limit before hearing of the other');
    await Promise.all([a.until((s) => s.applied >= 1), b.until((s) => s.applied >= 1)]);
    b.refund('u', 3);
    t.ok(b.peek('u') > 0, 'B counted A’s three on top of its own: without its own, still at the limit');
  });

  t.test('refunds travel too; a hit refunded before the sync is never sent', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a, b] } = await openCluster(t, 2, [{ limit: 2, windowMs: M }]);
    a.consume('u');
    a.consume('u');
    a.consume('login'); // a login that turned out right: taken back within the same interval
    a.refund('login');
    await b.until((s) => s.applied >= 1);
    t.ok(b.peek('u') > 0, 'B sees u at its limit');
    t.equal(b.size, 1, 'the refunded login never reached B');
    t.equal(a.stats.publishedKeys, 1);
    a.refund('u');
    await b.until((s) => s.applied >= 2);
    t.equal(b.peek('u'), 0, 'the refund reached B: room again');
    t.equal(b.consume('u'), 0);
    t.ok(b.consume('u') > 0, 'and exactly one');
  });

  t.test('three nodes: each node’s hits reach both others', { timeout: TIMEOUT }, async (t) => {
    const { nodes } = await openCluster(t, 3, [{ limit: 3, windowMs: M }]);
    for (const n of nodes) t.equal(n.consume('u'), 0);
    await Promise.all(nodes.map((n) => n.until((s) => s.applied >= 2)));
    for (const [i, n] of nodes.entries()) t.ok(n.peek('u') > 0, `node${i} counts all three hits`);
    for (const n of nodes) t.equal(n.stats.dropped, 0);
  });

  t.test('a malformed message is dropped, counted and logged once; the limiter goes on', { timeout: TIMEOUT }, async (t) => {
    const warnings: string[] = [];
    const log = { warn: (_obj: object, msg: string) => void warnings.push(msg) };
    const { clock, name, nodes: [b] } = await openCluster(t, 1, [{ limit: 3, windowMs: M }], { log });
    const raw = await openConnection(t);
    const subject = `${PREFIX}.rl.${name}`;
    const now = clock.now;
    const bad: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0xc1]), // never used in msgpack
      new Uint8Array([0x93, 0x01]), // an array cut short
      packr.pack([1, 2, 3]),
      packr.pack({ v: 2, from: 'z/1', at: now, d: ['k', 1] }),
      packr.pack({ v: 1, at: now, d: ['k', 1] }),
      packr.pack({ v: 1, from: 'z/1', at: 'now', d: ['k', 1] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['k'] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: [] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: [5, 1] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['', 1] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['x'.repeat(513), 1] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['k', 'one'] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['k', NaN] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['k', 0] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['k', 1e12] }),
      packr.pack({ v: 1, from: 'z/1', at: now, d: ['ok', 1, 'k', { n: 1 }] }), // one bad entry drops it whole
    ];
    for (const m of bad) raw.publish(subject, new Uint8Array(m));
    // One publisher's messages arrive in order: when the good one is applied, every bad one was seen.
    raw.publish(subject, new Uint8Array(packr.pack({ v: 1, from: 'z/1', at: now, d: ['k', 3] })));
    await b.until((s) => s.applied >= 1);
    t.equal(b.stats.dropped, bad.length, 'every malformed message counted');
    t.equal(warnings.length, 1, `logged once: ${warnings[0]}`);
    t.equal(b.size, 1, 'nothing of a dropped message was counted (not even its good entry)');
    t.ok(b.consume('k') > 0, 'the good message counted');
    t.equal(b.consume('other'), 0, 'and the limiter goes on');
  });

  t.test('a message whose clock is far off ours is dropped as stale', { timeout: TIMEOUT }, async (t) => {
    const name = freshName();
    const windows = [{ limit: 1, windowMs: M }];
    const { l: a } = await openNode(t, 'a', windows, fakeClock(), { name });
    const ahead = fakeClock();
    ahead.advance(M);
    const { l: b } = await openNode(t, 'b', windows, ahead, { name });
    a.consume('u');
    await b.until((s) => s.stale >= 1);
    t.equal(b.stats.applied, 0);
    t.equal(b.peek('u'), 0, 'not counted');
  });

  t.test('its own messages are ignored', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a, b] } = await openCluster(t, 2, [{ limit: 3, windowMs: M }]);
    a.consume('u');
    await b.until((s) => s.applied >= 1);
    // A heard its own message too (same subject) before or after B; a second sync orders it.
    b.consume('v');
    await a.until((s) => s.applied >= 1);
    t.equal(a.stats.applied, 1, 'A applied only B’s message');
    t.same([a.consume('u'), a.consume('u')], [0, 0], 'u counted once on A, not twice');
    t.ok(a.consume('u') > 0);
  });

  t.test('a limiter whose NATS connection is closed limits locally, never throws', { timeout: TIMEOUT }, async (t) => {
    const { nodes: [a], conns: [ncA] } = await openCluster(t, 2, [{ limit: 3, windowMs: M }]);
    a.consume('u'); // pending when the connection goes
    await ncA.close();
    await a.until((s) => !s.connected);
    t.same([a.consume('u'), a.consume('u')], [0, 0]);
    t.ok(a.consume('u') > 0, 'the limit holds on this node alone');
    a.refund('u');
    t.equal(a.consume('u'), 0, 'refunds work locally');
    t.ok(a.stats.unshared >= 4, 'the hits since the close are not shared');
    a.stop();
  });

  t.test('nats-server down: each node limits alone (laxer, never wrongly refusing)', { timeout: TIMEOUT }, async (t) => {
    const own = await startNats(t); // this test kills its server
    const clock = fakeClock();
    const name = freshName();
    const open = async (nodeId: string) => {
      const nc = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
      t.teardown(() => nc.close());
      const l = new NatsRateLimiter([{ limit: 2, windowMs: M }], { nc, name, prefix: PREFIX, nodeId, clock, sweep: false });
      t.teardown(() => l.stop());
      await l.ready();
      return l;
    };
    const a = await open('a');
    const b = await open('b');
    await own.kill();
    await Promise.all([a.until((s) => !s.connected), b.until((s) => !s.connected)]);
    t.same([a.consume('u'), a.consume('u'), b.consume('u'), b.consume('u')], [0, 0, 0, 0], 'each node allows the limit');
    t.ok(a.consume('u') > 0 && b.consume('u') > 0, 'and refuses beyond it');
    t.equal(a.stats.published + b.stats.published, 0, 'nothing sent while down');
  });

  t.test('bounds: at most maxPendingKeys wait, a sync sends maxKeysPerFlush (oldest first) and splits messages', { timeout: TIMEOUT }, async (t) => {
    const { name, nodes: [a, b] } = await openCluster(t, 2, [{ limit: 5, windowMs: M }], { maxPendingKeys: 30, maxKeysPerFlush: 20, maxMessageBytes: 256 + 10 * 16 });
    const raw = await openConnection(t);
    const sizes: number[] = [];
    const keysPerMessage: string[][] = [];
    raw.subscribe(`${PREFIX}.rl.${name}`, {
      callback: (_err, msg) => {
        sizes.push(msg.data.length);
        keysPerMessage.push((packr.unpack(msg.data).d as unknown[]).filter((x): x is string => typeof x === 'string'));
      },
    });
    await raw.flush();
    for (let i = 0; i < 35; i++) a.consume(`key${String(i).padStart(2, '0')}`); // 5-byte keys: 8 to a message
    t.equal(a.stats.unshared, 5, 'keys beyond maxPendingKeys are counted here only');
    await b.until((s) => s.appliedKeys >= 30);
    t.equal(b.size, 30);
    for (let i = 0; i < 30; i++) t.ok(b.peek(`key${String(i).padStart(2, '0')}`, 5) > 0, `key${i} reached B`);
    t.equal(b.peek('key30', 5), 0, 'key30 (beyond the bound) did not');
    t.ok(a.stats.published >= 3, `split into ${a.stats.published} messages`);
    await raw.flush(); // the server wrote the raw subscriber's copies before this round trip's answer
    t.equal(sizes.length, a.stats.published);
    // 19 bytes counted per 5-byte key, 160 for the deltas: 8 keys a message; 20 keys a sync, then the other 10.
    t.same(keysPerMessage.map((k) => k.length), [8, 8, 4, 8, 2], 'two syncs, each split');
    t.same(keysPerMessage.flat(), Array.from({ length: 30 }, (_, i) => `key${String(i).padStart(2, '0')}`), 'the longest waiting first');
    t.ok(Math.max(...sizes) <= 256 + 10 * 16, `each message within the bound: ${sizes.join(', ')} bytes`);
  });

  t.test('EdgeLimits with the shared factory: per-user limits hold across nodes, per-IP ones stay per node', { timeout: TIMEOUT }, async (t) => {
    const config = loadConfig([], {}, { rateLimits: 'on', rlSendsPerUser: [{ limit: 2, windowMs: M }], rlHttpPerIp: [{ limit: 1, windowMs: M }] });
    const clock = fakeClock();
    const prefix = `${PREFIX}.${freshName()}`;
    const edge = async (nodeId: string) => {
      const nc = await openConnection(t);
      const made = new Map<LimitName, NatsRateLimiter>();
      const make = natsRateLimits(nc, { prefix, nodeId, clock, sweep: false });
      const limits = new EdgeLimits(config, undefined, clock, (name, windows) => {
        const l = make(name, windows);
        made.set(name, l);
        return l;
      });
      t.teardown(() => limits.stop());
      await Promise.all([...made.values()].map((l) => l.ready()));
      return { limits, made };
    };
    const a = await edge('a');
    const b = await edge('b');
    t.same([...a.made.keys()].sort(), ['invite_guess', 'login_username', 'server_api', 'user_costly', 'user_sends']);
    t.same([a.limits.userSend('alice'), a.limits.userSend('alice')], [0, 0]);
    await b.made.get('user_sends')!.until((s) => s.applied >= 1);
    t.ok(b.limits.userSend('alice') > 0, 'B refuses alice’s third send');
    a.limits.http('203.0.113.7');
    t.throws(() => a.limits.http('203.0.113.7'), 'A limits the IP');
    t.doesNotThrow(() => b.limits.http('203.0.113.7'), 'B counts the IP on its own');
  });
});
