// A worker thread with a PortTransport, for test/transport-contract.test.ts: echoes tells back
// in order and answers asks (op `echo`, `bigint`: an answer that cannot be encoded, `stats`).
import { workerData, type MessagePort } from 'node:worker_threads';
import { Kind, type Envelope } from '../../actors/envelope.js';
import { createLogger } from '../../actors/log.js';
import { PortTransport } from '../../actors/port-transport.js';

export interface EchoWorkerData {
  self: number;
  peer: number;
  port: MessagePort;
}

const { self, peer, port } = workerData as EchoWorkerData;
// Failures are what these tests provoke; their log lines would only clutter the test output.
const transport = new PortTransport(self, { onBatch: (from, envelopes) => envelopes.forEach((e) => answer(from, e)) }, createLogger('silent'));
transport.connect(peer, port);

function answer(from: number, e: Envelope): void {
  if (e[0] === Kind.tell) transport.send(from, [Kind.tell, 'echo', e[2]]);
  if (e[0] !== Kind.ask) return;
  const [, , msg, replyTo, id] = e;
  const value = msg.op === 'bigint' ? 2n ** 70n : msg.op === 'stats' ? { ...transport.stats } : msg;
  transport.send(replyTo, [Kind.reply, id, value]);
}
