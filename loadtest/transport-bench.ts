// Micro-benchmark of the transports: envelopes/s between two worker threads (sender ->
// receiver), for several batch sizes (envelopes sent per tick): through a real MessageChannel
// (PortTransport) and, with --nats, through a local nats-server the bench starts, one NATS
// connection per thread (NatsTransport), as between threads of two nodes.
// Run: npx tsc -p tsconfig.json --outDir dist-x && node dist-x/loadtest/transport-bench.js [seconds] [--nats]
import { connect } from '@nats-io/transport-node';
import { MessageChannel, Worker, isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Kind, type Envelope } from '../actors/envelope.js';
import { createLogger } from '../actors/log.js';
import { NatsTransport } from '../actors/nats-transport.js';
import { PortTransport } from '../actors/port-transport.js';
import type { PeerId, Transport, TransportEvents } from '../actors/transport.js';
import { natsMissing, startNats } from '../test/helpers/nats-server.js';

interface Role {
  role: 'sender' | 'receiver';
  /** the transport channel's end for this worker */
  port: MessagePort;
  /** receiver -> sender credit (cumulative envelopes received), and results to the parent */
  credit: MessagePort;
  batch: number;
  seconds: number;
  /** set: the transport is a NatsTransport on its own connection to this server */
  nats?: { url: string; prefix: string };
}

interface Result {
  envelopes: number;
  ms: number;
  bytes: number;
}

/** At most this many batches in flight: keeps the port's queue bounded while the pipe stays full. */
const WINDOW_BATCHES = 8;
const SENDER = 1;
const RECEIVER = 2;

// Two shapes that dominate real traffic: a tell to a thread actor and a push of an encoded frame.
const body = 'hello, this is a chat message of a typical length for a benchmark';
const frame = new Uint8Array(96).fill(0x61);
function envelope(i: number): Envelope {
  return i & 1
    ? [Kind.push, [i & 1023, (i + 1) & 1023], frame, i]
    : [Kind.tell, `thread:d:u${i & 4095}:u${(i + 7) & 4095}`, { op: 'send', from: `u${i & 4095}`, cid: `c${i}`, body, seq: i }];
}

// 'error': the receiver closing first at the end of a case is expected (a 'peer gone' warning).
const log = createLogger('error', { bench: 'transport' });

/** This worker's transport, linked to the other worker; the parent is told once it is. */
async function link(r: Role, self: PeerId, other: PeerId, events: TransportEvents): Promise<Transport> {
  if (!r.nats) {
    const t = new PortTransport(self, events, log);
    t.connect(other, r.port);
    parentPort!.postMessage({ ready: true });
    return t;
  }
  const nc = await connect({ servers: r.nats.url });
  let up: () => void = () => {};
  const linked = new Promise<void>((resolve) => (up = resolve));
  const t = new NatsTransport(self, { ...events, onPeerUp: (peer) => peer === other && up() }, log, { nc, prefix: r.nats.prefix, epoch: 1 });
  await t.start();
  await linked;
  parentPort!.postMessage({ ready: true });
  return t;
}

async function runSender(r: Role): Promise<void> {
  const t = await link(r, SENDER, RECEIVER, { onBatch: () => {} });
  let sent = 0;
  let acked = 0;
  let stopAt = 0;
  let waiting = false;
  const window = WINDOW_BATCHES * r.batch;
  const tick = (): void => {
    if (performance.now() >= stopAt) {
      r.credit.postMessage({ done: sent });
      return;
    }
    if (sent - acked + r.batch > window) {
      waiting = true; // resumed by the next credit
      return;
    }
    for (let i = 0; i < r.batch; i++) t.send(RECEIVER, envelope(sent + i));
    sent += r.batch;
    setImmediate(tick);
  };
  r.credit.on('message', (m: { go?: true; acked?: number }) => {
    if (m.go) {
      stopAt = performance.now() + r.seconds * 1000;
      setImmediate(tick);
      return;
    }
    acked = m.acked!;
    if (waiting) {
      waiting = false;
      setImmediate(tick);
    }
  });
}

async function runReceiver(r: Role): Promise<void> {
  let received = 0;
  let first = 0;
  let last = 0;
  const t = await link(r, RECEIVER, SENDER, {
    onBatch: (_from, envelopes) => {
      if (received === 0) first = performance.now();
      received += envelopes.length;
      last = performance.now();
      r.credit.postMessage({ acked: received });
    },
  });
  parentPort!.on('message', (m: { report?: true }) => {
    if (!m.report) return;
    const result: Result = { envelopes: received, ms: last - first, bytes: t.stats.bytesIn ?? 0 };
    parentPort!.postMessage(result);
    t.close();
    r.port.close();
    r.credit.close();
  });
}

let runs = 0;

