// The Transport contract suite run against PortTransport over real MessageChannels. A NATS
// transport runs the same suite with a factory of its own (test/helpers/transport-contract.ts).
import t from 'tap';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { PortTransport } from '../actors/port-transport.js';
import { transportContract, type TransportFactory } from './helpers/transport-contract.js';

const ports: TransportFactory = async (events, log) => {
  const transports = events.map((e, i) => new PortTransport(i, e, log));
  const link: MessagePort[][] = events.map(() => []); // link[a][b]: a's end of its channel to b
  for (let a = 0; a < transports.length; a++) {
    for (let b = a + 1; b < transports.length; b++) {
      const { port1, port2 } = new MessageChannel();
      transports[a].connect(b, port1);
      transports[b].connect(a, port2);
      link[a][b] = port1;
      link[b][a] = port2;
    }
  }
  return {
    transports,
    inject: (from, to, bytes) => link[from][to].postMessage(bytes),
    // In one thread the nearest thing to a crash is closing every link at once.
    kill: async (i) => transports[i].close(),
    close: async () => transports.forEach((tr) => tr.close()),
  };
};

transportContract(t, ports);
