// The Transport contract (actors/transport.ts) as one suite that every implementation runs:
// give it a factory that connects N endpoints, and it checks batching, per-pair order, delivery
// to itself, encoding and decoding failures, undeliverable batches, dead peers and close.
import { pino, type Logger } from 'pino';
import type { Test } from 'tap';
import { Kind, type Envelope } from '../../actors/envelope.js';
import type { PeerId, Transport, TransportEvents, Undeliverable } from '../../actors/transport.js';

/** N connected endpoints built by an implementation under test. */
export interface TransportFixture {
  /** endpoint i; peers address it as transports[i].self */
  transports: Transport[];
  /** Puts raw bytes on the wire from endpoint `from` to endpoint `to`, where a batch would go. */
  inject(from: number, to: number, bytes: Uint8Array): void;
  /** Ends endpoint i as abruptly as the implementation allows (a crash, ideally). */
  kill(i: number): Promise<void>;
  /** Tears everything down. */
  close(): Promise<void>;
}

/** Builds `events.length` endpoints, endpoint i reporting to events[i], all logging to `log`. */
export type TransportFactory = (events: TransportEvents[], log: Logger) => Promise<TransportFixture>;

const WAIT_MS = 10_000; // safety net only: every wait ends on the event it waits for

/** Records what one endpoint's transport reports, and lets a test wait for it. */
export class Recorder implements TransportEvents {
  readonly batches: { from: PeerId; envelopes: Envelope[] }[] = [];
  readonly undeliverable: { dest: PeerId; envelopes: Envelope[]; reason: Undeliverable }[] = [];
  readonly down: PeerId[] = [];
  readonly up: PeerId[] = [];
  /** the next batch handler call throws (after recording the batch) */
  throwNext = false;
  private readonly waiters = new Set<() => void>();

  onBatch = (from: PeerId, envelopes: Envelope[]): void => {
    this.batches.push({ from, envelopes });
    this.wake();
    if (this.throwNext) {
      this.throwNext = false;
      throw new Error('handler failure on purpose');
    }
  };

  onUndeliverable = (dest: PeerId, envelopes: Envelope[], reason: Undeliverable): void => {
    this.undeliverable.push({ dest, envelopes, reason });
    this.wake();
  };

  onPeerDown = (peer: PeerId): void => {
    this.down.push(peer);
    this.wake();
  };

  onPeerUp = (peer: PeerId): void => {
    this.up.push(peer);
    this.wake();
  };

  /** Envelopes received, in arrival order (optionally only those from `from`). */
  envelopes(from?: PeerId): Envelope[] {
    return this.batches.filter((b) => from === undefined || b.from === from).flatMap((b) => b.envelopes);
  }

