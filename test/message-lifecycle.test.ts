// Message lifecycle (docs/protocol.md "Message lifecycle") against the real server and SDK:
// edit, delete (for everyone / for me), react / unreact, reply validation and quotes, forward —
// each happy path and its errors; edits and deletes reach every device of every member exactly
// once, replay shows the msg and then the change, and acknowledged changes survive kill -9.
// Reaction coalescing is checked on a real shard, where one batch is the test's to make.
import t from 'tap';
import { Kind, type ActorMessage, type Envelope } from '../actors/envelope.js';
import type { ClientCommand } from '../actors/messages.js';
import { threadAddress } from '../actors/router.js';
import { downloadMedia, uploadMedia, type ParleyClient } from '../client/index.js';
import { ServerFrame } from '../protocol/codes.js';
import { directThreadId } from '../protocol/ids.js';
import { decodeFrame } from '../protocol/wire.js';
import { startChildServer } from './helpers/child-server.js';
import { answerOf, shardHarness } from './helpers/shard-harness.js';
import { client, collect, connect, newDevice, newUser, startTestServer, tempDataDir, until, type TestDevice } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

type Ev = Record<string, any>;
interface Member { user: string; devices: TestDevice[]; clients: ParleyClient[]; events: Ev[][] }

/** A user with two connected devices, each collecting every event. */
async function member(t: { teardown(fn: () => unknown): void }, s: { base: string; wsUrl: string }, prefix: string): Promise<Member> {
  const u = await newUser(s, prefix);
  const devices = [await newDevice(s, u, 'phone'), await newDevice(s, u, 'laptop')];
  const clients: ParleyClient[] = [];
  const events: Ev[][] = [];
  for (const d of devices) {
    const c = client(t, s, d);
    events.push(collect(c, 'event'));
    await c.connect();
    clients.push(c);
  }
  return { user: u.user, devices, clients, events };
}

/** The default-config server of the subtests below that need nothing else; each makes its own members and threads. */
const shared = sharedServer(t);

const of = (events: Ev[], type: string, thread: string) => events.filter((e) => e.t === type && e.thread === thread);

/** Waits until every device of every member has logged a msg with this body (a sentinel sent after what is checked). */
async function sentinel(members: Member[], from: Member, thread: string, body: string): Promise<void> {
  await from.clients[0].send({ thread, body });
  for (const m of members) {
    for (let i = 0; i < m.clients.length; i++) await until(m.clients[i], () => of(m.events[i], 'msg', thread).some((e) => e.body === body));
  }
}

t.test('edit: every device of every member gets one edit event; history has the new body; replay shows msg, then edit', async (t) => {
  const s = await shared();
  const [ann, bob] = [await member(t, s, 'ann'), await member(t, s, 'bob')];
  const sent = await ann.clients[0].send({ to: bob.user, body: 'helo' });
  const thread = sent.thread;
  const { edited } = await ann.clients[1].edit({ thread, seq: sent.seq, body: 'hello' });
  t.type(edited, 'number');
  await sentinel([ann, bob], bob, thread, 'after the edit');
  for (const m of [ann, bob]) {
    for (const events of m.events) {
      const edits = of(events, ServerFrame.edit, thread);
      t.equal(edits.length, 1, 'exactly one edit event on this device');
      t.match(edits[0], { thread, seq: sent.seq, body: 'hello', edited });
    }
  }
  const page = await bob.clients[0].history({ thread });
  const m = page.messages.find((x) => x.seq === sent.seq)!;
  t.equal(m.body, 'hello', 'history returns the latest body');
  t.equal(m.edited, edited, 'with the time of the edit');

  // A device replaying the whole log sees the message as it was sent, then the edit.
  const replaying = client(t, s, bob.devices[1], { since: 0 });
  const replay = collect(replaying, 'event');
  await replaying.connect();
  const mine = replay.filter((e) => e.thread === thread && e.seq === sent.seq && (e.t === ServerFrame.msg || e.t === ServerFrame.edit));
  t.same(mine.map((e) => [e.t, e.body]), [[ServerFrame.msg, 'helo'], [ServerFrame.edit, 'hello']], 'replay: the original msg, then the edit');
  t.ok(mine[0].u < mine[1].u);
  t.same(replaying.lastU > 0, true);
});

