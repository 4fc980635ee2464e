// Fuzzing the real server, bounded and seeded: random and mutated frames from logged-in raw
// sockets (the four frames that once killed it first), random and malformed HTTP requests, while
// a well-behaved pair keeps chatting. The server must stay up, the pair must lose nothing, and
// no shard may die. A failure names its seed: FUZZ_SEED=<seed> repeats the run exactly.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { chatPair, runFrameFuzz, runHttpFuzz } from './helpers/fuzz-driver.js';
import { newDevice, newUser, startTestServer } from './helpers/server.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
/**
 * Sized to finish in about 45 s on a heavily loaded 2-core machine (the issue asks for 20,000
 * and 2,000: FUZZ_FRAMES=20000 FUZZ_REQUESTS=2000 on a quiet machine; loadtest/fuzz.ts for 1M).
 */
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 8_000);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 1_000);
/** A safety net against a hung server, not a synchronisation: every wait is for an answer. */
const ANSWER_TIMEOUT_MS = 20_000;

t.test(`fuzz (seed ${SEED}): ${FRAMES} frames and ${REQUESTS} HTTP requests; the server stays up and a chatting pair loses nothing`, async (t) => {
  // An admin API key among the HTTP fuzzer's tokens, so the server API's routes parse bodies too.
  const apiKey = 'fuzz-admin-key-0123456789abcdefghij';
  const s = await startTestServer(t, { apiKeys: [{ key: apiKey, scopes: ['admin'] }] });
  const fuzzers = await Promise.all([0, 1, 2].map((i) => newUser(s, `fz${i}`)));
  const [ann, bob] = [await newUser(s, 'pair_a'), await newUser(s, 'pair_b')];
  const devices = await Promise.all(fuzzers.map((u) => newDevice(s, u)));
  // HTTP fuzzing logs its tokens out now and then (DELETE /v1/sessions/current): its own user.
  const httpDevices = await Promise.all([0, 1].map(async () => newDevice(s, fuzzers[2], 'http')));
  const [annPhone, bobPhone] = [await newDevice(s, ann), await newDevice(s, bob)];
  const users = [...fuzzers, ann, bob].map((u) => u.user);
  const frameTokens = devices.slice(0, 2).map((d) => d.token);
  const ctx = {
    users,
    usernames: [...fuzzers, ann, bob].map((u) => u.username),
    threads: users.flatMap((a) => users.filter((b) => b !== a).map((b) => directThreadId(a, b))),
    tokens: [...httpDevices.map((d) => d.token), apiKey],
  };

  const deadline = Date.now() + 90_000;
  const frames = runFrameFuzz({ wsUrl: s.wsUrl, tokens: frameTokens, ctx, seed: SEED, frames: FRAMES, lanes: 8, deadline, answerTimeoutMs: ANSWER_TIMEOUT_MS, killersFirst: true,
    onProgress: (n) => t.comment(`${n} frames`) });
  const http = runHttpFuzz({ base: s.base, ctx, seed: SEED, requests: REQUESTS, concurrency: 4, deadline, answerTimeoutMs: ANSWER_TIMEOUT_MS });
  const fuzzDone = Promise.allSettled([frames, http]);
  const pair = chatPair(s.wsUrl, annPhone, bobPhone, fuzzDone, ANSWER_TIMEOUT_MS);

  const [frameStats, httpStats, pairResult] = await Promise.all([frames, http, pair]);
  t.comment(`frames: ${JSON.stringify(frameStats)}`);
  t.comment(`http: ${JSON.stringify(httpStats)}`);
  t.comment(`pair: sent ${pairResult.sent.join(' + ')}`);

  t.equal(frameStats.framesSent, FRAMES, 'every frame was sent and handled');
  t.equal(httpStats.requestsSent, REQUESTS, 'every request was sent and answered or closed');
  t.equal(frameStats.kinds['killer: 1,300-deep unknown field'] > 0 && frameStats.kinds['killer: bin in an unknown field'] > 0 &&
    frameStats.kinds['killer: cycle extensions 0x69/0x70'] > 0 && frameStats.kinds['killer: bigint ext wider than 64 bits'] > 0, true, 'the four known killers were sent');
  t.notOk(frameStats.closes['1011'] || frameStats.closes['1012'], 'no fuzz socket was closed by an internal error or a shard restart');
  // A frame the server cannot handle must be refused as the client's fault (bad_frame, too_large,
  // …); `internal` means it got past validation and broke something inside.
  t.equal(frameStats.errCodes.internal ?? 0, 0, 'no frame caused an internal error');
  t.equal(httpStats.statuses['500'] ?? 0, 0, 'no HTTP 500');

  const health = await fetch(`${s.base}/healthz`);
  t.equal(health.status, 200, 'the server is still up');
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  const restarts = /^parley_shard_restarts_total (\d+)/m.exec(metrics);
  if (restarts) t.equal(Number(restarts[1]), 0, 'no shard died');
  t.same(pairResult.problems, [], 'the pair got every message exactly once, in order, and stayed connected');
  t.ok(pairResult.sent[0] > 0 && pairResult.sent[1] > 0, 'the pair chatted during the fuzz');
});
