// NatsTransport against a real nats-server: the Transport contract suite (one NATS connection
// per endpoint, as one per thread in a node), then what only NATS has: fragments over
// max_payload, fencing by epoch, hello answers and byes.
import t, { type Test } from 'tap';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { encodeBatch } from '../actors/batch-codec.js';
import { Kind, type Envelope } from '../actors/envelope.js';
import { batchSubject, NatsTransport } from '../actors/nats-transport.js';
import type { PeerId, TransportEvents } from '../actors/transport.js';
import { natsMissing, startNats, type LocalNats } from './helpers/nats-server.js';
import { captureLog, Recorder, transportContract, type TransportFactory } from './helpers/transport-contract.js';

// Small, so the suite's dead-peer case ends soon; it still waits for onPeerDown, never for time.
const SUITE_HEARTBEAT_MS = 300;
// So long that only a hello answer or a bye can explain what a test sees within its wait.
const NEVER_MS = 600_000;
const EPOCH = 1;

let prefixes = 0;
/** A subject prefix of its own per fixture: endpoints of other subtests never meet. */
const freshPrefix = (): string => `parley.test${process.pid}.p${++prefixes}`;

const tell = (i: number, extra: Record<string, unknown> = {}): Envelope => [Kind.tell, `user:u${i}`, { op: 'ack', u: i, ...extra }];
const seqOf = (e: Envelope): number => (e[2] as { u: number }).u;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const encoded = (envelopes: Envelope[]): Uint8Array => encodeBatch(envelopes, () => undefined)!;

function natsFactory(nats: LocalNats): TransportFactory {
  return async (events, log) => {
    const n = events.length;
    const prefix = freshPrefix();
    const ncs = await Promise.all(events.map(() => connect({ servers: nats.url })));
    // Links come from the wire: the fixture is ready when every endpoint has seen every other.
    const ups = events.map(() => new Set<PeerId>());
    let ready: () => void = () => {};
    const allUp = new Promise<void>((resolve) => (ready = resolve));
    const check = (): void => {
      if (ups.every((s) => s.size >= n - 1)) ready();
    };
    const transports = events.map((e, i) => {
      const wrapped: TransportEvents = {
        onBatch: (from, envelopes) => e.onBatch(from, envelopes),
        onUndeliverable: (dest, envelopes, reason) => e.onUndeliverable?.(dest, envelopes, reason),
        onPeerDown: (peer) => e.onPeerDown?.(peer),
        onPeerUp: (peer) => {
          e.onPeerUp?.(peer);
          ups[i].add(peer);
          check();
        },
      };
      return new NatsTransport(i, wrapped, log, { nc: ncs[i], prefix, epoch: EPOCH, heartbeatMs: SUITE_HEARTBEAT_MS });
    });
    for (const tr of transports) await tr.start();
    check();
    await allUp;
    return {
      transports,
      inject: (from, to, bytes) => ncs[from].publish(batchSubject(prefix, to, EPOCH, from, EPOCH), bytes),
      // A crash: the connection goes first, so no bye leaves; peers learn it from the silence.
      kill: async (i) => {
        await ncs[i].close();
        transports[i].close();
      },
      close: async () => {
        for (const tr of transports) await tr.stop();
        await Promise.all(ncs.map((nc) => nc.close()));
      },
    };
  };
}

interface Endpoint {
  tr: NatsTransport;
  rec: Recorder;
  nc: NatsConnection;
}

/** One endpoint on a connection of its own, started; torn down with the test. */
async function endpoint(t: Test, nats: LocalNats, self: PeerId, prefix: string, opts: { epoch?: number; heartbeatMs?: number; log?: ReturnType<typeof captureLog> } = {}): Promise<Endpoint> {
  const nc = await connect({ servers: nats.url });
  const rec = new Recorder();
  const tr = new NatsTransport(self, rec, (opts.log ?? captureLog()).log, { nc, prefix, epoch: opts.epoch ?? EPOCH, heartbeatMs: opts.heartbeatMs ?? NEVER_MS });
  t.teardown(async () => {
    await tr.stop();
    await nc.close();
  });
  await tr.start();
  return { tr, rec, nc };
}