t.test('edit errors: not the author, unknown seq, not a member, no such thread, too large', async (t) => {
  const s = await shared();
  const [ann, bob, carol] = [await member(t, s, 'ann'), await member(t, s, 'bob'), await member(t, s, 'carol')];
  const sent = await ann.clients[0].send({ to: bob.user, body: 'mine' });
  const thread = sent.thread;
  await t.rejects(bob.clients[0].edit({ thread, seq: sent.seq, body: 'x' }), { code: 'forbidden', message: /author/ }, 'not the author');
  await t.rejects(ann.clients[0].edit({ thread, seq: 99, body: 'x' }), { code: 'not_found' }, 'unknown seq');
  await t.rejects(carol.clients[0].edit({ thread, seq: sent.seq, body: 'x' }), { code: 'forbidden' }, 'not a member');
  await t.rejects(ann.clients[0].edit({ thread: 'g:nosuchgroup', seq: 1, body: 'x' }), { code: 'not_found' }, 'no such thread');
  await t.rejects(ann.clients[0].edit({ thread, seq: sent.seq, body: 'x'.repeat(16 * 1024 + 1) }), { code: 'too_large' });
  await t.rejects(ann.clients[0].edit({ thread, seq: sent.seq, body: '' }), { code: 'bad_frame' }, 'an empty body');
  await t.rejects(ann.clients[0].request('edit', { thread, seq: 0, body: 'x' }), { code: 'bad_frame' }, 'seq 0');
  await ann.clients[0].deleteMessage({ thread, seq: sent.seq, forEveryone: true });
  await t.rejects(ann.clients[0].edit({ thread, seq: sent.seq, body: 'x' }), { code: 'not_found' }, 'a deleted message');
});

t.test('the window: EDIT_WINDOW 0 closes edit and delete-for-everyone at once; admins delete any time; delete for me stays open', async (t) => {
  const s = await startTestServer(t, { editWindowMs: 0 });
  const [ann, bob] = [await member(t, s, 'ann'), await member(t, s, 'bob')];
  const sent = await ann.clients[0].send({ to: bob.user, body: 'too late' });
  await t.rejects(ann.clients[0].edit({ thread: sent.thread, seq: sent.seq, body: 'x' }), { code: 'forbidden', message: /window/ }, 'edit: window passed');
  await t.rejects(ann.clients[0].deleteMessage({ thread: sent.thread, seq: sent.seq, forEveryone: true }), { code: 'forbidden', message: /window/ }, 'delete for everyone: window passed');
  await ann.clients[0].deleteMessage({ thread: sent.thread, seq: sent.seq, forEveryone: false });

  const { thread: group } = await ann.clients[0].request('group.create', { title: 'g', members: [bob.user] });
  const bobs = await bob.clients[0].send({ thread: group, body: 'from bob' });
  await t.rejects(bob.clients[0].deleteMessage({ thread: group, seq: bobs.seq, forEveryone: true }), { code: 'forbidden', message: /window/ }, 'a member: window passed');
  const { deleted } = await ann.clients[0].deleteMessage({ thread: group, seq: bobs.seq, forEveryone: true });
  t.type(deleted, 'number', 'the admin deletes a member\'s message after the window');
  t.match((await bob.clients[0].history({ thread: group })).messages.find((m) => m.seq === bobs.seq), { deleted });
});

