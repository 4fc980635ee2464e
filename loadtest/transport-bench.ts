// Micro-benchmark of the thread transport: envelopes/s through a real MessageChannel between two
// worker threads (sender -> receiver), for several batch sizes (envelopes sent per tick).
// Run: npx tsc -p tsconfig.json --outDir dist-x && node dist-x/loadtest/transport-bench.js [seconds]
import { MessageChannel, Worker, isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Kind, type Envelope } from '../actors/envelope.js';
import { createLogger } from '../actors/log.js';
import { PortTransport } from '../actors/port-transport.js';

interface Role {
  role: 'sender' | 'receiver';
  /** the transport channel's end for this worker */
  port: MessagePort;
  /** receiver -> sender credit (cumulative envelopes received), and results to the parent */
  credit: MessagePort;
  batch: number;
  seconds: number;
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

function runSender(r: Role): void {
  const t = new PortTransport(SENDER, { onBatch: () => {} }, log);
  t.connect(RECEIVER, r.port);
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

function runReceiver(r: Role): void {
  let received = 0;
  let first = 0;
  let last = 0;
  const t = new PortTransport(RECEIVER, {
    onBatch: (_from, envelopes) => {
      if (received === 0) first = performance.now();
      received += envelopes.length;
      last = performance.now();
      r.credit.postMessage({ acked: received });
    },
  }, log);
  t.connect(SENDER, r.port);
  parentPort!.on('message', (m: { report?: true }) => {
    if (!m.report) return;
    const result: Result = { envelopes: received, ms: last - first, bytes: t.stats.bytesIn ?? 0 };
    parentPort!.postMessage(result);
    t.close();
    r.port.close();
    r.credit.close();
  });
}

async function measure(batch: number, seconds: number): Promise<Result> {
  const data = new MessageChannel();
  const credit = new MessageChannel();
  const url = new URL(import.meta.url);
  const receiver = new Worker(url, {
    workerData: { role: 'receiver', port: data.port2, credit: credit.port2, batch, seconds } satisfies Role,
    transferList: [data.port2, credit.port2],
  });
  const control = new MessageChannel();
  const sender = new Worker(url, {
    workerData: { role: 'sender', port: data.port1, credit: control.port2, batch, seconds } satisfies Role,
    transferList: [data.port1, control.port2],
  });
  // The parent relays credit (receiver -> sender) so it can also see "done" and start the run.
  const done = new Promise<void>((resolve) => {
    credit.port1.on('message', (m) => control.port1.postMessage(m));
    control.port1.on('message', (m: { done?: number }) => {
      if (m.done !== undefined) resolve();
    });
  });
  const online = (w: Worker) => new Promise<void>((resolve, reject) => { w.once('online', resolve); w.once('error', reject); });
  await Promise.all([online(sender), online(receiver)]);
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

/**
 * The sender's own cost, alone: time inside flush() (encode, copy, post) for `batches` batches,
 * best of 5 rounds. Less sensitive to a busy machine than the two-thread throughput above.
 */
function senderCost(batch: number, batches: number): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const { port1, port2 } = new MessageChannel();
    const t = new PortTransport(SENDER, { onBatch: () => {} }, log);
    t.connect(RECEIVER, port1);
    let ms = 0;
    for (let b = 0; b < batches; b++) {
      for (let i = 0; i < batch; i++) t.send(RECEIVER, envelope(b * batch + i));
      const start = performance.now();
      t.flush();
      ms += performance.now() - start;
    }
    t.close();
    port2.close();
    best = Math.min(best, ms);
  }
  return (best * 1e6) / (batch * batches); // ns per envelope
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3);
  console.log(`transport-bench: ${seconds}s per case, window ${WINDOW_BATCHES} batches, node ${process.version}`);
  for (const batch of [1, 16, 256, 2048]) {
    const r = await measure(batch, seconds);
    const rate = (r.envelopes / r.ms) * 1000;
    const mbs = r.bytes ? ` ${((r.bytes / r.ms) * 1000 / 1e6).toFixed(1)} MB/s` : '';
    console.log(`batch ${String(batch).padStart(4)}: ${Math.round(rate).toLocaleString('en-US').padStart(11)} envelopes/s${mbs}  (${r.envelopes} in ${r.ms.toFixed(0)} ms)`);
  }
  for (const batch of [16, 256]) {
    console.log(`sender cost, batch ${String(batch).padStart(4)}: ${senderCost(batch, 200_000 / batch).toFixed(0)} ns/envelope (best of 5)`);
  }
}

if (isMainThread) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  const r = workerData as Role;
  if (r.role === 'sender') runSender(r);
  else runReceiver(r);
}
