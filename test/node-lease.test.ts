// A node's ownership lease (src/cluster/node-lease.ts) on a real nats-server: one holder per
// node id, an epoch that grows with every new holding, a holder that lost its lease told so, a
// layout the live nodes disagree with refused; and a second process with a running node's id
// stops with exit 2.
import t from 'tap';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import { LeaseError, NodeLease, type LeaseTerms } from '../src/cluster/node-lease.js';
import { startChildServer } from './helpers/child-server.js';
import { natsMissing, startNats } from './helpers/nats-server.js';
import { tempDataDir } from './helpers/server.js';

const log = pino({ level: 'silent' });

t.test('NodeLease', { skip: natsMissing }, async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  let clusters = 0;
  const terms = (over: Partial<LeaseTerms> = {}): LeaseTerms => ({ cluster: `c${++clusters}`, node: 'n1', nodes: ['n1', 'n2'], shards: 2, ttlMs: 60_000, waitMs: 0, ...over });
  const never = () => t.fail('no lease should be lost here');

  t.test('one holder per node id; released, the next holding has a higher epoch', async (t) => {
    const tm = terms();
    const first = await NodeLease.acquire(nc, tm, log, never);
    t.ok(first.epoch > 0);
    await t.rejects(NodeLease.acquire(nc, tm, log, never), { name: 'LeaseError', message: /node n1 is held by another process/ });
    const other = await NodeLease.acquire(nc, { ...tm, node: 'n2' }, log, never);
    await first.release();
    const second = await NodeLease.acquire(nc, tm, log, never);
    t.ok(second.epoch > first.epoch, `epoch ${second.epoch} > ${first.epoch}: a zombie of the first is fenced`);
    await second.release();
    await other.release();
  });

  t.test('a lease that expired is taken after waiting for it', async (t) => {
    const tm = terms({ ttlMs: 600 });
    const kv = await new Kvm(nc).create(`parley-${tm.cluster}-leases`, { ttl: tm.ttlMs, history: 1 });
    // A holder that died without releasing: its key stays until the bucket's TTL removes it.
    await kv.create('node.n1', JSON.stringify({ node: 'n1', epoch: 1, nodes: tm.nodes, shards: tm.shards, pid: 1 }));
    const lease = await NodeLease.acquire(nc, { ...tm, waitMs: 30_000 }, log, never);
    t.ok(lease.epoch > 1);
    await lease.release();
  });

  t.test('a holder whose lease was taken over is told it lost it', async (t) => {
    const tm = terms({ ttlMs: 300 });
    let lost: LeaseError | undefined;
    const gone = new Promise<void>((resolve) => {
      void NodeLease.acquire(nc, tm, log, (err) => {
        lost = err;
        resolve();
      }).then(async () => {
        // Someone else writes the key (as a new holder would after an expiry): the next renewal's
        // compare-and-set fails.
        const kv = await new Kvm(nc).open(`parley-${tm.cluster}-leases`);
        await kv.put('node.n1', JSON.stringify({ node: 'n1', epoch: 99, nodes: tm.nodes, shards: tm.shards, pid: 2 }));
      });
    });
    await gone;
    t.match(lost, { name: 'LeaseError', message: /taken by another holder/ });
  });

  t.test('a layout the live nodes disagree with is refused', async (t) => {
    const tm = terms();
    const n1 = await NodeLease.acquire(nc, tm, log, never);
    await t.rejects(NodeLease.acquire(nc, { ...tm, node: 'n2', nodes: ['n2', 'n1'] }, log, never), { name: 'LeaseError', message: /CLUSTER_NODES and SHARDS must be the same on every node/ });
    await t.rejects(NodeLease.acquire(nc, { ...tm, node: 'n2', shards: 3 }, log, never), { message: /with 2 shards, this node .* with 3/ });
    await n1.release();
  });

  t.test('a second process with a running node\'s id exits 2, naming it', async (t) => {
    const env = { CLUSTER_NATS_URL: nats.url, NODE_ID: 'n1', CLUSTER_NODES: 'n1', CLUSTER_NAME: `p${clusters++}`, CLUSTER_LEASE_MS: '500', SHARDS: '1' };
    const running = await startChildServer(tempDataDir(t), env);
    t.teardown(async () => {
      running.proc.kill('SIGTERM');
      await running.exited;
    });
    const twin = startChildServer(tempDataDir(t), env);
    await t.rejects(twin, /exited with 2 before ready: .*node n1 is held by another process/s);
  });
});
