// Three nodes over a real nats-server (docs/cluster.md): users connect to any node and reach
// actors on the others — 1:1, groups, channels, presence — and their logs survive a node's
// restart and a kill -9: nothing acknowledged is lost, and the other nodes keep serving.
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { login, ParleyClient, register } from '../client/index.js';
import { threadAddress, userAddress } from '../actors/router.js';
import { directThreadId } from '../protocol/ids.js';
import { startCluster } from './helpers/cluster.js';
import { natsMissing } from './helpers/nats-server.js';

t.test('three nodes', { skip: natsMissing }, async (t) => {
  const c = await startCluster(t, 3);

  /** A new device of `u`, signed in through node `via`: its token. */
  async function device(via: number, u: { username: string; password: string }): Promise<string> {
    return (await login(c.nodes[via].base, { username: u.username, password: u.password, device: `dev-${via}` })).token;
  }

  /** A client of the device `token` connected (synced) to node `via`. */
  async function connectTo(t: Test, via: number, token: string, before?: (client: ParleyClient) => void): Promise<ParleyClient> {
    const client = new ParleyClient({ url: c.nodes[via].wsUrl, token, WebSocket, reconnect: false });
    t.teardown(() => client.close());
    before?.(client);
    await client.connect();
    return client;
  }

  /** A new device of `u` signed in and connected through node `via`. */
  const on = async (t: Test, via: number, u: { username: string; password: string }) => connectTo(t, via, await device(via, u));

  t.test('1:1 across nodes: sender, recipient and thread on three different nodes', async (t) => {
    // ann lives on n2 and connects to n1; bob lives on n3 and connects to n2.
    const ann = await c.userOn(1, 0, 'ann');
    const bob = await c.userOn(2, 1, 'bob');
    const a = await on(t, 0, ann);
    const b = await on(t, 1, bob);
    const thread = directThreadId(ann.user, bob.user);
    t.not(c.nodeOf(threadAddress(thread)), 'n1', 'the thread is not on the sender\'s gateway node');
    const arrived = b.next('msg', (m) => m.body === 'across');
    const delivered = a.next('receipt', (r) => r.user === bob.user && (r.delivered ?? 0) >= 1, 20_000);
    const sent = await a.send({ to: bob.user, body: 'across' });
    t.match(await arrived, { thread: sent.thread, seq: 1, from: ann.user, body: 'across' });
    t.match(await delivered, { thread: sent.thread, delivered: 1 }, 'bob\'s ack comes back to ann as a receipt');
    const history = await b.history({ thread: sent.thread });
    t.same(history.messages.map((m) => m.body), ['across']);
  });

  t.test('the directory: a name taken on one node is taken on all; an account made on one signs in on every node', async (t) => {
    const username = `same${process.pid}`;
    const password = 'correct horse battery';
    const results = await Promise.allSettled(c.nodes.map((n) => register(n.base, { username, password })));
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one registration of the name wins, cluster-wide');
    t.match(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason), [{ status: 409 }, { status: 409 }]);
    for (let i = 0; i < c.nodes.length; i++) {
      const client = await connectTo(t, i, await device(i, { username, password }));
      t.ok(client.user, `signed in and connected through ${c.nodes[i].id}`);
    }
  });

  t.test('a group with members on every node: each message reaches each member once', async (t) => {
    const members = [await c.userOn(0, 0, 'g'), await c.userOn(1, 1, 'g'), await c.userOn(2, 2, 'g')];
    // Each connects to the node after its home: every push crosses a node.
    const clients = await Promise.all(members.map((m, i) => on(t, (i + 1) % 3, m)));
    const { thread } = await clients[0].groupCreate({ title: 'three nodes', members: [members[1].user, members[2].user] });
    const bodies = ['one', 'two', 'three'];
    const got = clients.map((cl) => {
      const seen: string[] = [];
      cl.on('msg', (m) => m.thread === thread && seen.push(m.body ?? ''));
      return seen;
    });
    const last = clients.map((cl) => cl.next('msg', (m) => m.thread === thread && m.body === 'three', 20_000));
    for (let i = 0; i < bodies.length; i++) await clients[i].send({ thread, body: bodies[i] });
    await Promise.all(last);
    for (const seen of got) t.same(seen, bodies, 'in order, once each');
  });

  t.test('a channel followed on two nodes: one publish per node, every follower gets each post', async (t) => {
    const owner = await c.userOn(0, 0, 'own');
    const f1 = await c.userOn(1, 1, 'fa');
    const f2 = await c.userOn(2, 2, 'fb');
    const o = await on(t, 2, owner);
    const name = `news${process.pid}`;
    const { channel } = await o.channelCreate({ name, title: 'News' });
    const followers = [await on(t, 1, f1), await on(t, 2, f2)];
    for (const f of followers) await f.channelJoin({ channel });
    const posts = followers.map((f) => f.next('cmsg', (m) => m.channel === channel && m.body === 'hello all', 20_000));
    await o.channelPost({ channel, body: 'hello all' });
    for (const p of await Promise.all(posts)) t.match(p, { channel, seq: 1, body: 'hello all' });
  });

  t.test('presence across nodes: a watcher on one node sees a user on another go offline', async (t) => {
    const ann = await c.userOn(2, 0, 'pa');
    const bob = await c.userOn(0, 1, 'pb');
    const a1 = await on(t, 1, ann);
    await a1.contactsAdd(bob.user); // ann lets her contacts see her presence
    const b = await on(t, 0, bob);
    t.match(await b.presenceSub([ann.user]), [{ user: ann.user, online: true }], 'the watch is answered by ann\'s actor on n3');
    const offline = b.next('presence', (p) => p.user === ann.user && !p.online, 20_000);
    a1.close();
    t.match(await offline, { user: ann.user, online: false }, 'ann going offline on n2 is pushed from n3 to bob on n1');
  });

  t.test('replay after the node holding the thread restarts: the offline recipient gets everything', async (t) => {
    const ann = await c.userOn(0, 0, 'ra');
    const bob = await c.userOn(1, 1, 'rb');
    const thread = directThreadId(ann.user, bob.user);
    const home = c.nodes.findIndex((n) => n.id === c.nodeOf(threadAddress(thread)));
    const elsewhere = [0, 1, 2].find((i) => i !== home && c.nodes[i].id !== c.nodeOf(userAddress(ann.user)) && c.nodes[i].id !== c.nodeOf(userAddress(bob.user))) ?? (home + 1) % 3;
    const bobToken = await device(elsewhere, bob);
    (await connectTo(t, elsewhere, bobToken)).close();
    const a = await on(t, (home + 1) % 3, ann);
    for (const body of ['r1', 'r2', 'r3']) await a.send({ to: bob.user, body });
    a.close();
    // A clean restart of the node holding the thread (and one user).
    c.nodes[home].server.proc.kill('SIGTERM');
    await c.nodes[home].server.exited;
    await c.restart(home);
    // Bob's device comes back (through another node): its cursor is at his log on its home node.
    const got: string[] = [];
    const again = await connectTo(t, (elsewhere + 1) % 3, bobToken, (cl) => cl.on('msg', (m) => m.thread === thread && got.push(m.body ?? '')));
    t.same(got, ['r1', 'r2', 'r3'], 'replayed in order, before synced, after the restart');
    t.same((await again.history({ thread })).messages.map((m) => m.body), ['r3', 'r2', 'r1']);
  });

  t.test('kill -9 of a node: what it acknowledged survives, the other nodes keep serving', async (t) => {
    const victim = 2;
    // dan (registered first: the smaller id) holds his thread with ann on a survivor.
    const dan = await c.userOn(1, 1, 'kd');
    let ann = await c.userOn(victim, 0, 'ka');
    while (ann.user < dan.user) ann = await c.userOn(victim, 0, 'ka');
    // A 1:1 thread lives with its first member (the smaller id): ann's, on the victim.
    let bob = await c.userOn(0, 0, 'kb');
    while (bob.user < ann.user) bob = await c.userOn(0, 0, 'kb');
    const cat = await c.userOn(1, 1, 'kc');
    const a = await on(t, 0, ann);
    const acked: number[] = [];
    for (let i = 1; i <= 20; i++) acked.push((await a.send({ to: bob.user, body: `k${i}` })).seq);
    t.equal(c.nodeOf(threadAddress(directThreadId(ann.user, bob.user))), c.nodes[victim].id, 'the thread lives on the victim');
    await c.kill(victim);
    // Bob and cat live on the survivors: they still talk.
    const b = await on(t, 0, bob);
    const k = await on(t, 1, cat);
    const arrived = k.next('msg', (m) => m.body === 'still here', 20_000);
    await b.send({ to: cat.user, body: 'still here' });
    t.match(await arrived, { from: bob.user, body: 'still here' });
    // dan writes to ann while her node is down: his thread (on n2) takes it; her copy waits.
    const d = await on(t, 1, dan);
    const danSent = await d.send({ to: ann.user, body: 'for when you are back' });
    // A send to a thread on the dead node is answered unavailable with a retry hint (not a
    // hang); the SDK keeps it and sends it again, and once the node is back it goes through.
    const retried = b.next('sendRetry', () => true, 30_000);
    const late = b.send({ to: ann.user, body: 'while it was down' });
    t.match(await retried, { error: { code: 'unavailable', retry: Number } }, 'unavailable, with retry');
    await c.restart(victim);
    const lateSeq = (await late).seq;
    // ann comes back through another node: her log has dan's message (the fan-out was re-sent
    // when her node came up), replayed before synced.
    const replayed: string[] = [];
    const annToken = await device(1, ann);
    const again = await connectTo(t, 1, annToken, (cl) => cl.on('msg', (m) => replayed.push(m.body ?? '')));
    if (!replayed.includes('for when you are back')) await again.next('msg', (m) => m.body === 'for when you are back', 20_000);
    t.ok((await again.history({ thread: danSent.thread })).messages.some((m) => m.body === 'for when you are back'), 'dan\'s message reached ann\'s log after her node returned');
    const history = await again.history({ thread: directThreadId(ann.user, bob.user), limit: 50 });
    t.same(history.messages.map((m) => m.seq).sort((x, y) => x - y), [...acked, lateSeq], 'every acknowledged message is there, and the one sent while it was down');
  });
});
