// Scheduled messages (docs/protocol.md "Scheduled messages"): a job sends its message at its time,
// once, as its owner; a retry of `schedule` answers the same job; jobs can be listed and cancelled;
// bad times, strangers' threads and too many jobs are refused at once; a send refused when it runs
// leaves the job marked failed; and a kill -9 around the due time sends every job exactly once.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { openStorage, type ScheduledJob } from '../storage/env.js';
import { MAX_SCHEDULED_PER_USER } from '../actors/scheduled-messages.js';
import { startChildServer } from './helpers/child-server.js';
import { metric } from './helpers/metrics.js';
import { client, collect, connect, newDevice, newUser, startTestServer, tempDataDir, until } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

const HOUR = 3_600_000;

/**
 * The default-config server of the first subtests: each uses its own users, and reads the
 * scheduler's counters before it starts, so what the others scheduled (and left pending) is not counted.
 */
const shared = sharedServer(t);

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('a scheduled message arrives at its time, once, from its owner; the job is gone after', async (t) => {
  const s = await shared();
  const [sentBefore, pendingBefore] = [await metric(s.base, 'parley_scheduled_runs_total', 'outcome="sent"'), await metric(s.base, 'parley_scheduled_pending')];
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const got = collect(bobPhone, 'msg');

  const at = Date.now() + 500;
  const job = await annPhone.schedule({ to: bob.user, body: 'happy birthday', at, cid: 'bday' });
  t.match(job, { thread: directThreadId(ann.user, bob.user), body: 'happy birthday', at, to: bob.user });
  t.same(await annPhone.schedule({ to: bob.user, body: 'happy birthday', at, cid: 'bday' }), job, 'a retry with the same cid answers the same job');
  t.same((await annPhone.scheduled()).map((j) => j.job), [job.job], 'listed once');

  await until(bobPhone, () => got.length === 1, 20_000);
  t.match(got[0], { from: ann.user, body: 'happy birthday' });
  t.ok(Date.now() >= at, 'not before its time');
  await waitFor(async () => (await annPhone.scheduled()).length === 0, 'the job to be removed');
  t.equal(await metric(s.base, 'parley_scheduled_runs_total', 'outcome="sent"'), sentBefore + 1);
  t.equal(await metric(s.base, 'parley_scheduled_pending'), pendingBefore, 'the job left the queue');
  const history = await annPhone.history({ thread: job.thread });
  t.equal(history.messages.filter((m: any) => m.body === 'happy birthday').length, 1, 'stored once');
});

t.test('into a group, with a reply; cancelled jobs never send', async (t) => {
  const s = await shared();
  const pendingBefore = await metric(s.base, 'parley_scheduled_pending');
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const got = collect(bobPhone, 'msg');
  const { thread } = await annPhone.request('group.create', { title: 'plans', members: [bob.user] });
  const first = await annPhone.send({ thread, body: 'who is in?' });

  const later = await annPhone.schedule({ thread, body: 'never sent', at: Date.now() + HOUR });
  await annPhone.cancelScheduled(later.job);
  await t.rejects(annPhone.cancelScheduled(later.job), { code: 'not_found' }, 'a second cancel finds nothing');
  const soon = await annPhone.schedule({ thread, body: 'me!', reply: first.id, at: Date.now() });
  t.same((await annPhone.scheduled()).map((j) => j.job), [soon.job]);

  await until(bobPhone, () => got.some((m) => m.body === 'me!'), 20_000);
  t.match(got.find((m) => m.body === 'me!'), { thread, reply: first.id });
  await waitFor(async () => (await annPhone.scheduled()).length === 0, 'the job to be removed');
  t.equal(await metric(s.base, 'parley_scheduled_pending'), pendingBefore, 'the cancelled job left the queue too');
  t.notOk(got.some((m) => m.body === 'never sent'));
});

t.test('refused at once: bad times, both or neither target, strangers, too large, too many', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const { thread } = await bobPhone.request('group.create', { title: 'no ann', members: [cat.user] });
  const now = Date.now();
  const cases: [string, object, string][] = [
    ['in the past', { to: bob.user, body: 'x', at: now - 10 * 60_000 }, 'bad_frame'],
    ['more than 366 days ahead', { to: bob.user, body: 'x', at: now + 367 * 24 * HOUR }, 'bad_frame'],
    ['thread and to', { thread, to: bob.user, body: 'x', at: now + HOUR }, 'bad_frame'],
    ['neither thread nor to', { body: 'x', at: now + HOUR }, 'bad_frame'],
    ['an empty body', { to: bob.user, body: '', at: now + HOUR }, 'bad_frame'],
    ['a body over 16 KiB', { to: bob.user, body: 'x'.repeat(16 * 1024 + 1), at: now + HOUR }, 'too_large'],
    ['a group one is not in', { thread, body: 'x', at: now + HOUR }, 'forbidden'],
    ['nobody', { to: 'unobody000000000000', body: 'x', at: now + HOUR }, 'not_found'],
    ['oneself', { to: ann.user, body: 'x', at: now + HOUR }, 'not_found'],
  ];
  // A socket sending bad frames again and again is closed (4000): each case on a socket of its own.
  const annDevice = await newDevice(s, ann, 'tablet');
  for (const [name, p, code] of cases) {
    const c = await connect(t, s, annDevice);
    await t.rejects(c.schedule(p as never), { code }, name);
    await c.close();
  }
  t.same(await annPhone.scheduled(), [], 'nothing was stored');

  for (let i = 0; i < MAX_SCHEDULED_PER_USER; i++) await annPhone.schedule({ to: bob.user, body: `n${i}`, at: now + HOUR + i });
  await t.rejects(annPhone.schedule({ to: bob.user, body: 'one too many', at: now + HOUR }), { code: 'too_large' });
  const jobs = await annPhone.scheduled();
  t.equal(jobs.length, MAX_SCHEDULED_PER_USER);
  t.same(jobs.slice(0, 3).map((j) => j.body), ['n0', 'n1', 'n2'], 'earliest first');
});

