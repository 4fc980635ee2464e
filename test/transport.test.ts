// PortTransport between real threads: a worker that echoes tells and answers asks, so order,
// encoding failures, garbage on the wire and a dying peer are checked across a thread boundary.
import t, { type Test } from 'tap';
import { MessageChannel, Worker } from 'node:worker_threads';
import { Kind, type Envelope } from '../actors/envelope.js';
import { PortTransport } from '../actors/port-transport.js';
import type { TransportStats } from '../actors/transport.js';
import { captureLog, Recorder } from './helpers/transport-contract.js';
import type { EchoWorkerData } from './helpers/transport-echo-worker.js';

const MAIN = 0;
const WORKER = 1;

async function withWorker(t: Test) {
  const rec = new Recorder();
  const logs = captureLog();
  const transport = new PortTransport(MAIN, rec, logs.log);
  const { port1, port2 } = new MessageChannel();
  transport.connect(WORKER, port1);
  const data: EchoWorkerData = { self: WORKER, peer: MAIN, port: port2 };
  // execArgv: [] spares the worker tap's loaders (plain compiled JS), which start slowly.
  const worker = new Worker(new URL('./helpers/transport-echo-worker.js', import.meta.url), { workerData: data, transferList: [port2], execArgv: [] });
  t.teardown(async () => {
    transport.close();
    await worker.terminate();
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('online', resolve);
    worker.once('error', reject);
  });
  let nextId = 1;
  /** Asks the worker; resolves with the reply envelope, waiting for that event. */
  const ask = async (op: string): Promise<Envelope> => {
    const id = nextId++;
    transport.send(WORKER, [Kind.ask, 'echo', { op }, MAIN, id]);
    const isIt = (e: Envelope) => e[0] === Kind.reply && e[1] === id;
    await rec.until(`the reply to ask ${id}`, () => rec.envelopes().some(isIt));
    return rec.envelopes().find(isIt)!;
  };
  return { rec, logs, transport, worker, port1, ask };
}

t.test('one batch per destination per tick, order kept, bytes unchanged', async (t) => {
  const batches: Envelope[][] = [];
  const { port1, port2 } = new MessageChannel();
  const log = captureLog().log;
  const a = new PortTransport(0, { onBatch: () => {} }, log);
  let arrived!: () => void;
  const first = new Promise<void>((resolve) => (arrived = resolve));
  const b = new PortTransport(1, { onBatch: (_from, envelopes) => { batches.push(envelopes); arrived(); } }, log);
  a.connect(1, port1);
  b.connect(0, port2);
  t.teardown(() => { a.close(); b.close(); });

  const frame = new Uint8Array([0x81, 0xa1, 0x74, 0xa1, 0x78]);
  for (let i = 0; i < 100; i++) a.send(1, [Kind.tell, `user:u${i}`, { op: 'ack', device: 'd', u: i }]);
  a.send(1, [Kind.push, [1, 2], frame, 7]);
  await first;
  t.equal(batches.length, 1, 'a single batch');
  t.equal(a.stats.batchesOut, 1);
  t.equal(batches[0].length, 101);
  t.same(batches[0].slice(0, 100).map((e) => (e[2] as { u: number }).u), Array.from({ length: 100 }, (_, i) => i));
  const push = batches[0][100];
  t.equal(push[0], Kind.push);
  t.same(Array.from(push[2] as Uint8Array), Array.from(frame), 'bytes arrive unchanged');
});

t.test('across a worker thread: every envelope comes back once, in order, over 20 ticks', async (t) => {
  const { rec, transport } = await withWorker(t);
  const total = 2000;
  for (let k = 0; k < 20; k++) {
    for (let i = 0; i < total / 20; i++) transport.send(WORKER, [Kind.tell, 'echo', { op: 'n', n: k * 100 + i }]);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await rec.until('every echo', () => rec.envelopes().length >= total);
  t.same(rec.envelopes().map((e) => (e[2] as { n: number }).n), Array.from({ length: total }, (_, i) => i));
});

t.test('across a worker thread: an answer the worker cannot encode arrives as `internal`, and the worker lives on', async (t) => {
  const { ask } = await withWorker(t);
  t.match(await ask('bigint'), [Kind.reply, Number, null, 'internal', /could not be encoded/]);
  t.match(await ask('echo'), [Kind.reply, Number, { op: 'echo' }]);
  const stats = (await ask('stats'))[2] as TransportStats;
  t.equal(stats.encodeFailures, 1, 'the worker counted it');
});

t.test('across a worker thread: garbage on the wire is counted by the worker, which keeps answering', async (t) => {
  const { ask, port1 } = await withWorker(t);
  port1.postMessage(new Uint8Array([0x92, 0x01])); // truncated list
  port1.postMessage('not bytes at all');
  const stats = (await ask('stats'))[2] as TransportStats;
  t.equal(stats.decodeFailures, 2);
  t.equal(stats.batchesIn, 1, 'only the ask decoded');
});

t.test('a worker that dies: peer down at once, asks to it answered `unavailable` without a timeout', async (t) => {
  const { rec, transport, worker, ask } = await withWorker(t);
  await ask('echo');
  await worker.terminate();
  await rec.until('peer down', () => rec.down.includes(WORKER));
  // Nothing here has a timeout but the wait's safety net: only the transport can answer this.
  t.match(await ask('echo'), [Kind.reply, Number, null, 'unavailable', String]);
  t.match(rec.undeliverable, [{ dest: WORKER, reason: 'gone' }]);
  t.equal(transport.stats.undeliverable, 1);
});
