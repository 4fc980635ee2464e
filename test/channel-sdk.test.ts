// The SDK's channels (docs/sdk.md "Channels"): typed methods, `cmsg` events, and following a
// channel across reconnects: every post arrives once, in order, including those made meanwhile.
import t from 'tap';
import type { CmsgEvent, ParleyClient } from '../client/index.js';
import { channelAddress } from '../actors/router.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const FAST_RECONNECT = { reconnect: { minMs: 10, maxMs: 50 } };

/** Posts, retrying while the server says to (a shard restarting answers unavailable). */
async function postRetrying(c: ParleyClient, channel: string, body: string, cid: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await c.channelPost({ channel, body, cid });
      return;
    } catch (err) {
      if (i >= 200 || (err as { code?: string }).code !== 'unavailable') throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

t.test('typed channel methods and cmsg events', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  const { channel } = await a.channelCreate({ name: 'sdk.chan', title: 'SDK', mode: 'open' });
  t.match(await b.channelGet({ name: 'sdk.chan' }), { channel, mode: 'open', owner: ann.user, seq: 0 });
  const got: CmsgEvent[] = [];
  b.on('cmsg', (e) => got.push(e));
  t.match(await b.channelJoin({ channel }), { seq: 0 });
  t.same([...b.channels], [[channel, 0]]);
  const arrived = b.next('cmsg', (e) => e.seq === 1);
  const first = await a.channelPost({ channel, body: 'hello', cid: 'same' });
  t.same(await a.channelPost({ channel, body: 'hello', cid: 'same' }), first, 'one post per cid');
  await arrived;
  t.match(got, [{ channel, seq: 1, from: ann.user, body: 'hello' }]);
  await b.channelPost({ channel, body: 'a comment' });
  t.same((await a.channelHistory({ channel })).messages.map((m) => m.body), ['a comment', 'hello']);
  await a.channelAdmin({ channel, user: bob.user, admin: true });
  await b.channelLeave({ channel });
  t.same([...b.channels], [], 'left: no longer followed');
});

t.test('after a reconnect the SDK joins again from the newest seq it saw: every post once, in order', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann), FAST_RECONNECT);
  const b = await connect(t, s, await newDevice(s, bob), FAST_RECONNECT);
  const { channel } = await a.channelCreate({ name: 'sdk.rejoin', title: 'R' });
  const got: number[] = [];
  b.on('cmsg', (e) => got.push(e.seq));
  await b.channelJoin({ channel });
  const third = b.next('cmsg', (e) => e.seq === 3);
  for (let i = 1; i <= 3; i++) await a.channelPost({ channel, body: `p${i}`, cid: `p${i}` });
  await third;

  // The channel's shard dies: the server closes its followers with 1012; bob reconnects by himself.
  const shard = s.server.cluster.router.threadOf(channelAddress(channel));
  const dropped = b.next('close', (c) => c.willReconnect, 10_000);
  await s.server.cluster.killShard(shard);
  await dropped;
  await s.server.cluster.shardReady(shard);
  const eighth = b.next('cmsg', (e) => e.seq === 8, 20_000);
  for (let i = 4; i <= 8; i++) await postRetrying(a, channel, `p${i}`, `p${i}`);
  await eighth;
  const ninth = b.next('cmsg', (e) => e.seq === 9, 10_000);
  await a.channelPost({ channel, body: 'p9', cid: 'p9' });
  await ninth;
  t.same(got, [1, 2, 3, 4, 5, 6, 7, 8, 9], 'the posts made while away came once, in order, then live again');
  t.equal(b.channels.get(channel), 9);
});
