// Search (docs/protocol.md "Search") against the real server and SDK: words are found case- and
// accent-insensitively, all of them (AND), newest first across the caller's threads, with
// highlights; pages follow the cursor without gaps or repeats; only the caller's own threads, from
// their join on; edits, deletes and retention update what is found; SEARCH=off writes no index;
// an acknowledged message is found after kill -9. Most subtests share one server, each with its
// own users.
import t from 'tap';
import type { ParleyClient, SearchParams } from '../client/index.js';
import { startChildServer } from './helpers/child-server.js';
import { metricSeries } from './helpers/metrics.js';
import { rawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir, type TestServer } from './helpers/server.js';
import { openStorage } from '../storage/env.js';
import { mayHoldAll, termProbes } from '../storage/search-blocks.js';

interface Person { user: string; c: ParleyClient }
interface Found { thread: string; seq: number; id: string; body?: string; highlights: [number, number][] }
interface Page { messages: Found[]; more: boolean; cursor?: string }

async function person(t: any, s: { base: string; wsUrl: string }, name: string): Promise<Person> {
  const u = await newUser(s, name);
  return { user: u.user, c: await connect(t, s, await newDevice(s, u)) };
}

const search = (p: Person, q: SearchParams): Promise<Page> => p.c.search(q) as Promise<Page>;
const bodies = (page: Page) => page.messages.map((m) => m.body);

