// kill -9 under load, again and again: a real server child process on one data directory,
// pairs of raw clients sending with cids, SIGKILL at a random ok, restart, resend every
// unanswered cid. Reports acked, lost (acked but not stored) and duplicated messages: both 0.
//
//   node dist/loadtest/kill-loop.js [--cycles 20] [--pairs 4] [--per-cycle 200] [--seed 7] [--max-minutes 10]
// Exits 1 if anything was lost or duplicated. Traffic goes to 127.0.0.1 only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { login, register } from '../client/index.js';
import { directThreadId } from '../protocol/ids.js';
import { openSession, readWholeThread, sendWindowed, type Ack, type Outgoing, type Session } from '../test/helpers/cid-sender.js';
import { startChildServer, type ChildServer } from '../test/helpers/child-server.js';
import { Rng } from '../test/helpers/fuzz-frames.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '20' },
    pairs: { type: 'string', default: '4' },
    'per-cycle': { type: 'string', default: '200' },
    window: { type: 'string', default: '32' },
    seed: { type: 'string', default: '7' },
    'max-minutes': { type: 'string', default: '10' },
  },
});
const CYCLES = Number(values.cycles);
const PAIRS = Number(values.pairs);
const PER_CYCLE = Number(values['per-cycle']);
const WINDOW = Number(values.window);
/** Recovery after a kill replays pending fan-out: generous on a loaded machine. */
const START_TIMEOUT_MS = 60_000;
const DEADLINE = Date.now() + Number(values['max-minutes']) * 60_000;

/** Seeded (the fuzzer's mulberry32), so a failing run can be repeated. */
const rng = new Rng(Number(values.seed));
const random = () => rng.next();

interface Pair { sender: string; token: string; recipient: string; recipientToken: string; thread: string; next: number; pending: Outgoing[] }

const acked = new Map<string, Ack>(); // cid → first ok
const dataDir = mkdtempSync(join(tmpdir(), 'parley-kill-loop-'));
let server: ChildServer | null = null;
const stats = { cycles: 0, sent: 0, resent: 0, acked: 0, ackMismatch: 0, errors: 0, killedWithInFlight: 0 };