t.test('delete for everyone: a tombstone in history, one deleted event per device, the media reference dropped', async (t) => {
  const s = await shared();
  const [ann, bob] = [await member(t, s, 'ann'), await member(t, s, 'bob')];
  const media = await uploadMedia(s.base, ann.devices[0].token, new TextEncoder().encode('a picture'), { mime: 'image/png' });
  const sent = await ann.clients[0].send({ to: bob.user, body: 'look', media });
  const thread = sent.thread;
  t.equal((await downloadMedia(s.base, bob.devices[0].token, media)).mime, 'image/png', 'bob may download it while a message carries it');
  await t.rejects(bob.clients[0].deleteMessage({ thread, seq: sent.seq, forEveryone: true }), { code: 'forbidden' }, 'not the author');
  await t.rejects(ann.clients[0].deleteMessage({ thread, seq: 42, forEveryone: true }), { code: 'not_found' }, 'unknown seq');
  const { deleted } = await ann.clients[0].deleteMessage({ thread, seq: sent.seq, forEveryone: true });
  t.same(await ann.clients[1].deleteMessage({ thread, seq: sent.seq, forEveryone: true }), { deleted }, 'deleting again answers the same tombstone');
  await sentinel([ann, bob], bob, thread, 'after the delete');
  for (const m of [ann, bob]) {
    for (const events of m.events) t.same(of(events, ServerFrame.deleted, thread).map((e) => [e.seq, e.deleted, e.forEveryone]), [[sent.seq, deleted, true]], 'one deleted event');
  }
  const tomb = (await bob.clients[0].history({ thread })).messages.find((m) => m.seq === sent.seq)!;
  t.equal(tomb.deleted, deleted);
  t.notOk('body' in tomb || 'media' in tomb, 'no body or media left');
  await t.rejects(downloadMedia(s.base, bob.devices[0].token, media), { code: 'not_found' }, 'no message carries the media: bob may no longer read it');
  await t.rejects(bob.clients[0].request('react', { thread, seq: sent.seq, emoji: '👍' }), { code: 'not_found' }, 'no reactions to a tombstone');
});

t.test('delete for me: gone from my history on all my devices, not from anyone else\'s; pages stay full', async (t) => {
  const s = await shared();
  const [ann, bob] = [await member(t, s, 'ann'), await member(t, s, 'bob')];
  const sent = [];
  for (let i = 1; i <= 6; i++) sent.push(await bob.clients[0].send({ to: ann.user, body: `m${i}` }));
  const thread = sent[0].thread;
  for (const i of [3, 4]) await ann.clients[0].deleteMessage({ thread, seq: sent[i].seq, forEveryone: false });
  await t.rejects(bob.clients[0].deleteMessage({ thread, seq: 77, forEveryone: false }), { code: 'not_found' });
  await sentinel([ann, bob], bob, thread, 'after hiding');
  for (const events of ann.events) t.same(of(events, ServerFrame.deleted, thread).map((e) => [e.seq, e.forEveryone]), [[4, false], [5, false]], 'both of ann\'s devices are told');
  for (const events of bob.events) t.equal(of(events, ServerFrame.deleted, thread).length, 0, 'bob is not told');
  const annPage = await ann.clients[1].history({ thread, limit: 3, before: 7 });
  t.same(annPage.messages.map((m) => m.seq), [6, 3, 2], 'a page skips the hidden ones and is filled from beyond them');
  t.equal(annPage.more, true);
  const forward = await ann.clients[1].history({ thread, after: 2, limit: 3 });
  t.same(forward.messages.map((m) => m.seq), [3, 6, 7]);
  t.same((await bob.clients[0].history({ thread, before: 7 })).messages.map((m) => m.seq), [6, 5, 4, 3, 2, 1], 'bob still has them all');
  await t.rejects(ann.clients[0].send({ thread, body: 're', reply: 4 }), { code: 'not_found' }, 'a hidden message cannot be replied to');
  await t.rejects(ann.clients[0].request('react', { thread, seq: 4, emoji: '👍' }), { code: 'not_found' }, 'nor reacted to');
});

