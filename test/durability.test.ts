// Acknowledged means on disk: messages whose `ok` arrived survive kill -9 of the server, even
// with later sends still in flight; resends by cid never store twice; a graceful stop (SIGTERM)
// tells clients 1001 and exits 0.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { openStorage } from '../storage/env.js';
import { openSession, readWholeThread, sendWindowed, type Outgoing } from './helpers/cid-sender.js';
import { startChildServer } from './helpers/child-server.js';
import { client, collect, connect, newDevice, newUser, tempDataDir } from './helpers/server.js';

t.test('200 acknowledged messages survive kill -9 and are all in history and replay', async (t) => {
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const annDevice = await newDevice(first, ann);
  const bobDevice = await newDevice(first, bob);
  const annPhone = await connect(t, first, annDevice);

  // All 200 in flight at once, so many commit groups are open when the process dies.
  const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => annPhone.send({ to: bob.user, body: `durable ${i + 1}` })));
  first.proc.kill('SIGKILL');
  t.equal((await first.exited).signal, 'SIGKILL');
  t.equal(new Set(acks.map((a) => a.seq)).size, 200, '200 distinct acknowledged seqs');
  await annPhone.close();

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const thread = directThreadId(ann.user, bob.user);
  const annAgain = await connect(t, second, annDevice);
  const pageNew = await annAgain.history({ thread, limit: 100 });
  const pageOld = await annAgain.history({ thread, before: pageNew.messages[pageNew.messages.length - 1].seq, limit: 100 });
  const seqs = [...pageNew.messages, ...pageOld.messages].map((m: any) => m.seq).sort((a: number, b: number) => a - b);
  t.same(seqs, Array.from({ length: 200 }, (_, i) => i + 1), 'every acknowledged message is in history');
  t.equal(pageOld.more, false);

  // Bob was offline the whole time: his log gets every message once, in order (fan-out resumed).
  const bobPhone = client(t, second, bobDevice);
  const got = collect(bobPhone, 'msg');
  await bobPhone.connect();
  const bySeq = [...got].sort((a, b) => a.seq - b.seq);
  t.equal(got.length, 200, 'bob replays 200 messages');
  t.same(bySeq.map((m) => m.seq), Array.from({ length: 200 }, (_, i) => i + 1), 'each seq exactly once');
  t.same(got.map((m) => m.u), Array.from({ length: 200 }, (_, i) => i + 1), 'in log order with no gap');
});

t.test('kill -9 with sends in flight: every ok is in history and replay once, in order; resends by cid do not duplicate', async (t) => {
  const SENDS = 600;
  const KILL_AFTER_OKS = 150;
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const annDevice = await newDevice(first, ann);
  const bobDevice = await newDevice(first, bob);
  const thread = directThreadId(ann.user, bob.user);
  const items: Outgoing[] = Array.from({ length: SENDS }, (_, i) => ({ cid: `c${i + 1}`, to: bob.user, body: `in flight ${i + 1}` }));
  const index = (cid: string) => Number(cid.slice(1));

  // 64 unanswered at any time; the process dies the moment the 150th ok is read, with many
  // commit groups open. An ok released before its commit would show up as a lost message.
  const annSession = await openSession(first.wsUrl, annDevice.token);
  const run = await sendWindowed(annSession, items, 64, (_ack, count) => {
    if (count === KILL_AFTER_OKS) first.proc.kill('SIGKILL');
  });
  t.equal((await first.exited).signal, 'SIGKILL');
  t.equal(run.errors.size, 0, 'no send was refused');
  t.ok(run.acked.length >= KILL_AFTER_OKS && run.unanswered.length > 0, `killed with sends in flight (${run.acked.length} ok, ${run.unanswered.length} unanswered)`);
  t.same(run.acked.map((a) => a.seq), run.acked.map((_, i) => i + 1), 'oks came in send order with seq 1, 2, 3, ...');
  t.same(run.acked.map((a) => index(a.cid)), run.acked.map((_, i) => i + 1));

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const annAgain = await openSession(second.wsUrl, annDevice.token, { since: 0 });
  // Resend every unanswered cid, and a few answered ones: those must get their first result back.
  const resent = items.filter((i) => run.unanswered.includes(i.cid));
  const answeredSample = items.slice(0, 10);
  const retry = await sendWindowed(annAgain, [...answeredSample, ...resent], 64);
  t.equal(retry.errors.size + retry.unanswered.length, 0, 'every resend answered ok');
  t.same(retry.acked.slice(0, 10), run.acked.slice(0, 10), 'a resent acknowledged cid gets its first thread, seq and id');

  const stored = await readWholeThread(annAgain, thread);
  t.same(stored.map((m) => m.seq), items.map((_, i) => i + 1), 'history: seq 1..600 without a gap');
  t.same(stored.map((m) => m.body), items.map((i) => i.body), 'every message exactly once, in send order (committed prefix, then resends)');
  const bySeq = new Map(stored.map((m) => [m.seq, m]));
  t.ok(run.acked.every((a) => bySeq.get(a.seq)?.id === a.id), 'each ok names the message stored at its seq');
  const finalAcks = new Map([...run.acked, ...retry.acked].map((a) => [a.cid, a]));
  t.ok(items.every((i) => bySeq.get(finalAcks.get(i.cid)!.seq)?.body === i.body), 'each resend answered the seq of its own message');

  // The sender's replay from 0 (own msgs carry cid) and bob's: each message once, in log order.
  const annMsgs = annAgain.frames.filter((f) => f.t === 'msg');
  t.same(annMsgs.map((m) => m.cid), items.slice(0, annMsgs.length).map((i) => i.cid), "ann's replay: cids in order, none twice");
  const bobSession = await openSession(second.wsUrl, bobDevice.token, { since: 0 });
  t.teardown(() => bobSession.close());
  // The fan-out of the last resends may still be on its way: a marker sent after them comes last.
  const marker = await sendWindowed(annAgain, [{ cid: 'marker', to: bob.user, body: 'marker' }], 1);
  await bobSession.until((fs) => fs.at(-1)?.t === 'msg' && fs.at(-1).body === 'marker');
  const bobMsgs = bobSession.frames.filter((f) => f.t === 'msg');
  t.same(bobMsgs.map((m) => m.seq), [...items.map((_, i) => i + 1), marker.acked[0].seq], "bob's log: every message once, in seq order, then the marker");
  t.same(bobMsgs.map((m) => m.u), bobMsgs.map((_, i) => i + 1), 'at u 1, 2, 3, ... with no gap');
  annAgain.close();
});