  /** Resolves once `ready()` holds, checked now and after every event. */
  until(what: string, ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`));
      }, WAIT_MS);
      const check = (): void => {
        if (!ready()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }
}

export interface LogLine {
  level: number;
  msg: string;
  err?: { message: string; type: string };
  [key: string]: unknown;
}

/** A real pino logger whose lines are kept for the test to read. */
export function captureLog(): { log: Logger; lines: LogLine[]; at: (level: 'warn' | 'error', msg: RegExp) => LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const levels = { warn: 40, error: 50 };
  return { log, lines, at: (level, msg) => lines.filter((l) => l.level === levels[level] && msg.test(l.msg)) };
}

// Envelopes with a sequence number in the message, so order can be checked.
const tell = (i: number, extra: Record<string, unknown> = {}): Envelope => [Kind.tell, `user:u${i}`, { op: 'ack', u: i, ...extra }];
const seqOf = (e: Envelope): number => (e[2] as { u: number }).u;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function detached(): Uint8Array {
  const bytes = new Uint8Array([1, 2, 3]);
  structuredClone(bytes.buffer, { transfer: [bytes.buffer] });
  return bytes;
}

function nested(depth: number): unknown {
  let v: unknown[] = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function cyclic(): unknown {
  const o: Record<string, unknown> = { op: 'x' };
  o.self = o;
  return o;
}

/** Values msgpack cannot carry, and what the cause logged for each must say. */
export const UNENCODABLE: { name: string; value: () => unknown; cause: RegExp }[] = [
  { name: 'a BigInt wider than 64 bits', value: () => 2n ** 70n, cause: /too large/ },
  { name: 'a Uint8Array whose buffer was transferred (detached)', value: detached, cause: /detached/ },
  { name: 'a function', value: () => () => 1, cause: /function/ },
  { name: 'a symbol', value: () => Symbol('s'), cause: /symbol/ },
  { name: 'nesting 100,000 deep', value: () => nested(100_000), cause: /call stack/ },
  { name: 'a cycle', value: cyclic, cause: /call stack/ },
];

/** Runs the whole contract against `factory` as subtests of `t`. */
export function transportContract(t: Test, factory: TransportFactory): void {
  /** Builds n endpoints for one subtest and tears them down after it. */
  async function setup(t: Test, n: number) {
    const recorders = range(n).map(() => new Recorder());
    const logs = captureLog();
    const fx = await factory(recorders, logs.log);
    t.teardown(() => fx.close());
    const peer = (i: number): PeerId => fx.transports[i].self;
    return { fx, tr: fx.transports, rec: recorders, peer, logs };
  }

  t.test('everything sent in one tick to one destination arrives as one batch, in order', async (t) => {
    const { tr, rec, peer } = await setup(t, 3);
    const frame = new Uint8Array([0x81, 0xa1, 0x74, 0xa1, 0x78]);
    for (const i of range(100)) tr[0].send(peer(1), tell(i));
    tr[0].send(peer(1), [Kind.push, [1, 2], frame, 7]);
    for (const i of range(10)) tr[0].send(peer(2), tell(i));
    await rec[1].until('101 envelopes at 1', () => rec[1].envelopes().length >= 101);
    await rec[2].until('10 envelopes at 2', () => rec[2].envelopes().length >= 10);
    t.equal(rec[1].batches.length, 1, 'one batch to 1');
    t.equal(rec[2].batches.length, 1, 'one batch to 2');
    t.equal(rec[1].batches[0].from, peer(0), 'the batch names its sender');
    t.equal(tr[0].stats.batchesOut, 2, 'one batch per destination');
    t.equal(tr[0].stats.envelopesOut, 111);
    t.same(rec[1].envelopes().slice(0, 100).map(seqOf), range(100), 'in send order');
    const push = rec[1].envelopes()[100];
    t.equal(push[0], Kind.push);
    t.same(Array.from(push[2] as Uint8Array), Array.from(frame), 'bytes arrive unchanged');
    t.equal(tr[1].stats.batchesIn, 1);
    t.equal(tr[1].stats.envelopesIn, 101);
    t.ok(tr[1].stats.bytesIn > 0, 'bytes counted');
    t.equal(tr[1].stats.bytesIn + tr[2].stats.bytesIn, tr[0].stats.bytesOut, 'bytes in = bytes out');
  });

  t.test('per-pair order holds across ticks, for each of two senders to one receiver', async (t) => {
    const { tr, rec, peer } = await setup(t, 3);
    const ticks = 50;
    const perTick = 20;
    for (let k = 0; k < ticks; k++) {
      for (let i = 0; i < perTick; i++) {
        tr[0].send(peer(1), tell(k * perTick + i));
        tr[2].send(peer(1), tell(k * perTick + i));
      }
      await nextTick();
    }
    const total = ticks * perTick;
    await rec[1].until('all envelopes', () => rec[1].envelopes().length >= 2 * total);
    t.same(rec[1].envelopes(peer(0)).map(seqOf), range(total), 'from 0: every envelope once, in order');
    t.same(rec[1].envelopes(peer(2)).map(seqOf), range(total), 'from 2: every envelope once, in order');
    t.equal(tr[0].envelopesTo(peer(1)), total, 'sender counts what it handed over');
    t.equal(tr[1].envelopesFrom(peer(0)), total, 'receiver counts the same');
  });

  t.test('to itself: delivered by the flush, not re-entrantly, by reference', async (t) => {
    const { tr, rec, peer } = await setup(t, 1);
    const msg = { op: 'ack', u: 1, fn: () => 1 }; // not encodable: proves no encoding happens
    tr[0].send(peer(0), [Kind.tell, 'user:me', msg]);
    t.equal(rec[0].batches.length, 0, 'nothing delivered inside send()');
    await rec[0].until('the batch to itself', () => rec[0].batches.length > 0);
    t.equal(rec[0].batches[0].from, peer(0));
    t.equal(rec[0].batches[0].envelopes[0][2], msg, 'the same object arrives');
    t.equal(tr[0].stats.encodeFailures, 0);
  });

  t.test('flush() sends what is queued at once', async (t) => {
    const { tr, rec, peer } = await setup(t, 2);
    tr[0].send(peer(1), tell(1));
    tr[0].flush();
    t.equal(tr[0].stats.batchesOut, 1, 'sent inside flush()');
    tr[0].send(peer(1), tell(2));
    await rec[1].until('both', () => rec[1].envelopes().length >= 2);
    t.same(rec[1].envelopes().map(seqOf), [1, 2]);
    t.equal(rec[1].batches.length, 2, 'the explicit flush closed the first batch');
  });

  t.test('an envelope that cannot be encoded is dropped alone, logged with its cause; the rest arrives in order', async (t) => {
    for (const c of UNENCODABLE) {
      t.test(c.name, async (t) => {
        const { tr, rec, peer, logs } = await setup(t, 2);
        tr[0].send(peer(1), tell(0));
        tr[0].send(peer(1), tell(1, { bad: c.value() }));
        tr[0].send(peer(1), [Kind.tellMany, ['user:a', 'user:b'], { op: 'ack', u: 2 }]);
        tr[0].send(peer(1), tell(3));
        await rec[1].until('the batch', () => rec[1].batches.length > 0);
        t.equal(rec[1].batches.length, 1, 'still one batch');
        t.same(rec[1].envelopes().map(seqOf), [0, 2, 3], 'the others, in order');
        t.equal(tr[0].stats.encodeFailures, 1, 'counted');
        t.equal(tr[0].stats.envelopesOut, 3, 'only what was sent is counted as sent');
        t.equal(tr[0].envelopesTo(peer(1)), tr[1].envelopesFrom(peer(0)), 'per-pair counts still agree');
        const logged = logs.at('error', /could not be encoded/);
        t.equal(logged.length, 1, 'logged once');
        t.match(logged[0]?.err?.message, c.cause, 'with its cause');
        t.equal(logged[0]?.to, 'user:u1', 'naming the envelope');
      });
    }
  });

  t.test('a dropped ask is answered `internal` to its asker; a dropped reply is replaced by an `internal` error', async (t) => {
    const { tr, rec, peer } = await setup(t, 3);
    const bad = { op: 'get', v: 2n ** 70n };
    tr[0].send(peer(1), [Kind.ask, 'user:a', bad, peer(0), 7]); // asker: the sender itself
    tr[0].send(peer(1), [Kind.ask, 'user:b', bad, peer(2), 8]); // asker: a third endpoint
    tr[0].send(peer(1), [Kind.reply, 9, { value: 2n ** 70n }]);
    tr[0].send(peer(1), tell(1));
    await rec[1].until('the batch at 1', () => rec[1].batches.length > 0);
    await rec[0].until('the answer to ask 7', () => rec[0].batches.length > 0);
    await rec[2].until('the answer to ask 8', () => rec[2].batches.length > 0);
    const [substitute, good] = rec[1].envelopes();
    t.match(substitute, [Kind.reply, 9, null, 'internal', String], 'the reply became an error reply, in its place');
    t.equal(seqOf(good), 1, 'the tell still arrives, after it');
    t.equal(rec[1].envelopes().length, 2);
    t.match(rec[0].envelopes(), [[Kind.reply, 7, null, 'internal', String]], 'ask 7 answered to the sender');
    t.match(rec[2].envelopes(), [[Kind.reply, 8, null, 'internal', String]], 'ask 8 answered to its asker');
    t.equal(tr[0].stats.encodeFailures, 3);
  });

  t.test('a batch in which nothing encodes sends nothing, and the next batch still goes', async (t) => {
    const { tr, rec, peer } = await setup(t, 2);
    tr[0].send(peer(1), tell(0, { bad: detached() }));
    tr[0].flush();
    t.equal(tr[0].stats.batchesOut, 0, 'no empty batch');
    t.equal(tr[0].stats.encodeFailures, 1);
    tr[0].send(peer(1), tell(1));
    await rec[1].until('the next batch', () => rec[1].batches.length > 0);
    t.same(rec[1].envelopes().map(seqOf), [1]);
  });

  t.test('a received batch that cannot be decoded is dropped, logged and counted; later batches arrive', async (t) => {
    const { fx, tr, rec, peer, logs } = await setup(t, 2);
    fx.inject(0, 1, new Uint8Array([0x92, 0x01])); // a list of two with one element: truncated
    fx.inject(0, 1, new Uint8Array([0x01])); // a number, not a list
    tr[0].send(peer(1), tell(1));
    await rec[1].until('the good batch', () => rec[1].batches.length > 0);
    t.same(rec[1].envelopes().map(seqOf), [1], 'only the good batch reaches the handler');
    t.equal(tr[1].stats.decodeFailures, 2, 'counted');
    t.equal(tr[1].stats.batchesIn, 1);
    t.equal(logs.at('error', /could not be decoded/).length, 2, 'logged');
  });

  t.test('a throwing batch handler is logged and counted; the next batch is delivered', async (t) => {
    const { tr, rec, peer, logs } = await setup(t, 2);
    rec[1].throwNext = true;
    tr[0].send(peer(1), tell(1));
    await rec[1].until('the first batch', () => rec[1].batches.length >= 1);
    tr[0].send(peer(1), tell(2));
    await rec[1].until('the second batch', () => rec[1].batches.length >= 2);
    t.equal(tr[1].stats.handlerFailures, 1);
    t.match(logs.at('error', /handler failed/)[0]?.err?.message, /on purpose/);
  });

  t.test('a batch to an unknown peer: no throw, dropped, counted, reported, its asks answered `unavailable`', async (t) => {
    const { tr, rec, peer, logs } = await setup(t, 2);
    const nobody = 99;
    t.doesNotThrow(() => {
      tr[0].send(nobody, tell(1));
      tr[0].send(nobody, [Kind.ask, 'user:a', { op: 'get' }, peer(0), 5]);
      tr[0].send(nobody, [Kind.ask, 'user:b', { op: 'get' }, peer(1), 6]);
      tr[0].flush();
    });
    await rec[0].until('the report', () => rec[0].undeliverable.length > 0);
    t.match(rec[0].undeliverable, [{ dest: nobody, reason: 'unknown' }]);
    t.equal(rec[0].undeliverable[0].envelopes.length, 3, 'with the batch');
    t.equal(tr[0].stats.undeliverable, 3, 'counted');
    await rec[0].until('the answer to ask 5', () => rec[0].batches.length > 0);
    await rec[1].until('the answer to ask 6', () => rec[1].batches.length > 0);
    t.match(rec[0].envelopes(), [[Kind.reply, 5, null, 'unavailable', String]], 'answered without waiting for a timeout');
    t.match(rec[1].envelopes(), [[Kind.reply, 6, null, 'unavailable', String]], 'answered to its asker');
    tr[0].send(nobody, tell(2));
    await rec[0].until('the second report', () => rec[0].undeliverable.length > 1);
    t.equal(logs.at('error', /undeliverable/).length, 1, 'logged once per peer, not per batch');
  });

  t.test('a peer that goes away is reported once, then batches to it are undeliverable (`gone`) and asks answered', async (t) => {
    const { fx, tr, rec, peer } = await setup(t, 3);
    const gone = peer(1);
    await fx.kill(1);
    await rec[0].until('peer down at 0', () => rec[0].down.includes(gone));
    await rec[2].until('peer down at 2', () => rec[2].down.includes(gone));
    tr[0].send(gone, [Kind.ask, 'user:a', { op: 'get' }, peer(0), 11]);
    tr[0].send(peer(2), tell(1));
    await rec[0].until('the report', () => rec[0].undeliverable.length > 0);
    t.equal(rec[0].undeliverable[0].reason, 'gone');
    await rec[0].until('the answer', () => rec[0].batches.length > 0);
    t.match(rec[0].envelopes(), [[Kind.reply, 11, null, 'unavailable', String]]);
    await rec[2].until('the tell to a live peer', () => rec[2].batches.length > 0);
    t.same(rec[2].envelopes().map(seqOf), [1], 'other peers unaffected');
    t.same(rec[0].down, [gone], 'reported once');
  });

  t.test('close is final: queued envelopes are dropped, later sends do not throw, peers see it go', async (t) => {
    const { tr, rec, peer } = await setup(t, 2);
    tr[0].send(peer(1), tell(1));
    tr[0].close();
    tr[0].flush();
    t.equal(tr[0].stats.batchesOut, 0, 'what was queued is not sent');
    t.doesNotThrow(() => {
      tr[0].send(peer(1), tell(2));
      tr[0].flush();
      tr[0].close();
    });
    t.equal(tr[0].stats.undeliverable, 1, 'a send after close is counted');
    t.same(rec[0].undeliverable, [], 'without callbacks');
    await rec[1].until('peer down at 1', () => rec[1].down.includes(peer(0)));
    t.equal(rec[1].batches.length, 0, 'nothing arrived');
  });
}