t.test('reactions: one per user, counts and your own in history, events to every device, emoji validated', async (t) => {
  const s = await shared();
  const [ann, bob, carol] = [await member(t, s, 'ann'), await member(t, s, 'bob'), await member(t, s, 'carol')];
  const { thread } = await ann.clients[0].request('group.create', { title: 'g', members: [bob.user, carol.user] });
  const sent = await ann.clients[0].send({ thread, body: 'react to me' });
  await bob.clients[0].react({ thread, seq: sent.seq, emoji: '👍' });
  await carol.clients[0].react({ thread, seq: sent.seq, emoji: '👍' });
  await ann.clients[0].react({ thread, seq: sent.seq, emoji: '❤️' });
  await bob.clients[1].react({ thread, seq: sent.seq, emoji: '😂' }); // replaces bob's 👍
  await carol.clients[0].unreact({ thread, seq: sent.seq });
  await carol.clients[0].unreact({ thread, seq: sent.seq }); // nothing to take back: no event
  const seen = (await ann.clients[0].history({ thread })).messages.find((m) => m.seq === sent.seq)!;
  t.same(seen.reactions, { '❤️': 1, '😂': 1 }, 'counts per emoji');
  t.equal(seen.myReaction, '❤️', 'and the caller\'s own');
  const bobView = (await bob.clients[0].history({ thread })).messages.find((m) => m.seq === sent.seq)!;
  t.equal(bobView.myReaction, '😂');
  await sentinel([ann, bob, carol], carol, thread, 'after reacting');
  for (const m of [ann, bob, carol]) {
    for (const events of m.events) {
      t.same(of(events, ServerFrame.reaction, thread).map((e) => [e.user, e.emoji]),
        [[bob.user, '👍'], [carol.user, '👍'], [ann.user, '❤️'], [bob.user, '😂'], [carol.user, null]], 'every change, in order, once');
    }
  }
  // Two per socket: a socket that keeps sending bad frames is closed (docs/protocol.md §2).
  for (const [i, emoji] of ['', 'a b', '😀😀😀😀😀', '\u0007'].entries()) {
    await t.rejects(bob.clients[i >> 1].react({ thread, seq: sent.seq, emoji }), { code: 'bad_frame' }, `emoji ${JSON.stringify(emoji)} refused`);
  }
  await bob.clients[0].react({ thread, seq: sent.seq, emoji: '👍🏽' }); // a skin tone: one grapheme, 8 bytes
  await t.rejects(bob.clients[0].react({ thread, seq: 99, emoji: '👍' }), { code: 'not_found' }, 'unknown seq');
  const dan = await member(t, s, 'dan');
  await t.rejects(dan.clients[0].react({ thread, seq: sent.seq, emoji: '👍' }), { code: 'forbidden' }, 'not a member');
});

t.test('reactions coalesce: several changes in one batch give one event per message and user, with the final state', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  h.gate.open();
  const thread = directThreadId('ann', 'bob');
  h.batch([h.send(1, 'ann', 'bob', 'hi')]);
  t.match(answerOf(await h.reply(1)), { t: ServerFrame.ok, seq: 1 });
  await h.settle();
  const cmd = (id: number, user: string, frame: ClientCommand['frame']): Envelope => {
    const msg: ClientCommand = { op: 'cmd', caller: { user, device: 'phone', r: id }, frame };
    return [Kind.ask, threadAddress(thread), msg as ActorMessage, 0, id];
  };
  h.batch([
    cmd(2, 'ann', { t: 'react', thread, seq: 1, emoji: '👍' }),
    cmd(3, 'ann', { t: 'react', thread, seq: 1, emoji: '❤️' }),
    cmd(4, 'ann', { t: 'unreact', thread, seq: 1 }),
    cmd(5, 'ann', { t: 'react', thread, seq: 1, emoji: '😂' }),
    cmd(6, 'bob', { t: 'react', thread, seq: 1, emoji: '🎉' }),
    cmd(7, 'bob', { t: 'unreact', thread, seq: 1 }),
  ]);
  for (let id = 2; id <= 7; id++) t.match(answerOf(await h.reply(id)), { t: ServerFrame.ok });
  await h.settle();
  h.storage.refresh();
  for (const user of ['ann', 'bob']) {
    const frames = [...h.storage.db.userLog.getRange({ start: [user, 0], end: [user, Number.MAX_SAFE_INTEGER] })].map(({ value }) => decodeFrame(value) as Ev);
    t.same(frames.filter((f) => f.t === ServerFrame.reaction).map((f) => [f.user, f.emoji]), [['ann', '😂']], `${user}'s log: one event, the final state; none for a change undone in the batch`);
  }
  t.same(h.storage.db.threadLog.get([thread, 1])?.reactions, { ann: '😂' });
});

