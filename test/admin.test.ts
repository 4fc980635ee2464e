// The operators' routes (docs/protocol.md §8.7): /metrics behind ADMIN_TOKEN on the main port, or
// open on a separate ADMIN_PORT (and then not served on the main port without a token); and the
// per-command and per-route figures it carries.
import t from 'tap';
import { freePort } from './helpers/child-server.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const TOKEN = 'admin-token-for-tests-0123456789abcdef';

t.test('ADMIN_TOKEN: /metrics needs it', async (t) => {
  const s = await startTestServer(t, { adminToken: TOKEN });
  const get = (auth?: string) => fetch(`${s.base}/metrics`, auth ? { headers: { authorization: auth } } : {});
  const none = await get();
  t.equal(none.status, 401);
  t.match(await none.json(), { error: 'unauthorized' });
  t.equal((await get('Bearer wrong-token-wrong-token-wrong-token')).status, 401, 'a wrong token');
  const ok = await get(`Bearer ${TOKEN}`);
  t.equal(ok.status, 200);
  t.match(await ok.text(), /parley_connections/);
});

t.test('ADMIN_PORT: /metrics there without a token, not on the main port', async (t) => {
  const adminPort = await freePort();
  const s = await startTestServer(t, { adminPort });
  t.equal((await fetch(`${s.base}/metrics`)).status, 404, 'not served on the main port');
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  t.equal(res.status, 200);
  t.match(await res.text(), /parley_connections/);
  t.equal((await fetch(`http://127.0.0.1:${adminPort}/v1/users`)).status, 404, 'only operators\' routes on the admin port');
});

t.test('commands and HTTP routes are counted by result and timed', async (t) => {
  const s = await startTestServer(t);
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newUser(s, 'bob');
  const a = await connect(t, s, ann);
  await a.send({ to: bob.user, body: 'hi' });
  await t.rejects(a.send({ to: 'unobody000000', body: 'x' }), { code: 'not_found' });
  const text = await (await fetch(`${s.base}/metrics`)).text();
  t.match(text, /^parley_commands_total\{command="send",result="ok"\} 1$/m);
  t.match(text, /^parley_commands_total\{command="send",result="not_found"\} 1$/m);
  t.match(text, /^parley_command_seconds_count\{command="send"\} 2$/m);
  t.match(text, /^parley_http_requests_total\{route="POST \/v1\/users",status="201"\} 2$/m);
  t.match(text, /^parley_http_request_seconds_count\{route="POST \/v1\/sessions"\} 1$/m);
  // Commit latency and batch sizes per shard: the send was committed (with fsync) on some shard.
  const commits = [...text.matchAll(/^parley_commit_seconds_count\{shard="(\d+)"\} (\d+)$/gm)].map((m) => Number(m[2]));
  t.equal(commits.length, 2, 'one series per shard');
  t.ok(commits.some((n) => n > 0), 'commits were timed');
  t.match(text, /^parley_commit_seconds_bucket\{le="\+Inf",shard="\d+"\} \d+$/m);
  const outputs = [...text.matchAll(/^parley_commit_outputs_total\{shard="\d+"\} (\d+)$/gm)].map((m) => Number(m[1]));
  t.ok(outputs.reduce((a, b) => a + b, 0) > 0, 'and the outputs they released counted');
  const asks = [...text.matchAll(/^parley_ask_seconds_count\{shard="\d+"\} (\d+)$/gm)].map((m) => Number(m[1]));
  t.ok(asks.length > 0 && asks.reduce((a, b) => a + b, 0) >= 2, 'asks to the shards are timed (at least the two sends)');
});

t.test('thread hops and LMDB transactions are counted: batches and envelopes per thread and direction', async (t) => {
  const s = await startTestServer(t);
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newUser(s, 'bob');
  const a = await connect(t, s, ann);
  const read = async () => {
    const text = await (await fetch(`${s.base}/metrics`)).text();
    const series = (name: string) => new Map([...text.matchAll(new RegExp(`^${name}\\{thread="(\\w+)",direction="(in|out)"\\} (\\d+)$`, 'gm'))]
      .map((m) => [`${m[1]} ${m[2]}`, Number(m[3])]));
    const txns = text.match(/^parley_storage_transactions_total (\d+)$/m);
    return { batches: series('parley_transport_batches_total'), envelopes: series('parley_transport_envelopes_total'), txns: txns ? Number(txns[1]) : NaN };
  };
  const before = await read();
  await a.send({ to: bob.user, body: 'hi' });
  const after = await read();
  const shards = [...new Set([...after.batches.keys()].map((k) => k.split(' ')[0]).filter((k) => k !== 'gateway'))];
  t.equal(shards.length, 2, 'a series per shard (labelled as in parley_commit_seconds)');
  t.same([...after.batches.keys()].sort(), [...shards, 'gateway'].flatMap((k) => [`${k} in`, `${k} out`]).sort(), 'and the gateway, each way');
  t.ok(after.envelopes.get('gateway out')! > (before.envelopes.get('gateway out') ?? 0), 'the send went to a shard from the gateway');
  t.ok(after.envelopes.get('gateway in')! > (before.envelopes.get('gateway in') ?? 0), 'and its answer came back');
  for (const [key, batches] of after.batches) t.ok(after.envelopes.get(key)! >= batches, `${key}: every batch carries at least one envelope`);
  t.ok(after.txns > before.txns, 'the send was committed in an LMDB transaction');
});
