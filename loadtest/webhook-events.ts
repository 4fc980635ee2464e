// Event webhooks to a local receiver (issue 13): one sender sends MESSAGES messages (default 20,000)
// to THREADS partners; the receiver answers 503 until every send is acknowledged, so the events pile
// up in the outboxes and the global log; then it accepts, and the figure — events/s from the release
// to the last event — is the dispatcher's own delivery rate (WEBHOOK_BATCH per POST, one POST in
// flight), not the sender's. Also checks that every message arrived, in order per thread. Server,
// sender and receiver share this machine.
//
//   npm run build && node dist/loadtest/webhook-events.js [--messages 20000] [--threads 10] [--batch 100]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { login, ParleyClient, register } from '../client/index.js';
import { Abort, killEverythingSync } from './bench/children.js';
import { round } from './bench/proc.js';
import { startServer, stopServer } from './bench/server.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, threads: { type: 'string', default: '10' }, batch: { type: 'string', default: '100' }, window: { type: 'string', default: '64' } } });
const MESSAGES = Number(values.messages);
const THREADS = Number(values.threads);
const SECRET = 'webhook-events-load-test-secret-0123456789';

async function main(): Promise<void> {
  let accepting = false;
  const seen = new Set<number>();
  /** per thread: the last seq received and whether one ever came out of order */
  const lastSeq = new Map<string, number>();
  let outOfOrder = 0;
  let posts = 0;
  let releasedAt = 0;
  let last = 0;
  let done: (() => void) | null = null;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!accepting) return void res.writeHead(503).end();
      posts++;
      const { events } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: { id: number; thread: string; message: { seq: number } }[] };
      for (const e of events) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        if (e.message.seq !== (lastSeq.get(e.thread) ?? 0) + 1) outOfOrder++;
        lastSeq.set(e.thread, e.message.seq);
      }
      last = performance.now();
      res.writeHead(200).end();
      if (seen.size >= MESSAGES) done?.();
    });
  });
  receiver.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  Object.assign(process.env, {
    WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`, WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: 'message.created', WEBHOOK_BATCH: values.batch, WEBHOOK_BACKOFF: '20ms', WEBHOOK_BACKOFF_MAX: '50ms',
  });
  const abort = new Abort();
  const server = await startServer('parley', { durability: 'fsync' }, abort);
  try {
    const prefix = `we${Date.now() % 100000}`;
    const account = async (name: string) => {
      await register(server.base, { username: name, password: 'correct horse battery' });
      return login(server.base, { username: name, password: 'correct horse battery', device: 'phone' });
    };
    const partners: { user: string }[] = [];
    for (let i = 0; i < THREADS; i++) partners.push(await account(`${prefix}_${i}`));
    const sender = await account(`${prefix}_sender`);
    const c = new ParleyClient({ url: `ws://127.0.0.1:${server.port}/v1/ws`, token: sender.token, WebSocket, reconnect: false, requestTimeoutMs: 60_000 });
    await c.connect();
    const all = new Promise<void>((r) => (done = r));
    let t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: Number(values.window) }, async () => {
      while (next < MESSAGES) {
        const i = next++;
        await c.send({ to: partners[i % THREADS].user, body: `event ${i}` });
      }
    }));
    const sendS = (performance.now() - t0) / 1000;
    releasedAt = performance.now();
    accepting = true;
    const timeout = new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`only ${seen.size} of ${MESSAGES} events after 120 s`)), 120_000).unref());
    await Promise.race([all, timeout]);
    const spanS = (last - releasedAt) / 1000;
    console.log(`event webhooks to a local receiver: ${MESSAGES} messages over ${THREADS} threads, WEBHOOK_BATCH=${values.batch}, DURABILITY=fsync; server, sender and receiver on one 2-core machine`);
    console.log(`  sends (webhooks on, receiver refusing): ${round(MESSAGES / sendS)} msgs/s (${round(sendS, 2)} s, window ${values.window})`);
    console.log(`  delivery of the backlog: ${round(MESSAGES / spanS)} events/s (${round(spanS, 2)} s, ${posts} accepted POSTs)`);
    console.log(`  events received: ${seen.size} of ${MESSAGES}; out of order within a thread: ${outOfOrder}`);
    await c.close();
  } finally {
    await stopServer(server);
    receiver.closeAllConnections();
    receiver.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