t.test('reply: the seq must be visible to the sender; history quotes the original', async (t) => {
  const s = await shared();
  const [ann, bob, dan] = [await member(t, s, 'ann'), await member(t, s, 'bob'), await member(t, s, 'dan')];
  const { thread } = await ann.clients[0].request('group.create', { title: 'g', members: [bob.user] });
  const long = 'é'.repeat(150);
  const original = await ann.clients[0].send({ thread, body: long });
  // Waited for from before the send: ann's copy may arrive before bob's ok (same commit).
  const annGets = ann.clients[0].next('msg', (m) => m.thread === thread && m.body === 'indeed');
  const reply = await bob.clients[0].send({ thread, body: 'indeed', reply: original.seq });
  const msgEvent = await annGets;
  t.equal(msgEvent.seq, reply.seq);
  t.match(msgEvent, { reply: original.id, replySeq: original.seq }, 'the msg names the original by id and seq');
  const page = await ann.clients[0].history({ thread });
  const shown = page.messages.find((m) => m.seq === reply.seq)!;
  t.same(shown.quote, { seq: original.seq, from: ann.user, body: 'é'.repeat(100) }, 'a quote: author and the first 100 characters');
  await t.rejects(bob.clients[0].send({ thread, body: 'x', reply: 99 }), { code: 'not_found' }, 'an unknown seq');
  await ann.clients[0].request('group.add', { thread, users: [dan.user] });
  await t.rejects(dan.clients[0].send({ thread, body: 'x', reply: original.seq }), { code: 'not_found' }, 'a message from before the sender joined');
  await ann.clients[0].deleteMessage({ thread, seq: original.seq, forEveryone: true });
  await sentinel([ann, bob, dan], bob, thread, 'after the delete');
  for (const events of bob.events) t.equal(of(events, ServerFrame.deleted, thread).length, 1, 'a member from before the message is told of its deletion');
  for (const events of dan.events) t.equal(of(events, ServerFrame.deleted, thread).length, 0, 'one who joined after it is not');
  const after = (await bob.clients[0].history({ thread })).messages.find((m) => m.seq === reply.seq)!;
  t.match(after.quote, { seq: original.seq, from: ann.user, deleted: Number });
  t.notOk(after.quote && 'body' in after.quote, 'a deleted original is quoted without its body');
  await t.rejects(bob.clients[0].send({ thread, body: 'x', reply: original.seq }), { code: 'not_found' }, 'a deleted message');
  const v1 = await bob.clients[0].send({ thread, body: 'old style', reply: 'someMessageId' });
  t.notOk((await bob.clients[0].history({ thread })).messages.find((m) => m.seq === v1.seq)!.quote, 'a v1 id reply is kept as given, not quoted');
});