t.test('search', async (t) => {
  const s = await startTestServer(t);

  t.test('finds every word, case and accents aside, newest first across threads, with highlights', async (t) => {
    const [ann, bob, cat] = [await person(t, s, 'ann'), await person(t, s, 'bob'), await person(t, s, 'cat')];
    await ann.c.send({ to: bob.user, body: 'Lunch at the Café tomorrow?' });
    await bob.c.send({ to: ann.user, body: 'no lunch for me' });
    const { thread: group } = await ann.c.request<{ thread: string }>('group.create', { title: 'team', members: [bob.user, cat.user] });
    await cat.c.send({ thread: group, body: 'CAFE LUNCH: who is in?' });
    await bob.c.send({ to: cat.user, body: 'lunch cafe, just us two' }); // not ann's thread

    const page = await search(ann, { q: 'cafe lunch' });
    t.same(bodies(page), ['CAFE LUNCH: who is in?', 'Lunch at the Café tomorrow?'], 'both words, in ann\'s threads only, newest first');
    t.equal(page.more, false);
    t.same(page.messages[1].highlights, [[0, 5], [13, 17]], 'highlights: [start, end) of each matched word in the body');
    t.equal(page.messages[0].thread, group);
    t.same(bodies(await search(ann, { q: 'LUNCH' })), ['CAFE LUNCH: who is in?', 'no lunch for me', 'Lunch at the Café tomorrow?']);
    t.same(bodies(await search(ann, { q: 'lunch', thread: group })), ['CAFE LUNCH: who is in?'], 'thread: only that thread');
    t.same(bodies(await search(ann, { q: 'lunch dinner' })), [], 'every word must be there');
    t.same(bodies(await search(ann, { q: 'lun' })), [], 'whole words, not prefixes');
  });

  t.test('scripts without spaces, long words, punctuation', async (t) => {
    const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
    const long = 'a'.repeat(40);
    await ann.c.send({ to: bob.user, body: '東京タワーに行きます' });
    await ann.c.send({ to: bob.user, body: `the word ${long} is long; e-mail me` });
    t.same(bodies(await search(bob, { q: '東京' })), ['東京タワーに行きます'], 'each Han/kana character is a word');
    t.same(bodies(await search(bob, { q: long })), [`the word ${long} is long; e-mail me`], 'a word longer than 32 characters');
    t.same(bodies(await search(bob, { q: 'email' })), [], '"e-mail" is two words');
    t.equal((await search(bob, { q: 'e mail' })).messages.length, 1);
  });

  t.test('pages: limit and cursor give every match once, in order, across threads', async (t) => {
    const [ann, bob, cat] = [await person(t, s, 'ann'), await person(t, s, 'bob'), await person(t, s, 'cat')];
    const sent: string[] = [];
    for (let i = 0; i < 9; i++) {
      const body = `report number ${i}`;
      await ann.c.send({ to: i % 2 === 0 ? bob.user : cat.user, body });
      if (i % 3 === 0) await ann.c.send({ to: bob.user, body: `filler ${i}` });
      sent.push(body);
    }
    const seen: string[] = [];
    let before: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await search(ann, { q: 'report', limit: 4, ...(before ? { before } : {}) });
      seen.push(...bodies(page) as string[]);
      if (!page.more) break;
      t.ok(page.cursor, 'more comes with a cursor');
      before = page.cursor;
    }
    t.same(seen, [...sent].reverse(), 'all nine, newest first, none twice');
    const inThread = await search(ann, { q: 'report', thread: (await search(ann, { q: 'report' })).messages[0].thread, limit: 2 });
    t.same(bodies(inThread), ['report number 8', 'report number 6']);
    t.same(bodies(await search(ann, { q: 'report', thread: inThread.messages[0].thread, before: inThread.cursor })), ['report number 4', 'report number 2', 'report number 0']);
  });

  t.test('membership: not a member, no such thread, history from the join on, gone after leaving', async (t) => {
    const [ann, bob, cat] = [await person(t, s, 'ann'), await person(t, s, 'bob'), await person(t, s, 'cat')];
    const { thread } = await ann.c.send({ to: bob.user, body: 'secret plan' });
    await t.rejects(search(cat, { q: 'secret', thread }), { code: 'forbidden' }, 'someone else\'s thread');
    await t.rejects(search(cat, { q: 'secret', thread: 'g_nosuchthread' }), { code: 'not_found' });
    t.same(bodies(await search(cat, { q: 'secret' })), []);

    const { thread: group } = await ann.c.request<{ thread: string }>('group.create', { title: 'g', members: [bob.user] });
    await ann.c.send({ thread: group, body: 'before cat joined: banana' });
    await ann.c.request('group.add', { thread: group, users: [cat.user] });
    await ann.c.send({ thread: group, body: 'after cat joined: banana' });
    t.same(bodies(await search(cat, { q: 'banana' })), ['after cat joined: banana'], 'a member added later finds only what they can read');
    t.same(bodies(await search(bob, { q: 'banana' })), ['after cat joined: banana', 'before cat joined: banana']);
    await bob.c.request('group.leave', { thread: group });
    t.same(bodies(await search(bob, { q: 'banana' })), [], 'a member who left finds nothing of the group');
    await t.rejects(search(bob, { q: 'banana', thread: group }), { code: 'forbidden' });
  });

  t.test('edits and deletes: the new words are found, the old and the deleted are not', async (t) => {
    const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
    const a = await ann.c.send({ to: bob.user, body: 'meet at the statoin' });
    const b = await ann.c.send({ to: bob.user, body: 'bring the tickets' });
    const c = await bob.c.send({ to: ann.user, body: 'tickets are mine' });
    await ann.c.edit({ thread: a.thread, seq: a.seq, body: 'meet at the station' });
    t.same(bodies(await search(bob, { q: 'statoin' })), [], 'the word edited away');
    t.same(bodies(await search(bob, { q: 'station meet' })), ['meet at the station'], 'the edited body');
    t.same(bodies(await search(bob, { q: 'meet' })), ['meet at the station'], 'unchanged words still there, once');

    await ann.c.deleteMessage({ thread: b.thread, seq: b.seq, forEveryone: true });
    t.same(bodies(await search(bob, { q: 'tickets' })), ['tickets are mine'], 'deleted for everyone: found by no one');
    t.same(bodies(await search(ann, { q: 'tickets' })), ['tickets are mine']);
    await ann.c.deleteMessage({ thread: c.thread, seq: c.seq, forEveryone: false });
    t.same(bodies(await search(ann, { q: 'tickets' })), [], 'deleted for me: not found by me');
    t.same(bodies(await search(bob, { q: 'tickets' })), ['tickets are mine'], '…but by the others');
  });

  t.test('bad queries answer bad_frame', async (t) => {
    const u = await newUser(s, 'bad');
    const d = await newDevice(s, u);
    const cases: [object, RegExp][] = [
      [{ q: '?!… —' }, /no words to search for/],
      [{ q: '' }, /q/],
      [{ q: 'x'.repeat(257) }, /q/],
      [{ q: 'ok', limit: 0 }, /limit/],
      [{ q: 'ok', limit: 51 }, /limit/],
      [{ q: 'ok', before: 'not an id!' }, /before/],
      [{ q: 'ok', thread: 42 }, /thread/],
      [{}, /q/],
    ];
    for (const [fields, reason] of cases) {
      // A socket is closed after a few bad frames: a fresh one per case.
      const sock = await rawSocket(t, s.wsUrl);
      sock.send({ t: 'hello', token: d.token });
      await sock.next((f) => f.t === 'synced');
      sock.send({ t: 'search', r: 1, ...fields });
      const err = await sock.next((f) => f.r === 1);
      t.match(err, { t: 'err', code: 'bad_frame', msg: reason }, JSON.stringify(fields).slice(0, 40));
      sock.ws.close();
    }
  });
});

