// Push notifications to a local webhook (issue 11): USERS offline users (default 10,000), each
// with one device registered for push, receive one message each from one sender; reports the
// notifications/s the webhook received (first to last notification), the sender's messages/s,
// and that every user got exactly one notification. The webhook holds every request until all
// messages are sent, so the jobs pile up in the push queue (the first PUSH_CONCURRENCY in flight)
// and the figure — from the release to the last notification — is the dispatcher's own rate, not
// the sender's. Server, sender and webhook share this machine.
//
//   npm run build && node dist/loadtest/push-notify.js [--users 10000] [--concurrency 32]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { login, ParleyClient, register, registerPush } from '../client/index.js';
import { Abort, killEverythingSync } from './bench/children.js';
import { round } from './bench/proc.js';
import { startServer, stopServer } from './bench/server.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '10000' }, concurrency: { type: 'string', default: '32' }, window: { type: 'string', default: '64' } } });
const USERS = Number(values.users);
const SECRET = 'push-notify-load-test-secret-0123456789';

async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

async function main(): Promise<void> {
  const seen = new Map<string, number>();
  let last = 0;
  let waiting: (() => void) | null = null;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void released.then(() => {
      const { user } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { user: string };
      seen.set(user, (seen.get(user) ?? 0) + 1);
      last = performance.now();
      res.writeHead(204).end();
      if (seen.size >= USERS) waiting?.();
    }));
  });
  hook.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  Object.assign(process.env, {
    PUSH_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/push`, PUSH_WEBHOOK_SECRET: SECRET,
    PUSH_CONCURRENCY: values.concurrency, PUSH_COALESCE: '100ms', PUSH_MAX_PER_HOUR: '1000',
  });
  const abort = new Abort();
  const server = await startServer('parley', { durability: 'fsync' }, abort);
  try {
    const prefix = `pn${Date.now() % 100000}`;
    const account = async (name: string) => {
      await register(server.base, { username: name, password: 'correct horse battery' });
      return login(server.base, { username: name, password: 'correct horse battery', device: 'phone' });
    };
    let t0 = performance.now();
    const receivers = await pool(USERS, 32, async (i) => {
      const r = await account(`${prefix}_${i}`);
      await registerPush(server.base, r.token, { provider: 'webhook', token: `tok-${i}` });
      return r;
    });
    const setupS = (performance.now() - t0) / 1000;
    const sender = await account(`${prefix}_sender`);
    const c = new ParleyClient({ url: `ws://127.0.0.1:${server.port}/v1/ws`, token: sender.token, WebSocket, reconnect: false, requestTimeoutMs: 60_000 });
    await c.connect();
    const all = new Promise<void>((r) => (waiting = r));
    t0 = performance.now();
    await pool(USERS, Number(values.window), (i) => c.send({ to: receivers[i].user, body: `hello ${i}` }));
    const sendS = (performance.now() - t0) / 1000;
    const releasedAt = performance.now();
    release();
    const timeout = new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`only ${seen.size} of ${USERS} notified after 120 s`)), 120_000).unref());
    await Promise.race([all, timeout]);
    const spanS = (last - releasedAt) / 1000;
    const twice = [...seen.values()].filter((n) => n > 1).length;
    console.log(`push to a local webhook: ${USERS} offline users, one message each, PUSH_CONCURRENCY=${values.concurrency}, DURABILITY=fsync; server, sender and webhook on one 2-core machine`);
    console.log(`  setup (register, login, register push): ${round(setupS, 1)} s`);
    console.log(`  sends: ${round(USERS / sendS)} msgs/s (${round(sendS, 2)} s, window ${values.window})`);
    console.log(`  notifications: ${round(USERS / spanS)} /s (from the release of the backlog to the last: ${round(spanS, 2)} s)`);
    console.log(`  users notified: ${seen.size} of ${USERS}; notified more than once: ${twice}`);
    await c.close();
  } finally {
    await stopServer(server);
    hook.closeAllConnections();
    hook.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