t.test('forward: copies a readable message into another thread, marked forwarded, media carried; errors', async (t) => {
  const s = await shared();
  const [ann, bob, carol] = [await member(t, s, 'ann'), await member(t, s, 'bob'), await member(t, s, 'carol')];
  const media = await uploadMedia(s.base, bob.devices[0].token, new TextEncoder().encode('bob\'s file'), { mime: 'text/plain', name: 'f.txt' });
  const src = await bob.clients[0].send({ to: ann.user, body: 'pass it on', media });
  const from = { thread: src.thread, seq: src.seq };
  await t.rejects(downloadMedia(s.base, carol.devices[0].token, media), { code: 'not_found' }, 'carol cannot read bob\'s media yet');
  // Waited for from before the forward: carol's copy may arrive before ann's ok (same commit).
  const carolGets = carol.clients[0].next('msg', (m) => m.thread === directThreadId(ann.user, carol.user) && m.forwarded === true);
  const fwd = await ann.clients[0].forward({ from, to: { to: carol.user }, cid: 'fwd-1' });
  t.equal(fwd.thread, directThreadId(ann.user, carol.user));
  const got = await carolGets;
  t.equal(got.seq, fwd.seq);
  t.match(got, { from: ann.user, body: 'pass it on', forwarded: true, media: { id: media } });
  t.equal((await downloadMedia(s.base, carol.devices[0].token, media)).mime, 'text/plain', 'the forwarded message carries the media: carol may read it');
  t.match((await carol.clients[0].history({ thread: fwd.thread })).messages[0], { forwarded: true, body: 'pass it on' });
  const again = await ann.clients[1].forward({ from, to: { thread: fwd.thread }, cid: 'fwd-1' });
  t.same([again.seq, again.id], [fwd.seq, fwd.id], 'the same cid forwards once');

  await t.rejects(carol.clients[0].forward({ from, to: { to: bob.user } }), { code: 'forbidden' }, 'not a member of the source');
  await t.rejects(ann.clients[0].forward({ from: { thread: src.thread, seq: 50 }, to: { to: carol.user } }), { code: 'not_found' }, 'unknown seq');
  await t.rejects(ann.clients[0].forward({ from: { thread: 'g:nothing', seq: 1 }, to: { to: carol.user } }), { code: 'not_found' }, 'no such thread');
  await t.rejects(carol.clients[0].forward({ from: { thread: fwd.thread, seq: fwd.seq }, to: { thread: src.thread } }), { code: 'forbidden' }, 'the target is not the caller\'s');
  await carol.clients[0].request('block', { user: ann.user });
  await t.rejects(ann.clients[0].forward({ from, to: { to: carol.user } }), { code: 'forbidden' }, 'blocked by the receiver');
  await t.rejects(ann.clients[0].request('forward', { from, to: { thread: fwd.thread, to: carol.user }, cid: 'x' }), { code: 'bad_frame' }, 'both thread and to');
  await ann.clients[0].deleteMessage({ thread: src.thread, seq: src.seq, forEveryone: false });
  await t.rejects(ann.clients[0].forward({ from, to: { to: bob.user } }), { code: 'not_found' }, 'a message deleted for the caller');
});

t.test('acknowledged edits, deletes and reactions survive kill -9: every device replays each once, after its msg', async (t) => {
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [annU, bobU] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const annDevices = [await newDevice(first, annU, 'phone'), await newDevice(first, annU, 'laptop')];
  const bobDevices = [await newDevice(first, bobU, 'phone'), await newDevice(first, bobU, 'laptop')];
  const ann = await connect(t, first, annDevices[0]);
  const bob = await connect(t, first, bobDevices[0]);
  const N = 60;
  const sent = [];
  for (let i = 1; i <= N; i++) sent.push(await ann.send({ to: bobU.user, body: `v1 ${i}` }));
  const thread = sent[0].thread;
  // All in flight at once; the process dies at the 40th ok, with commit groups and fan-outs open.
  const acked: { kind: string; seq: number }[] = [];
  const ops = sent.flatMap(({ seq }) => [
    ['edit', seq, () => ann.edit({ thread, seq, body: `v2 ${seq}` })],
    ['reaction', seq, () => bob.react({ thread, seq, emoji: '👍' })],
    ...(seq % 3 === 0 ? [['deleted', seq, () => bob.deleteMessage({ thread, seq, forEveryone: false })]] : []),
  ] as [string, number, () => Promise<unknown>][]);
  await Promise.allSettled(ops.map(([kind, seq, run]) => run().then(() => {
    acked.push({ kind, seq });
    if (acked.length === 40) first.proc.kill('SIGKILL');
  })));
  t.equal((await first.exited).signal, 'SIGKILL');
  t.ok(acked.length >= 40 && acked.length < ops.length, `killed with changes in flight (${acked.length} of ${ops.length} acknowledged)`);
  await ann.close();
  await bob.close();

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const logs = new Map<string, Ev[]>();
  const clients: [string, ParleyClient][] = [];
  for (const [who, d] of [...annDevices.map((d) => ['ann', d] as const), ...bobDevices.map((d) => ['bob', d] as const)]) {
    const c = client(t, second, d, { since: 0 });
    const events = collect(c, 'event');
    logs.set(`${who} ${d.device}`, events);
    clients.push([who, c]);
    await c.connect();
  }
  // Recovery re-sends what the crash left unlogged: wait for every acknowledged change to arrive.
  const expected = (who: string) => acked.filter((a) => a.kind !== 'deleted' || who === 'bob');
  const has = (events: Ev[], a: { kind: string; seq: number }) => events.some((e) => e.t === a.kind && e.thread === thread && e.seq === a.seq);
  for (const [who, c] of clients) {
    const events = logs.get([...logs.keys()][clients.findIndex(([, x]) => x === c)])!;
    await until(c, () => expected(who).every((a) => has(events, a)), 30_000);
  }
  for (const [name, events] of logs) {
    const mine = events.filter((e) => e.thread === thread);
    t.same(mine.map((e) => e.u), [...new Set(mine.map((e) => e.u))], `${name}: no u twice`);
    let dup = 0;
    let early = 0;
    for (const kind of ['edit', 'reaction', 'deleted']) {
      for (const { seq } of sent) {
        const changes = mine.filter((e) => e.t === kind && e.seq === seq);
        if (changes.length > 1) dup++;
        const msg = mine.find((e) => e.t === ServerFrame.msg && e.seq === seq);
        if (changes.length === 1 && (!msg || msg.u > changes[0].u)) early++;
      }
    }
    t.equal(dup, 0, `${name}: every change logged at most once`);
    t.equal(early, 0, `${name}: every change after its msg`);
    if (name.startsWith('ann')) t.equal(mine.filter((e) => e.t === ServerFrame.deleted).length, 0, `${name}: bob's delete-for-me is not ann's`);
  }
  const annAgain = clients[0][1];
  const history = await annAgain.history({ thread, limit: 100 });
  for (const a of acked.filter((x) => x.kind === 'edit')) {
    t.equal(history.messages.find((m) => m.seq === a.seq)?.body, `v2 ${a.seq}`, `edit of ${a.seq} is in history`);
  }
});

