// Router: a location (node, shard) for every address; the single-node default keeps today's
// thread mapping; routers of every node agree; a remote actor has no local thread.
import t from 'tap';
import { HashRing } from '../actors/ring.js';
import { LOCAL_NODE, placementKey, Router } from '../actors/router.js';

const keys = Array.from({ length: 20_000 }, (_, i) => (i & 1 ? `user:u${i}` : `thread:d:u${i}:u${i + 1}`));

t.test('one node: the location is this node and the ring shard; threadOf is shard + 1', async (t) => {
  const router = new Router(4);
  const ring = new HashRing(4);
  let wrong = 0;
  for (const k of keys) {
    const loc = router.locate(k);
    if (loc.node !== LOCAL_NODE || loc.shard !== ring.shardOf(placementKey(k)) || router.threadOf(k) !== loc.shard + 1) wrong++;
  }
  t.equal(wrong, 0, 'same mapping as the ring');
  t.equal(router.shardCount, 4);
  t.ok(router.isLocal(router.locate('user:a')));
  t.equal(router.locate(keys[0]), router.locate(keys[0]), 'one location object per shard: locate allocates nothing');
});

t.test('a 1:1 thread lives with its first member; other addresses are placed by themselves', async (t) => {
  const router = new Router(4);
  let apart = 0;
  for (let i = 0; i < 2000; i++) {
    if (router.threadOf(`thread:d:u${i}:v${i}`) !== router.threadOf(`user:u${i}`)) apart++;
  }
  t.equal(apart, 0, 'thread:d:a:b is on the shard of user:a');
  t.equal(placementKey('thread:d:ann:bob'), 'user:ann');
  t.equal(placementKey('thread:g:abc'), 'thread:g:abc', 'a group is placed by its own id');
  t.equal(placementKey('user:ann'), 'user:ann');
  t.equal(placementKey('thread:d:'), 'thread:d:', 'a malformed direct id is placed by itself');
});

t.test('several nodes: every node agrees, each owns its share, a remote actor has no thread here', async (t) => {
  const layout = [{ node: 'a', shards: 2 }, { node: 'b', shards: 3 }];
  const onA = new Router(layout, 'a');
  const onB = new Router(layout, 'b');
  t.equal(onB.shardCount, 3);
  const owned = { a: 0, b: 0 };
  let disagree = 0;
  let badThread = 0;
  for (const k of keys) {
    const loc = onA.locate(k);
    const other = onB.locate(k);
    if (loc.node !== other.node || loc.shard !== other.shard) disagree++;
    owned[loc.node as 'a' | 'b']++;
    const here = loc.node === 'a' ? onA : onB;
    const there = loc.node === 'a' ? onB : onA;
    if (here.threadOf(k) !== loc.shard + 1) badThread++;
    if (there.isLocal(loc)) badThread++;
  }
  t.equal(disagree, 0, 'both nodes locate every key alike');
  t.equal(badThread, 0, 'the owner maps it to its own thread, the other does not call it local');
  const remote = keys.find((k) => onA.locate(k).node === 'b')!;
  t.throws(() => onA.threadOf(remote), RangeError, 'a remote actor has no local thread');
  t.ok(Math.abs(owned.a / keys.length - 2 / 5) < 0.05, `node a owns ~2/5 (${owned.a})`);
  t.ok(Math.abs(owned.b / keys.length - 3 / 5) < 0.05, `node b owns ~3/5 (${owned.b})`);
});

t.test('bad layouts throw RangeError', async (t) => {
  t.throws(() => new Router(0), RangeError, 'no shards');
  t.throws(() => new Router([{ node: 'a', shards: 1 }], 'b'), RangeError, 'this node not in the layout');
  t.throws(() => new Router([{ node: 'a', shards: 1 }, { node: 'a', shards: 2 }], 'a'), RangeError, 'a node twice');
  t.throws(() => new Router([{ node: 'a', shards: 1.5 }], 'a'), RangeError, 'fractional shards');
});