/** Two endpoints 0 and 1 that know each other; 1 logs to `logB` if given. */
async function pair(t: Test, nats: LocalNats, logB?: ReturnType<typeof captureLog>) {
  const prefix = freshPrefix();
  const a = await endpoint(t, nats, 0, prefix);
  const b = await endpoint(t, nats, 1, prefix, { log: logB });
  await a.rec.until('0 sees 1', () => a.rec.up.includes(1));
  await b.rec.until('1 sees 0', () => b.rec.up.includes(0));
  return { a, b, prefix };
}

t.test('NatsTransport', { skip: natsMissing }, async (t) => {
  const nats = await startNats(t);

  t.test('the transport contract', async (t) => transportContract(t, natsFactory(nats)));

  t.test('a batch of several MiB is sent in fragments and arrives whole, in order', async (t) => {
    const { a, b } = await pair(t, nats);
    const maxPayload = a.nc.info!.max_payload;
    // 3 batches: ~5 MiB, ~2.5 MiB, then a small one; each envelope's bytes say which it is.
    const chunk = 128 * 1024;
    const big = (i: number): Envelope => tell(i, { bytes: new Uint8Array(chunk).fill(i & 0xff) });
    const before = a.nc.stats().outMsgs;
    for (const i of range(40)) a.tr.send(1, big(i));
    a.tr.flush();
    const firstBytes = a.tr.stats.bytesOut;
    const firstMsgs = a.nc.stats().outMsgs - before;
    for (const i of range(20)) a.tr.send(1, big(40 + i));
    a.tr.flush();
    a.tr.send(1, tell(60));
    await b.rec.until('three batches', () => b.rec.batches.length >= 3);
    t.ok(a.tr.stats.bytesOut > 7 * maxPayload, `bigger than max_payload (${maxPayload}) several times over`);
    t.ok(firstMsgs > 1, 'in several messages');
    t.equal(firstMsgs, Math.ceil(firstBytes / maxPayload), 'the first batch left as ceil(size / max_payload) messages');
    t.same(b.rec.batches.map((x) => x.envelopes.length), [40, 20, 1], 'one batch each, whole');
    t.same(b.rec.envelopes().map(seqOf), range(61), 'in send order');
    const ok = b.rec.envelopes().slice(0, 60).every((e, i) => {
      const bytes = (e[2] as { bytes: Uint8Array }).bytes;
      return bytes.length === chunk && bytes[0] === (i & 0xff) && bytes[chunk - 1] === (i & 0xff);
    });
    t.ok(ok, 'every byte range where it belongs');
    t.equal(b.tr.stats.bytesIn, a.tr.stats.bytesOut, 'bytes in = bytes out');
    t.equal(b.tr.stats.decodeFailures, 0);
  });

  t.test('a lost, stray or garbled fragment is one counted decode failure; the traffic carries on', async (t) => {
    const logs = captureLog();
    const { a, b, prefix } = await pair(t, nats, logs);
    const frag = (index: number, count: number, bytes: Uint8Array): void =>
      a.nc.publish(batchSubject(prefix, 1, EPOCH, 0, EPOCH, { index, count }), bytes);
    const whole = encoded([tell(100), tell(101), tell(102)]);
    const third = Math.ceil(whole.length / 3);
    const part = (k: number): Uint8Array => whole.subarray(k * third, (k + 1) * third);
    // Everything below goes out on a's connection, in this order, before a's next batch.
    frag(0, 3, part(0)); frag(2, 3, part(2)); // 1: the middle one lost
    frag(1, 3, part(1)); frag(2, 3, part(2)); // 2: the first one lost (its sequence skipped, counted once)
    frag(0, 2, new Uint8Array([0x93, 0x01])); frag(1, 2, new Uint8Array([0x02])); // 3: whole, but a truncated list
    frag(0, 3, part(0)); a.nc.publish(batchSubject(prefix, 1, EPOCH, 0, EPOCH), encoded([tell(7)])); // 4: cut short by a whole batch
    frag(5, 3, part(0)); // 5: an index past the count
    frag(0, 300, part(0)); frag(1, 300, part(1)); frag(2, 300, part(2)); // 6: more fragments than allowed (the rest skipped)
    frag(0, 3, part(0)); frag(1, 3, part(1)); frag(2, 3, part(2)); // good
    a.tr.send(1, tell(200));
    await b.rec.until('the last batch', () => b.rec.envelopes().some((e) => seqOf(e) === 200));
    t.same(b.rec.envelopes().map(seqOf), [7, 100, 101, 102, 200], 'the intact batches, in order');
    t.equal(b.tr.stats.decodeFailures, 6, 'one per broken batch');
    t.equal(logs.at('error', /could not be decoded/).length, 6, 'each logged');
    t.match(logs.at('error', /could not be decoded/).map((l) => l.err?.message), [/fragment 2 of 3 arrived out of sequence/, /expected a first fragment/, /.*/, /fragment 1 of 3 missing/, /not valid/, /300 fragments is over the limit of 256/]);
  });

  t.test('garbage on the peers and batch subjects is logged and dropped; bad options are refused', async (t) => {
    const logs = captureLog();
    const { a, b, prefix } = await pair(t, nats, logs);
    a.nc.publish(`${prefix}.peers`, 'hello 0'); // no epoch
    a.nc.publish(`${prefix}.peers.1`, 'here x 1');
    a.nc.publish(`${prefix}.b.1.${EPOCH}.0`, encoded([tell(1)])); // no sender epoch
    a.nc.publish(`${prefix}.b.1.${EPOCH}.0.0`, encoded([tell(2)])); // epoch 0
    a.nc.publish(`${prefix}.b.1.${EPOCH}.0.1.2`, encoded([tell(3)])); // a fragment count but no index
    a.tr.send(1, tell(4));
    await b.rec.until('the good batch', () => b.rec.batches.length > 0);
    t.same(b.rec.envelopes().map(seqOf), [4], 'only the good batch');
    t.equal(logs.at('error', /malformed NATS peer signal/).length, 2, 'bad signals logged');
    t.equal(b.tr.stats.decodeFailures, 3, 'bad batch subjects counted');
    t.same(b.rec.up, [0], 'and no peer came or went');
    t.same(b.rec.down, []);
    const opts = { nc: a.nc, prefix: 'ok', epoch: 1 };
    const make = (o: Partial<typeof opts & { heartbeatMs: number }>, self = 5) => () => new NatsTransport(self, new Recorder(), logs.log, { ...opts, ...o });
    t.throws(make({ epoch: 0 }), /epoch must be an integer > 0/);
    t.throws(make({ epoch: 1.5 }), /epoch/);
    t.throws(make({ prefix: 'a.*' }), /prefix must be/);
    t.throws(make({ prefix: '' }), /prefix must be/);
    t.throws(make({ heartbeatMs: 0 }), /heartbeatMs/);
    t.throws(make({}, -1), /peer id/);
  });

  t.test('a newcomer learns the peers from their answers to its hello, and can send at once', async (t) => {
    const prefix = freshPrefix();
    const a = await endpoint(t, nats, 0, prefix);
    const b = await endpoint(t, nats, 1, prefix);
    // The heartbeat is minutes away: only the answer to the hello can have told b about a.
    await b.rec.until('b sees a', () => b.rec.up.includes(0));
    b.tr.send(0, tell(1));
    await a.rec.until('a has the tell', () => a.rec.batches.length > 0);
    t.same(a.rec.envelopes(1).map(seqOf), [1]);
    t.same(a.rec.up, [1], 'a saw b come, once');
    t.same(b.rec.up, [0], 'b saw a, once');
    const c = await endpoint(t, nats, 2, prefix);
    await c.rec.until('c sees both', () => c.rec.up.length >= 2);
    t.same([...c.rec.up].sort(), [0, 1], 'a third learns everyone at once');
    await b.tr.stop();
    await a.rec.until('a sees b go (its bye)', () => a.rec.down.includes(1));
    await c.rec.until('c sees b go (its bye)', () => c.rec.down.includes(1));
    a.tr.send(1, tell(2));
    await a.rec.until('the report', () => a.rec.undeliverable.length > 0);
    t.equal(a.rec.undeliverable[0].reason, 'gone');
  });

  t.test('fencing: a restarted peer (higher epoch) is a new link; its zombie (old epoch) is dropped and counted', async (t) => {
    const prefix = freshPrefix();
    const a = await endpoint(t, nats, 0, prefix, { epoch: 5 });
    const old = await endpoint(t, nats, 1, prefix, { epoch: 5 });
    await a.rec.until('a sees 1', () => a.rec.up.includes(1));
    await old.rec.until('1 sees a', () => old.rec.up.includes(0));
    for (const i of range(3)) a.tr.send(1, tell(i));
    await old.rec.until('3 tells', () => old.rec.envelopes().length >= 3);
    t.equal(a.tr.envelopesTo(1), 3);
    // Peer 1 restarts on a new lease (epoch 6) while the old one is still running: a zombie.
    const fresh = await endpoint(t, nats, 1, prefix, { epoch: 6 });
    await a.rec.until('a sees 1 restart', () => a.rec.up.length >= 2);
    t.same(a.rec.down, [1], 'the old incarnation went down first');
    t.same(a.rec.up, [1, 1], 'then onPeerUp for the new one');
    t.equal(a.tr.envelopesTo(1), 0, 'fresh counts: to');
    t.equal(a.tr.envelopesFrom(1), 0, 'fresh counts: from');
    await fresh.rec.until('the new 1 sees a', () => fresh.rec.up.includes(0));

    // The zombie still believes in a and sends; then a marker as the new epoch on the same
    // connection (NATS keeps its order), so once the marker is in, the zombie's batch was read.
    const fencedBefore = a.tr.fenced;
    old.tr.send(0, tell(66));
    old.tr.flush();
    old.nc.publish(batchSubject(prefix, 0, 5, 1, 6), encoded([tell(99)]));
    await a.rec.until('the marker', () => a.rec.envelopes(1).some((e) => seqOf(e) === 99));
    t.notOk(a.rec.envelopes(1).some((e) => seqOf(e) === 66), 'the zombie batch was dropped');
    t.ok(a.tr.fenced > fencedBefore, 'and counted in `fenced`');

    // a now addresses the new epoch: the zombie is not even subscribed to it.
    a.tr.send(1, tell(10));
    await fresh.rec.until('the new 1 has it', () => fresh.rec.envelopes(0).some((e) => seqOf(e) === 10));
    a.nc.publish(batchSubject(prefix, 1, 5, 0, 5), encoded([tell(98)])); // a marker to the old epoch
    await old.rec.until('the zombie gets the marker', () => old.rec.envelopes(0).some((e) => seqOf(e) === 98));
    t.same(old.rec.envelopes(0).map(seqOf), [0, 1, 2, 98], 'the zombie got nothing meant for the new 1');
    fresh.tr.send(0, tell(11));
    await a.rec.until('a hears the new 1', () => a.rec.envelopes(1).some((e) => seqOf(e) === 11));
    t.equal(a.tr.envelopesTo(1), 1);
    t.equal(fresh.tr.envelopesFrom(0), 1, 'counts agree on the new link');
  });

  t.test('a peer that restarts on the same epoch (a thread restarted under the same lease) is a new link too', async (t) => {
    const prefix = freshPrefix();
    const a = await endpoint(t, nats, 0, prefix);
    const first = await endpoint(t, nats, 1, prefix);
    await a.rec.until('a sees 1', () => a.rec.up.includes(1));
    a.tr.send(1, tell(1));
    await first.rec.until('the tell', () => first.rec.batches.length > 0);
    // A crash: no bye; the heartbeat is minutes away, so only the new hello can tell a.
    await first.nc.close();
    first.tr.close();
    const second = await endpoint(t, nats, 1, prefix);
    await a.rec.until('a sees 1 again', () => a.rec.up.length >= 2);
    t.same(a.rec.down, [1], 'down, then up');
    t.equal(a.tr.envelopesTo(1), 0, 'fresh counts');
    await second.rec.until('the new 1 sees a', () => second.rec.up.includes(0));
    a.tr.send(1, tell(2));
    await second.rec.until('the tell', () => second.rec.batches.length > 0);
    t.same(second.rec.envelopes().map(seqOf), [2]);
  });
});