/** Resolves once every shard completed a retention pass that started after `time` (ms), read from /metrics. */
async function sweepStartedAfter(base: string, time: number, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(`${base}/metrics`)).text();
    const started = text.split('\n').filter((l) => l.startsWith('parley_retention_last_sweep_timestamp_seconds')).map((l) => Number(l.split(' ').pop()));
    if (started.length > 0 && Math.min(...started) * 1000 > time) return;
    if (Date.now() > end) throw new Error(`no sweep pass started after ${time}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('retention sweeps an edited, reacted, hidden message whole: history forgets it and no change brings it back', async (t) => {
  const RETENTION = 2000;
  const s = await startTestServer(t, { retentionMs: RETENTION, retentionSweepMs: 200 });
  const [ann, bob] = [await member(t, s, 'ann'), await member(t, s, 'bob')];
  const sent = await ann.clients[0].send({ to: bob.user, body: 'short-lived' });
  const thread = sent.thread;
  await ann.clients[0].edit({ thread, seq: sent.seq, body: 'edited, still short-lived' });
  await bob.clients[0].react({ thread, seq: sent.seq, emoji: '👍' });
  await bob.clients[0].deleteMessage({ thread, seq: sent.seq, forEveryone: false });
  // Swept by the message's own ts (edits do not make it younger): a pass started RETENTION after it.
  await sweepStartedAfter(s.base, sent.ts + RETENTION);
  await sweepStartedAfter(s.base, Date.now());
  t.same((await ann.clients[0].history({ thread })).messages, [], 'ann\'s history forgets it');
  await t.rejects(ann.clients[0].edit({ thread, seq: sent.seq, body: 'again' }), { code: 'not_found' }, 'an edit of a swept message');
  await t.rejects(ann.clients[0].request('react', { thread, seq: sent.seq, emoji: '👍' }), { code: 'not_found' }, 'a reaction to it');
  await t.rejects(ann.clients[0].deleteMessage({ thread, seq: sent.seq, forEveryone: true }), { code: 'not_found' }, 'a delete of it');
  t.same((await ann.clients[0].history({ thread })).messages, [], 'nothing rewrote it back');
});
