// Server API sends/s (issue 13): CONCURRENCY keep-alive HTTP clients POST /v1/server/messages for
// SECONDS (≤ 20), as SENDERS app users (one 1:1 thread each) to one password user whose SDK socket
// counts what arrives. Reports answered sends/s, latency p50/p99, and that every answered send
// reached the receiver exactly once. Server and load generator share this machine.
//
//   npm run build && node dist/loadtest/server-api-send.js [--seconds 10] [--concurrency 16] [--senders 16] [--durability fsync]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { login, ParleyClient, register } from '../client/index.js';
import { Abort, killEverythingSync } from './bench/children.js';
import { round } from './bench/proc.js';
import { startServer, stopServer } from './bench/server.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '16' },
    senders: { type: 'string', default: '16' }, durability: { type: 'string', default: 'fsync' },
  },
});
const SECONDS = Math.min(20, Number(values.seconds));
const CONCURRENCY = Number(values.concurrency);
const SENDERS = Number(values.senders);
const DURABILITY = values.durability === 'relaxed' ? 'relaxed' : 'fsync';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main(): Promise<void> {
  const key = `bench_${randomBytes(24).toString('base64url')}`;
  process.env.API_KEYS = `${key}:admin`;
  const abort = new Abort();
  const server = await startServer('parley', { durability: DURABILITY }, abort);
  try {
    const api = async (path: string, body: unknown): Promise<{ status: number; body: any }> => {
      const res = await fetch(`${server.base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const name = `sa${Date.now() % 100000}`;
    await register(server.base, { username: name, password: 'correct horse battery' });
    const receiver = await login(server.base, { username: name, password: 'correct horse battery', device: 'phone' });
    const c = new ParleyClient({ url: `ws://127.0.0.1:${server.port}/v1/ws`, token: receiver.token, WebSocket, reconnect: false });
    const seen = new Map<string, number>();
    c.on('msg', (m: any) => seen.set(m.id, (seen.get(m.id) ?? 0) + 1));
    await c.connect();
    const senders: string[] = [];
    for (let i = 0; i < SENDERS; i++) {
      const made = await api('/v1/server/users', { id: `${name}-sender-${i}`, bot: i % 2 === 0 });
      senders.push(made.body.id);
    }

    const latencies: number[] = [];
    const ids = new Set<string>();
    let errors = 0;
    let n = 0;
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
      while (performance.now() < end) {
        const started = performance.now();
        const i = n++;
        const r = await api('/v1/server/messages', { as: senders[(w + i) % SENDERS], to: receiver.user, body: `message ${i}` });
        if (r.status === 201) {
          latencies.push(performance.now() - started);
          ids.add(r.body.id);
        } else errors++;
      }
    }));
    const spanS = (performance.now() - t0) / 1000;
    // Every answered send is durable and fanned out: wait for the receiver to have them all.
    const deadline = Date.now() + 30_000;
    while ([...ids].some((id) => !seen.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const missing = [...ids].filter((id) => !seen.has(id)).length;
    const twice = [...seen.values()].filter((k) => k > 1).length;
    latencies.sort((a, b) => a - b);
    console.log(`server API sends: POST /v1/server/messages, ${CONCURRENCY} keep-alive clients, ${SENDERS} senders → 1 receiver socket, ${round(spanS, 1)} s, DURABILITY=${DURABILITY}, RATE_LIMITS=off; server and load generator share this machine's cores`);
    console.log(`  sends: ${round(ids.size / spanS)} /s (${ids.size} answered 201, ${errors} errors)`);
    console.log(`  latency: p50 ${round(percentile(latencies, 50), 2)} ms, p99 ${round(percentile(latencies, 99), 2)} ms`);
    console.log(`  receiver: ${seen.size} distinct messages, missing ${missing}, more than once ${twice}`);
    await c.close();
  } finally {
    await stopServer(server);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