t.test('SIGTERM: clients are told 1001, the process exits 0, data stays', async (t) => {
  const dataDir = tempDataDir(t);
  const server = await startChildServer(dataDir);
  t.teardown(() => server.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(server, 'ann'), await newUser(server, 'bob')];
  const annDevice = await newDevice(server, ann);
  const annPhone = await connect(t, server, annDevice);
  await annPhone.send({ to: bob.user, body: 'before the stop' });
  const closed = annPhone.next('close');
  server.proc.kill('SIGTERM');
  t.match(await closed, { code: 1001 });
  t.same(await server.exited, { code: 0, signal: null }, 'a clean exit');

  const again = await startChildServer(dataDir);
  t.teardown(() => again.proc.kill('SIGKILL'));
  const annAgain = await connect(t, again, annDevice);
  const page = await annAgain.history({ thread: directThreadId(ann.user, bob.user) });
  t.same(page.messages.map((m: any) => m.body), ['before the stop']);
});

t.test('a fan-out interrupted by a crash is completed on restart', async (t) => {
  const dataDir = tempDataDir(t);
  const server = await startChildServer(dataDir);
  t.teardown(() => server.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(server, 'ann'), await newUser(server, 'bob')];
  const annDevice = await newDevice(server, ann);
  const bobDevice = await newDevice(server, bob);
  const annPhone = await connect(t, server, annDevice);
  const { thread } = await annPhone.send({ to: bob.user, body: 'one' });
  await annPhone.close();
  server.proc.kill('SIGTERM');
  await server.exited;

  // What a crash between the two commits leaves: message 2 in the thread log, marked as
  // pending fan-out, in nobody's user log.
  const storage = openStorage(dataDir, 'fsync');
  await storage.db.threadLog.put([thread, 2], { seq: 2, id: 'crash-test-2', from: ann.user, device: annDevice.device, ts: Date.now(), body: 'two', cid: 'lost-in-crash' });
  await storage.db.fanout.put(thread, { seq: 2, eseq: 0 });
  await storage.close();

  const again = await startChildServer(dataDir);
  t.teardown(() => again.proc.kill('SIGKILL'));
  const bobPhone = client(t, again, bobDevice);
  const got = collect(bobPhone, 'msg');
  await bobPhone.connect();
  if (got.length < 2) await bobPhone.next('msg', (m) => m.seq === 2);
  t.same(got.map((m) => [m.seq, m.body]), [[1, 'one'], [2, 'two']], 'bob gets the interrupted message once');
  const annAgain = client(t, again, annDevice, { since: 1 });
  const own = collect(annAgain, 'msg');
  await annAgain.connect();
  if (own.length === 0) await annAgain.next('msg', (m) => m.seq === 2);
  t.same(own.map((m) => [m.seq, m.cid]), [[2, 'lost-in-crash']], "and the sender's devices, with its cid");
});
