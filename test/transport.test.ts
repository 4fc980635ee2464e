// The transport between threads: envelopes to one destination in one tick leave as one batch,
// in order, and arrive intact (binary payloads included).
import t from 'tap';
import { MessageChannel } from 'node:worker_threads';
import { Kind, type Envelope } from '../actors/envelope.js';
import { Transport } from '../actors/transport.js';

t.test('one batch per destination per tick, order kept', async (t) => {
  const batches: Envelope[][] = [];
  const { port1, port2 } = new MessageChannel();
  const a = new Transport(0, () => {});
  const b = new Transport(1, (_from, envelopes) => batches.push(envelopes));
  a.connect(1, port1);
  b.connect(0, port2);
  t.teardown(() => { a.close(); b.close(); });

  const frame = new Uint8Array([0x81, 0xa1, 0x74, 0xa1, 0x78]);
  for (let i = 0; i < 100; i++) a.send(1, [Kind.tell, `user:u${i}`, { op: 'ack', device: 'd', u: i }]);
  a.send(1, [Kind.push, [1, 2], frame, 7]);
  await new Promise<void>((resolve) => { const check = () => (batches.length ? resolve() : setTimeout(check, 5)); check(); });
  t.equal(batches.length, 1, 'a single batch');
  t.equal(a.stats.batchesOut, 1);
  t.equal(batches[0].length, 101);
  t.same(batches[0].slice(0, 100).map((e) => (e[2] as { u: number }).u), Array.from({ length: 100 }, (_, i) => i));
  const push = batches[0][100];
  t.equal(push[0], Kind.push);
  t.same(Array.from(push[2] as Uint8Array), Array.from(frame), 'bytes arrive unchanged');
});