t.test('a long thread: words in every block are found; edits and deletes rewrite the block they are in, so no old word stays in the index', async (t) => {
  const dataDir = tempDataDir(t);
  let s = await startTestServer(t, { dataDir });
  const [annU, bobU] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const [annD, bobD] = [await newDevice(s, annU), await newDevice(s, bobU)];
  let [ann, bob] = [await connect(t, s, annD), await connect(t, s, bobD)];
  const marked = new Map([[3, 'zebra first'], [70, 'zebra second'], [140, 'zebra third']]);
  let thread = '';
  // 150 messages: blocks hold at most 64 (storage/search-blocks.ts), so three blocks.
  for (let from = 1; from <= 150; from += 25) {
    const sent = await Promise.all(Array.from({ length: 25 }, (_, i) => ann.send({ to: bobU.user, body: marked.get(from + i) ?? `filler ${from + i}` })));
    thread = sent[0].thread;
  }
  const found = async (q: SearchParams) => ((await bob.search(q)) as Page).messages.map((m) => m.body);
  t.same(await found({ q: 'zebra' }), ['zebra third', 'zebra second', 'zebra first'], 'one from each block, newest first');
  t.same(await found({ q: 'zebra', limit: 1 }), ['zebra third']);

  await ann.edit({ thread, seq: 3, body: 'okapi first' });
  await ann.deleteMessage({ thread, seq: 70, forEveryone: true });
  t.same(await found({ q: 'zebra' }), ['zebra third'], 'edited and deleted: not found by their old words');
  t.same(await found({ q: 'okapi' }), ['okapi first'], 'the edit in the oldest (closed) block is found by its new word');

  // A restart: the thread actor reads its open block back and goes on filling it.
  await Promise.all([ann.close(), bob.close()]);
  await s.server.stop();
  s = await startTestServer(t, { dataDir });
  [ann, bob] = [await connect(t, s, annD), await connect(t, s, bobD)];
  await ann.send({ to: bobU.user, body: 'zebra fourth' });
  t.same(await found({ q: 'zebra' }), ['zebra fourth', 'zebra third'], 'a message after the restart is found with the others');
  await Promise.all([ann.close(), bob.close()]);
  await s.server.stop();

  const storage = openStorage(dataDir, 'relaxed');
  t.teardown(() => storage.close());
  const blocks = [...storage.db.searchBlocks.getRange({ start: [thread, 0], end: [thread, Number.MAX_SAFE_INTEGER] })]
    .map(({ key, value }) => ({ firstSeq: key[1], lastSeq: value.readUInt32BE(0), value }));
  t.same(blocks.map((b) => [b.firstSeq, b.lastSeq]), [[1, 64], [65, 128], [129, 151]], 'three blocks; the open one went on after the restart');
  const holding = (word: string) => blocks.filter((b) => mayHoldAll(b, [termProbes(word)])).map((b) => b.firstSeq);
  t.same(holding('zebra'), [129], 'only the block whose messages still say zebra holds the word');
  t.same(holding('okapi'), [1], 'the rebuilt block holds the new word');
});

