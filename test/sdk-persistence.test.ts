// Persistence (docs/sdk.md "Persistence"): the adapter contract on MemoryPersistence, the writer's
// batching, and a client against the real server that restores its cursor from the adapter, so a
// restart replays only what is new; resets (another epoch, another device) clear the store.
import t from 'tap';
import { MemoryPersistence, type AnyServerEvent, type Persistence, type PersistenceBatch } from '../client/index.js';
import { PersistenceWriter } from '../client/persistence-writer.js';
import { persistenceContract } from './helpers/persistence-contract.js';
import { client, connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('the adapter contract: MemoryPersistence', async (t) => {
  await persistenceContract(async (bounds) => new MemoryPersistence(bounds), (ok, name, detail) => t.ok(ok, name, detail === undefined ? {} : { detail }));
});

t.test('the writer: events of one turn are one write; notes during a write are the next one', async (t) => {
  let release!: () => void;
  const batches: PersistenceBatch[] = [];
  const slow: Persistence = {
    loadCursor: async () => undefined,
    loadHistory: async () => [],
    write: (b) => {
      batches.push(b);
      return new Promise<void>((res) => (release = res));
    },
  };
  const w = new PersistenceWriter(slow, (err) => t.fail(String(err)));
  t.teardown(() => w.stop());
  for (let seq = 1; seq <= 100; seq++) w.noteMessage({ thread: 't', seq, id: `m${seq}`, from: 'u', device: 'd', body: 'x', ts: seq });
  w.noteCursor({ user: 'u', device: 'd', lastU: 100 });
  const first = w.flush();
  t.equal(batches.length, 1, 'one write for 100 events');
  t.equal(batches[0]!.messages.length, 100);
  t.equal(batches[0]!.cursor?.lastU, 100, 'the cursor in the same batch as its messages');
  w.notePatch({ thread: 't', seq: 5, set: { body: 'edited' } });
  w.notePatch({ thread: 't', seq: 5, set: { edited: 9 } });
  w.noteCursor({ user: 'u', device: 'd', lastU: 101 });
  const second = w.flush();
  t.equal(batches.length, 1, 'no second write while the first is in flight');
  release();
  await first;
  await new Promise((r) => setImmediate(r));
  t.equal(batches.length, 2, 'then one write with what came meanwhile');
  t.same(batches[1]!.patches, [{ thread: 't', seq: 5, set: { body: 'edited', edited: 9 }, unset: [] }], 'patches of one message merged');
  release();
  await second;
});

t.test('against the server', async (t) => {
  const s = await startTestServer(t);

  t.test('a client restarted with the same store replays only the new events, from the stored cursor', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const annDevice = await newDevice(s, ann);
    const b = await connect(t, s, await newDevice(s, bob));
    const store = new MemoryPersistence();

    const first = client(t, s, annDevice, { persistence: store });
    await first.connect();
    const got3 = first.next('msg', (m) => m.seq === 3, 10_000);
    let thread = '';
    for (let i = 1; i <= 3; i++) thread = (await b.send({ to: ann.user, body: `old ${i}` })).thread;
    await got3;
    const savedU = first.lastU;
    await first.close(); // acks and writes the store
    t.match(await store.loadCursor(), { user: ann.user, device: annDevice.device, epoch: first.epoch, lastU: savedU }, 'the cursor was saved as the client acked');

    // While ann's app is down: two new messages and an edit of an old one.
    await b.send({ thread, body: 'new 4' });
    await b.send({ thread, body: 'new 5' });
    await b.edit({ thread, seq: 1, body: 'old 1 (edited)' });

    const second = client(t, s, annDevice, { persistence: store });
    const replayed: AnyServerEvent[] = [];
    second.on('event', (e) => { if (typeof e.u === 'number') replayed.push(e); });
    await second.connect();
    t.ok(replayed.every((e) => e.u > savedU), 'nothing at or below the stored cursor is replayed');
    t.same(replayed.filter((e) => e.t === 'msg').map((e) => e.body), ['new 4', 'new 5'], 'only the new messages');
    t.same(replayed.filter((e) => e.t === 'edit').map((e) => e.seq), [1], 'and the edit');
    const cached = await second.cachedHistory(thread);
    t.same(cached.map((m) => m.body), ['new 5', 'new 4', 'old 3', 'old 2', 'old 1 (edited)'], 'the cache holds the old and new messages, the edit applied');
    t.notOk('t' in cached[0]! || 'u' in cached[0]!, 'cached as messages, not events');
  });

  t.test('the stored cursor wins over the server-side cursor of the device', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const annDevice = await newDevice(s, ann);
    const b = await connect(t, s, await newDevice(s, bob));
    const store = new MemoryPersistence();
    const first = client(t, s, annDevice, { persistence: store });
    await first.connect();
    const got = first.next('msg', (m) => m.body === 'stored', 10_000);
    const { thread } = await b.send({ to: ann.user, body: 'stored' });
    await got;
    await first.close();
    // The same device without the store reads and acks more: the server's cursor moves past the store's.
    const other = await connect(t, s, annDevice);
    const seen = other.next('msg', (m) => m.body === 'seen elsewhere', 10_000);
    await b.send({ thread, body: 'seen elsewhere' });
    await seen;
    await other.close();
    const again = client(t, s, annDevice, { persistence: store });
    const bodies: string[] = [];
    again.on('msg', (m) => bodies.push(m.body!));
    await again.connect();
    t.same(bodies, ['seen elsewhere'], 'replayed from the stored cursor: the app had not stored it');
  });

  t.test('a stored cursor of another epoch: reset, the store cleared, replay from the start', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const annDevice = await newDevice(s, ann);
    const b = await connect(t, s, await newDevice(s, bob));
    const { thread } = await b.send({ to: ann.user, body: 'first' });
    const store = new MemoryPersistence();
    await store.write({
      cursor: { user: ann.user, device: annDevice.device, epoch: 'another-epoch', lastU: 50 },
      messages: [{ thread: 'd:stale:thread', seq: 1, id: 'x', from: bob.user, device: 'd', body: 'stale', ts: 1 }],
      patches: [],
      removed: [],
    });
    const c = client(t, s, annDevice, { persistence: store });
    const resets: unknown[] = [];
    c.on('reset', (r) => resets.push(r));
    const bodies: string[] = [];
    c.on('msg', (m) => bodies.push(m.body!));
    await c.connect();
    t.equal(resets.length, 1, 'reset emitted');
    t.same(bodies, ['first'], 'replayed from the oldest entry');
    t.same(await c.cachedHistory('d:stale:thread'), [], 'the stale cache is gone');
    t.same((await c.cachedHistory(thread)).map((m) => m.body), ['first'], 'rebuilt from the replay');
    await c.close();
    t.match(await store.loadCursor(), { epoch: c.epoch, lastU: c.lastU }, "the cursor of the server's epoch");
  });

  t.test("a stored cursor of another device: reset, the store cleared, this device's replay", async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const annDevice = await newDevice(s, ann);
    const b = await connect(t, s, await newDevice(s, bob));
    await b.send({ to: ann.user, body: 'hello' });
    const store = new MemoryPersistence();
    await store.write({ cursor: { user: ann.user, device: 'd-another-one', lastU: 1 }, messages: [], patches: [], removed: [] });
    const c = client(t, s, annDevice, { persistence: store, reconnect: { minMs: 10, maxMs: 50 } });
    const resets: unknown[] = [];
    c.on('reset', (r) => resets.push(r));
    const bodies: string[] = [];
    c.on('msg', (m) => bodies.push(m.body!));
    await c.connect();
    t.equal(resets.length, 1, 'reset emitted');
    t.same(bodies, ['hello'], "this device's events, not skipped by the other's cursor");
    await c.close();
    t.match(await store.loadCursor(), { user: ann.user, device: annDevice.device });
  });

  t.test('with autoAck: false the stored cursor moves with ack(u), not with dispatch', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const b = await connect(t, s, await newDevice(s, bob));
    const store = new MemoryPersistence();
    const c = await connect(t, s, await newDevice(s, ann), { persistence: store, autoAck: false });
    t.type(await c.ping(), 'number', 'ping answers the server time');
    const two = c.next('msg', (m) => m.body === 'two', 10_000);
    const one = await b.send({ to: ann.user, body: 'one' });
    await b.send({ thread: one.thread, body: 'two' });
    const u2 = (await two).u;
    await c.cachedHistory(one.thread); // writes what was noted
    t.equal((await store.loadCursor())?.lastU ?? 0, 0, 'dispatched but not acked: not stored');
    c.ack(u2 - 1);
    await c.close();
    t.equal((await store.loadCursor())?.lastU, u2 - 1, 'stored up to the ack');
  });

  t.test('history pages and deletes reach the cache', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const a = await connect(t, s, await newDevice(s, ann));
    let thread = '';
    for (let i = 1; i <= 4; i++) thread = (await a.send({ to: bob.user, body: `m${i}` })).thread;
    const store = new MemoryPersistence({ maxPerThread: 3 });
    const c = await connect(t, s, await newDevice(s, ann), { persistence: store });
    await c.history({ thread, limit: 4 });
    t.same((await c.cachedHistory(thread)).map((m) => m.seq), [4, 3, 2], 'a history page cached, bounded per thread');
    const hidden = c.next('deleted', (e) => e.seq === 4);
    await a.deleteMessage({ thread, seq: 4, forEveryone: false });
    await hidden;
    const tomb = c.next('deleted', (e) => e.seq === 3);
    await a.deleteMessage({ thread, seq: 3, forEveryone: true });
    await tomb;
    const cached = await c.cachedHistory(thread);
    t.same(cached.map((m) => m.seq), [3, 2], 'deleted for me: gone from the cache');
    t.match(cached[0], { seq: 3, deleted: Number }, 'deleted for everyone: a tombstone');
    t.equal(cached[0]!.body, undefined);
  });
});