t.test('a send refused when it runs (the receiver blocked the sender) leaves the job marked failed', async (t) => {
  const s = await shared();
  const [failedBefore, pendingBefore] = [await metric(s.base, 'parley_scheduled_runs_total', 'outcome="failed"'), await metric(s.base, 'parley_scheduled_pending')];
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const got = collect(bobPhone, 'msg');
  const job = await annPhone.schedule({ to: bob.user, body: 'unwanted', at: Date.now() + 300 });
  await bobPhone.request('block', { user: ann.user });

  await waitFor(async () => (await annPhone.scheduled())[0]?.failed !== undefined, 'the job to fail');
  const [failed] = await annPhone.scheduled();
  t.match(failed, { job: job.job, failed: { code: 'forbidden' } });
  t.equal(await metric(s.base, 'parley_scheduled_pending'), pendingBefore, 'off the queue');
  t.equal(await metric(s.base, 'parley_scheduled_runs_total', 'outcome="failed"'), failedBefore + 1);
  await annPhone.cancelScheduled(job.job);
  t.same(await annPhone.scheduled(), [], 'cancel forgets a failed job');
  t.same(got, [], 'bob got nothing');
});

t.test('kill -9 while jobs are being sent: after the restart every job sent exactly once', async (t) => {
  const JOBS = 60;
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const annDevice = await newDevice(first, ann);
  const bobDevice = await newDevice(first, bob);
  const annPhone = await connect(t, first, annDevice);
  const bobPhone = await connect(t, first, bobDevice);
  const at = Date.now() + 1000;
  for (let i = 0; i < JOBS; i++) await annPhone.schedule({ to: bob.user, body: `job ${i}`, at, cid: `c${i}` });
  // Killed as soon as the first one arrives: the others are unsent, in flight, or sent but not yet marked done.
  const early = collect(bobPhone, 'msg');
  await until(bobPhone, () => early.length > 0, 30_000);
  first.proc.kill('SIGKILL');
  await first.exited;
  await annPhone.close();
  await bobPhone.close();

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const bobAgain = client(t, second, bobDevice);
  const got = collect(bobAgain, 'msg');
  await bobAgain.connect();
  await until(bobAgain, () => new Set(got.map((m) => m.body)).size === JOBS, 30_000);
  const annAgain = await connect(t, second, annDevice);
  await waitFor(async () => (await annAgain.scheduled()).length === 0, 'every job to be done');
  const history: any[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await annAgain.history({ thread: directThreadId(ann.user, bob.user), limit: 100, ...(before ? { before } : {}) });
    history.push(...page.messages);
    if (!page.more) break;
    before = page.messages[page.messages.length - 1].seq;
  }
  t.equal(history.length, JOBS, 'each job stored once');
  t.equal(new Set(history.map((m) => m.body)).size, JOBS);
  t.equal(got.length, JOBS, 'and delivered to bob once each (replay and live together)');
});

t.test('a job found again after its message was stored (a crash before it was marked done) does not send twice', async (t) => {
  const dataDir = tempDataDir(t);
  const s = await startTestServer(t, { dataDir });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annDevice = await newDevice(s, ann);
  const bobDevice = await newDevice(s, bob);
  const annPhone = await connect(t, s, annDevice);
  const bobPhone = await connect(t, s, bobDevice);
  const got = collect(bobPhone, 'msg');
  const job = await annPhone.schedule({ to: bob.user, body: 'only once', at: Date.now() + 200 });
  await until(bobPhone, () => got.length === 1, 20_000);
  await waitFor(async () => (await annPhone.scheduled()).length === 0, 'the job to be marked done');
  await annPhone.close();
  await bobPhone.close();
  await s.server.stop();

  // What the disk holds when the process dies after the send's commit and before the job's removal.
  const storage = openStorage(dataDir, 'fsync');
  const record: ScheduledJob = { job: job.job, device: annDevice.device, thread: job.thread, to: bob.user, body: 'only once', at: job.at, created: job.created };
  await storage.db.scheduledJobs.put([ann.user, job.job], record);
  await storage.db.scheduleQueue.put([job.at, ann.user, job.job], null);
  await storage.close();

  const again = await startTestServer(t, { dataDir });
  const annAgain = await connect(t, again, annDevice);
  await waitFor(async () => (await annAgain.scheduled()).length === 0, 'the job to run again');
  t.equal(await metric(again.base, 'parley_scheduled_runs_total', 'outcome="sent"'), 1, 'it ran again');
  const history = await annAgain.history({ thread: job.thread });
  t.same(history.messages.map((m: any) => m.body), ['only once'], 'the thread still holds it once');
  const bobAgain = client(t, again, bobDevice);
  const replayed = collect(bobAgain, 'msg');
  await bobAgain.connect();
  t.ok(replayed.every((m) => m.seq === got[0].seq), 'bob gets no second message (at most the first again, if his ack had not reached the server)');
});
