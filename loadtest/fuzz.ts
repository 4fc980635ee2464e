// The long fuzz run: the generators of test/fuzz.test.ts against a real server child process on
// a temp data directory, bounded by count and by time, with a well-behaved pair chatting
// throughout. Reports frames and requests sent and crashes (the child exiting), and exits 1 on a
// crash, a lost or repeated message, or an `internal` error answer.
//
//   node dist/loadtest/fuzz.js [--frames 1000000] [--requests 100000] [--seed 1] [--lanes 8]
//                              [--http-concurrency 4] [--max-minutes 60]
// Traffic goes to 127.0.0.1 only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { login, register } from '../client/index.js';
import { directThreadId } from '../protocol/ids.js';
import { startChildServer } from '../test/helpers/child-server.js';
import { chatPair, runFrameFuzz, runHttpFuzz } from '../test/helpers/fuzz-driver.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '1000000' },
    requests: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    lanes: { type: 'string', default: '8' },
    'http-concurrency': { type: 'string', default: '4' },
    'max-minutes': { type: 'string', default: '60' },
  },
});
const SEED = Number(values.seed);
const started = Date.now();
const deadline = started + Number(values['max-minutes']) * 60_000;
const ANSWER_TIMEOUT_MS = 30_000;
const PASSWORD = 'fuzz loadtest password';

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-fuzz-'));
  // info level: the child helper waits for the `ready` log line.
  const server = await startChildServer(dataDir, {}, 60_000);
  let crashed: string | null = null;
  void server.exited.then(({ code, signal }) => {
    crashed = `server exited with code ${code} signal ${signal}`;
  });
  try {
    const names = ['fz0', 'fz1', 'fzhttp', 'pair_a', 'pair_b'].map((n) => `${n}_${process.pid}`);
    const users = [];
    for (const username of names) {
      await register(server.base, { username, password: PASSWORD });
      users.push({ username, ...(await login(server.base, { username, password: PASSWORD, device: 'fuzz' })) });
    }
    const [f0, f1, fHttp, a, b] = users;
    const ids = users.map((u) => u.user);
    const ctx = {
      users: ids,
      usernames: names,
      threads: ids.flatMap((x) => ids.filter((y) => y !== x).map((y) => directThreadId(x, y))),
      // HTTP fuzzing logs its own tokens out now and then: a user of its own, several devices.
      tokens: [fHttp.token, ...(await Promise.all([1, 2].map(async () => (await login(server.base, { username: fHttp.username, password: PASSWORD, device: 'http' })).token)))],
    };
    const progress = (n: number) => {
      if (n % 50_000 === 0) console.log(`${n} frames, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    };
    const frames = runFrameFuzz({
      wsUrl: server.wsUrl, tokens: [f0.token, f1.token], ctx, seed: SEED, frames: Number(values.frames), lanes: Number(values.lanes),
      deadline, answerTimeoutMs: ANSWER_TIMEOUT_MS, killersFirst: true, onProgress: progress,
    });
    const http = runHttpFuzz({ base: server.base, ctx, seed: SEED, requests: Number(values.requests), concurrency: Number(values['http-concurrency']), deadline, answerTimeoutMs: ANSWER_TIMEOUT_MS });
    const fuzzDone = Promise.allSettled([frames, http]);
    const pair = chatPair(server.wsUrl, a, b, fuzzDone, ANSWER_TIMEOUT_MS);
    const [f, h, p] = await Promise.allSettled([frames, http, pair]);

    const seconds = (Date.now() - started) / 1000;
    const report = {
      seed: SEED,
      seconds: Math.round(seconds),
      framesSent: f.status === 'fulfilled' ? f.value.framesSent : null,
      framesPerSecond: f.status === 'fulfilled' ? Math.round(f.value.framesSent / seconds) : null,
      sockets: f.status === 'fulfilled' ? f.value.sockets : null,
      requestsSent: h.status === 'fulfilled' ? h.value.requestsSent : null,
      crashes: crashed ? 1 : 0,
      frameCloses: f.status === 'fulfilled' ? f.value.closes : null,
      errCodes: f.status === 'fulfilled' ? f.value.errCodes : null,
      httpStatuses: h.status === 'fulfilled' ? h.value.statuses : null,
      pairSent: p.status === 'fulfilled' ? p.value.sent : null,
      pairProblems: p.status === 'fulfilled' ? p.value.problems : [String(p.reason)],
      failures: [f, h].filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    };
    console.log(JSON.stringify(report, null, 2));
    if (crashed) console.error(crashed, server.stderr.join('').slice(-4000));
    const internal = f.status === 'fulfilled' ? (f.value.errCodes.internal ?? 0) : 0;
    return crashed || report.pairProblems.length || report.failures.length || internal ? 1 : 0;
  } finally {
    server.proc.kill('SIGTERM');
    await server.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
