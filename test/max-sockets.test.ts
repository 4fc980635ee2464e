// MAX_SOCKETS: a process holds at most that many WebSockets (by default its open-file limit less
// a reserve, so a full node never runs out of files and spins in accept); beyond, the upgrade is
// answered 503 with Retry-After and a JSON reason, and a freed place is taken again.
import t from 'tap';
import { WebSocket } from 'ws';
import { defaultMaxSockets, FILE_RESERVE, maxSocketsFor, openFileLimit } from '../src/limits/open-files.js';
import { metric } from './helpers/metrics.js';
import { startTestServer } from './helpers/server.js';

/** Opens a WebSocket: 'open', or the HTTP status and body of a refused upgrade. */
function dial(url: string): Promise<{ ws: WebSocket } | { status: number; retryAfter: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    ws.once('error', reject);
  });
}

t.test('the default leaves the reserve of the open-file limit', async (t) => {
  const limit = openFileLimit();
  t.ok(limit === undefined || limit > 0, `limit read: ${limit}`);
  t.equal(maxSocketsFor(20_000), 20_000 - FILE_RESERVE);
  t.equal(maxSocketsFor(undefined), 1_000_000, 'no limit known');
  t.equal(maxSocketsFor(10), 16, 'never below 16');
  t.equal(defaultMaxSockets(), maxSocketsFor(limit), 'the default is this process\'s');
});

t.test('beyond MAX_SOCKETS: 503 with Retry-After and a reason; a freed place is taken again', async (t) => {
  const s = await startTestServer(t, { maxSockets: 2 });
  const first = await dial(s.wsUrl);
  const second = await dial(s.wsUrl);
  t.ok('ws' in first && 'ws' in second, 'two are accepted');
  const third = await dial(s.wsUrl);
  t.match(third, { status: 503, retryAfter: '5' });
  t.match(JSON.parse((third as { body: string }).body), { error: 'unavailable', message: /as many connections as it may/, retry: 5000 });
  const closed = new Promise((resolve) => (first as { ws: WebSocket }).ws.once('close', resolve));
  (first as { ws: WebSocket }).ws.close();
  await closed;
  // The server counts the close when it handles it: wait for that, not for time.
  while ((await metric(s.base, 'parley_connections')) !== 1) await new Promise((r) => setImmediate(r));
  const again = await dial(s.wsUrl);
  t.ok('ws' in again, 'accepted once one closed');
  for (const d of [second, again]) if ('ws' in d) d.ws.close();
});