t.test('retention deletes what it finds with the messages, and their search blocks', async (t) => {
  const dataDir = tempDataDir(t);
  const s = await startTestServer(t, { dataDir, retentionMs: 1500, retentionSweepMs: 100 });
  const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
  // (Not searched before it expires: RETENTION is short, and a test must not race the clock.)
  const sent = await ann.c.send({ to: bob.user, body: 'ephemeral words' });
  await untilMetric(s, () => sweptMessages(s), (n) => n >= 1);
  t.same(bodies(await search(bob, { q: 'ephemeral' })), [], 'gone with the message');
  // The thread actor drops the emptied block once told of the sweep; stopping drains that turn.
  await s.server.stop();
  const storage = openStorage(dataDir, 'relaxed');
  t.teardown(() => storage.close());
  t.same([...storage.db.searchBlocks.getKeys({ start: [sent.thread, 0], end: [sent.thread, Number.MAX_SAFE_INTEGER] })], [], 'no block of the thread is left');
});

t.test('SEARCH=off: search is refused and nothing is indexed; messages sent meanwhile stay unfound', async (t) => {
  const dataDir = tempDataDir(t);
  const off = await startTestServer(t, { dataDir, search: 'off' });
  const [annU, bobU] = [await newUser(off, 'ann'), await newUser(off, 'bob')];
  const [annD, bobD] = [await newDevice(off, annU), await newDevice(off, bobU)];
  const ann = await connect(t, off, annD);
  await ann.send({ to: bobU.user, body: 'unindexed words' });
  await t.rejects(ann.search({ q: 'unindexed' }), { code: 'forbidden', message: /turned off/ });
  await ann.close();
  await off.server.stop();

  const on = await startTestServer(t, { dataDir });
  const bob = await connect(t, on, bobD);
  await (await connect(t, on, annD)).send({ to: bobU.user, body: 'indexed words' });
  t.same(bodies(await bob.search({ q: 'words' }) as Page), ['indexed words'], 'only what was sent with SEARCH=on');
});

t.test('an acknowledged message is found after kill -9', async (t) => {
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [annU, bobU] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const [annD, bobD] = [await newDevice(first, annU), await newDevice(first, bobU)];
  const ann = await connect(t, first, annD);
  const acked: number[] = [];
  await Promise.allSettled(Array.from({ length: 100 }, (_, i) => ann.send({ to: bobU.user, body: `durable word${i}` }).then(() => {
    acked.push(i);
    if (acked.length === 40) first.proc.kill('SIGKILL');
  })));
  t.equal((await first.exited).signal, 'SIGKILL');
  await ann.close();

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const bob = await connect(t, second, bobD);
  const found = new Set<string>();
  for (let before: string | undefined, pages = 0; pages < 10; pages++) {
    const page = await bob.search({ q: 'durable', limit: 50, ...(before ? { before } : {}) });
    for (const m of page.messages) found.add(m.body!);
    if (!page.more) break;
    before = page.cursor;
  }
  // One assertion, whatever number of acks arrived before the kill took effect (40 or a few more).
  t.ok(acked.length >= 40, `${acked.length} messages acknowledged before the kill`);
  t.same(acked.filter((i) => !found.has(`durable word${i}`)), [], 'every acknowledged message is found');
});

async function sweptMessages(s: TestServer): Promise<number> {
  return (await metricSeries(s.base, 'parley_retention_swept_total')).get('{log="thread"}') ?? 0;
}

/** Polls a metric until it holds (the sweeper runs on its own timer; its metric is the event to wait for). */
async function untilMetric(s: TestServer, read: () => Promise<number>, ok: (n: number) => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok(await read())) {
    if (Date.now() > end) throw new Error('metric did not reach the expected value');
    await new Promise((r) => setTimeout(r, 50));
  }
}