async function main(): Promise<number> {
  const env = {}; // info level: the child helper waits for the `ready` log line
  server = await startChildServer(dataDir, env, START_TIMEOUT_MS);
  const pairs: Pair[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const names = [`kl_a${i}_${process.pid}`, `kl_b${i}_${process.pid}`];
    const ids = [];
    for (const username of names) {
      const { user } = await register(server.base, { username, password: 'kill loop password' });
      const { token } = await login(server.base, { username, password: 'kill loop password', device: 'loop' });
      ids.push({ user, token });
    }
    pairs.push({ sender: ids[0].user, token: ids[0].token, recipient: ids[1].user, recipientToken: ids[1].token, thread: directThreadId(ids[0].user, ids[1].user), next: 1, pending: [] });
  }

  for (let cycle = 1; cycle <= CYCLES && Date.now() < DEADLINE; cycle++) {
    if (!server) server = await startChildServer(dataDir, env, START_TIMEOUT_MS);
    const current = server;
    // Kill at a random ok of this cycle's traffic (sometimes before the first one).
    const total = pairs.reduce((n, p) => n + p.pending.length + PER_CYCLE, 0);
    const killAt = Math.floor(random() * total);
    let oks = 0;
    const onAck = () => {
      if (++oks === killAt) current.proc.kill('SIGKILL');
    };
    const sessions = await Promise.all(pairs.map((p) => openSession(current.wsUrl, p.token)));
    if (killAt === 0) current.proc.kill('SIGKILL');
    const runs = await Promise.all(
      pairs.map((p, i) => {
        const fresh = Array.from({ length: PER_CYCLE }, () => ({ cid: `${p.sender}-${p.next}`, to: p.recipient, body: `${p.sender} #${p.next++}` }));
        stats.resent += p.pending.length;
        stats.sent += fresh.length;
        const items = [...p.pending, ...fresh]; // unanswered ones first, with their cids
        return sendWindowed(sessions[i], items, WINDOW, onAck).then((run) => ({ run, items }));
      }),
    );
    let inFlight = 0;
    runs.forEach(({ run, items }, i) => {
      record(run.acked);
      stats.errors += run.errors.size;
      const answered = new Set(run.acked.map((a) => a.cid));
      pairs[i].pending = items.filter((item) => !answered.has(item.cid));
      inFlight += run.unanswered.length;
    });
    if (inFlight > 0) stats.killedWithInFlight++;
    current.proc.kill('SIGKILL'); // every cycle ends with a kill, wherever it fell
    await current.exited;
    for (const s of sessions) s.close();
    server = null;
    stats.cycles = cycle;
    console.log(`cycle ${cycle}: killed after ${oks} ok (target ${killAt}), ${inFlight} unanswered, ${acked.size} acked so far`);
  }

  // The last start: resend what is still unanswered, then check every thread and log.
  server = await startChildServer(dataDir, env, START_TIMEOUT_MS);
  const final = server;
  const sessions = await Promise.all(pairs.map((p) => openSession(final.wsUrl, p.token)));
  for (const [i, p] of pairs.entries()) {
    stats.resent += p.pending.length;
    const run = await sendWindowed(sessions[i], p.pending, WINDOW);
    record(run.acked);
    stats.errors += run.errors.size;
    if (run.unanswered.length + run.errors.size > 0) throw new Error('resends were not answered by a running server');
    p.pending = [];
  }

  let lost = 0;
  let duplicated = 0;
  let logDuplicates = 0;
  for (const [i, p] of pairs.entries()) {
    const stored = await readWholeThread(sessions[i], p.thread);
    const seen = new Map<string, number>();
    for (const m of stored) seen.set(m.body, (seen.get(m.body) ?? 0) + 1);
    duplicated += [...seen.values()].filter((n) => n > 1).length;
    const bySeq = new Map(stored.map((m) => [m.seq, m]));
    for (let n = 1; n < p.next; n++) {
      const ack = acked.get(`${p.sender}-${n}`);
      if (ack && bySeq.get(ack.seq)?.body !== `${p.sender} #${n}`) lost++;
    }
    // The recipient's log: each thread seq once, in order.
    const recipient = await openSession(final.wsUrl, p.recipientToken, { since: 0 });
    const marker = await sendWindowed(sessions[i], [{ cid: `${p.sender}-marker`, to: p.recipient, body: 'marker' }], 1);
    const markerSeq = marker.acked[0].seq;
    await recipient.until((fs) => fs.at(-1)?.t === 'msg' && fs.at(-1).seq === markerSeq, 60_000);
    const seqs = recipient.frames.filter((f) => f.t === 'msg' && f.thread === p.thread).map((f) => f.seq);
    if (seqs.some((s, k) => s !== k + 1)) logDuplicates++;
    recipient.close();
  }
  sessions.forEach((s: Session) => s.close());
  final.proc.kill('SIGTERM');
  await final.exited;

  const report = { ...stats, acked: acked.size, lost, duplicated, recipientLogsOutOfOrder: logDuplicates, seed: Number(values.seed) };
  console.log(JSON.stringify(report));
  return lost + duplicated + logDuplicates + stats.ackMismatch === 0 && stats.cycles >= Math.min(CYCLES, 1) ? 0 : 1;
}

/** Keeps each cid's first ok; a later ok for the same cid must name the same message. */
function record(acks: Ack[]): void {
  for (const a of acks) {
    const prior = acked.get(a.cid);
    if (!prior) acked.set(a.cid, a);
    else if (prior.seq !== a.seq || prior.id !== a.id) stats.ackMismatch++;
  }
}

main().then(
  (code) => {
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  },
  (err) => {
    console.error(err);
    server?.proc.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(1);
  },
);