async function measure(batch: number, seconds: number, natsUrl?: string): Promise<Result> {
  const nats = natsUrl ? { url: natsUrl, prefix: `bench.transport.r${++runs}` } : undefined;
  const data = new MessageChannel();
  const credit = new MessageChannel();
  const url = new URL(import.meta.url);
  const receiver = new Worker(url, {
    workerData: { role: 'receiver', port: data.port2, credit: credit.port2, batch, seconds, nats } satisfies Role,
    transferList: [data.port2, credit.port2],
  });
  const control = new MessageChannel();
  const sender = new Worker(url, {
    workerData: { role: 'sender', port: data.port1, credit: control.port2, batch, seconds, nats } satisfies Role,
    transferList: [data.port1, control.port2],
  });
  // The parent relays credit (receiver -> sender) so it can also see "done" and start the run.
  const done = new Promise<void>((resolve) => {
    credit.port1.on('message', (m) => control.port1.postMessage(m));
    control.port1.on('message', (m: { done?: number }) => {
      if (m.done !== undefined) resolve();
    });
  });
  const ready = (w: Worker) => new Promise<void>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await Promise.all([ready(sender), ready(receiver)]);
  control.port1.postMessage({ go: true });
  await done;
  // Let the receiver take what is still in flight (at most the window), then ask for its count.
  const result = await new Promise<Result>((resolve, reject) => {
    receiver.once('message', resolve);
    receiver.once('error', reject);
    setImmediate(() => receiver.postMessage({ report: true }));
  });
  credit.port1.close();
  control.port1.close();
  await Promise.all([sender.terminate(), receiver.terminate()]);
  return result;
}

/** A sender transport linked to a receiver in this thread, for senderCost; `end` undoes it. */
interface Linked { t: Transport; end(): Promise<void> }

function portPair(): Promise<Linked> {
  const { port1, port2 } = new MessageChannel();
  const t = new PortTransport(SENDER, { onBatch: () => {} }, log);
  t.connect(RECEIVER, port1);
  return Promise.resolve({ t, end: async () => (t.close(), port2.close()) });
}

async function natsPair(url: string): Promise<Linked> {
  const prefix = `bench.cost.r${++runs}`;
  const [snc, rnc] = await Promise.all([connect({ servers: url }), connect({ servers: url })]);
  let up: () => void = () => {};
  const linked = new Promise<void>((resolve) => (up = resolve));
  const t = new NatsTransport(SENDER, { onBatch: () => {}, onPeerUp: () => up() }, log, { nc: snc, prefix, epoch: 1 });
  const receiver = new NatsTransport(RECEIVER, { onBatch: () => {} }, log, { nc: rnc, prefix, epoch: 1 });
  await t.start();
  await receiver.start();
  await linked;
  return {
    t,
    end: async () => {
      await t.stop();
      await receiver.stop();
      await Promise.all([snc.close(), rnc.close()]);
    },
  };
}

/**
 * The sender's own cost, alone: time inside flush() (encode, copy, post: for NATS, into the
 * connection's outbound buffer) for `batches` batches, best of 5 rounds. Less sensitive to a busy
 * machine than the two-thread throughput above.
 */
async function senderCost(batch: number, batches: number, pair: () => Promise<Linked>): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const { t, end } = await pair();
    let ms = 0;
    for (let b = 0; b < batches; b++) {
      for (let i = 0; i < batch; i++) t.send(RECEIVER, envelope(b * batch + i));
      const start = performance.now();
      t.flush();
      ms += performance.now() - start;
    }
    await end();
    best = Math.min(best, ms);
  }
  return (best * 1e6) / (batch * batches); // ns per envelope
}

async function costs(name: string, pair: () => Promise<Linked>): Promise<void> {
  for (const batch of [16, 256]) {
    const ns = await senderCost(batch, 200_000 / batch, pair);
    console.log(`${name} sender cost, batch ${String(batch).padStart(4)}: ${ns.toFixed(0)} ns/envelope (best of 5)`);
  }
}

const BATCHES = [1, 16, 256, 2048];

async function cases(name: string, seconds: number, natsUrl?: string): Promise<void> {
  for (const batch of BATCHES) {
    const r = await measure(batch, seconds, natsUrl);
    const rate = (r.envelopes / r.ms) * 1000;
    const mbs = r.bytes ? ` ${((r.bytes / r.ms) * 1000 / 1e6).toFixed(1)} MB/s` : '';
    console.log(`${name} batch ${String(batch).padStart(4)}: ${Math.round(rate).toLocaleString('en-US').padStart(11)} envelopes/s${mbs}  (${r.envelopes} in ${r.ms.toFixed(0)} ms)`);
  }
}

/** What the bench started (the nats-server, its store), undone at the end, failure or not. */
const teardowns: (() => unknown)[] = [];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seconds = Number(args.find((a) => !a.startsWith('--')) ?? 3);
  const withNats = args.includes('--nats');
  console.log(`transport-bench: ${seconds}s per case, window ${WINDOW_BATCHES} batches, node ${process.version}`);
  await cases('port', seconds);
  await costs('port', portPair);
  if (!withNats) return;
  if (natsMissing) throw new Error(natsMissing);
  const nats = await startNats({ teardown: (fn) => teardowns.unshift(fn) });
  console.log(`nats: a local nats-server on port ${nats.port}, one connection per thread`);
  await cases('nats', seconds, nats.url);
  await costs('nats', () => natsPair(nats.url));
}

async function undo(): Promise<void> {
  for (const fn of teardowns) await fn();
}

if (isMainThread) {
  main().then(undo, async (err) => {
    console.error(err);
    await undo();
    process.exit(1);
  });
} else {
  const r = workerData as Role;
  (r.role === 'sender' ? runSender(r) : runReceiver(r)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
