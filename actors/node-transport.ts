// A thread's Transport: the threads of its own node over MessagePorts (PortTransport), the
// threads of other nodes over a remote transport (NATS), chosen by the destination's PeerId
// (actors/router.ts: ordinal × NODE_STRIDE + thread). Alone, a node has no remote transport and
// this is its PortTransport with a remote slot left empty.
import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Envelope } from './envelope.js';
import { PortTransport } from './port-transport.js';
import { NODE_STRIDE } from './router.js';
import { emptyStats, type PeerId, type Transport, type TransportEvents, type TransportStats } from './transport.js';

export class NodeTransport implements Transport {
  readonly ports: PortTransport;
  private remote: Transport | null = null;
  private readonly base: number;

  constructor(readonly self: PeerId, readonly events: TransportEvents, log: Logger) {
    this.base = self - (self % NODE_STRIDE);
    this.ports = new PortTransport(self, events, log);
  }

  /** From now on envelopes for other nodes' threads go through `remote` (built with `this.events`). */
  attachRemote(remote: Transport): void {
    this.remote = remote;
  }

  get hasRemote(): boolean {
    return this.remote !== null;
  }

  /** Links local thread `peer` through `port` (see PortTransport.connect). */
  connect(peer: PeerId, port: MessagePort): void {
    this.ports.connect(peer, port);
  }

  get stats(): TransportStats {
    if (!this.remote) return this.ports.stats;
    const sum = emptyStats();
    for (const s of [this.ports.stats, this.remote.stats]) {
      for (const k of Object.keys(sum) as (keyof TransportStats)[]) sum[k] += s[k];
    }
    return sum;
  }

  send(dest: PeerId, envelope: Envelope): void {
    // Without a remote transport an other node's peer is unknown to the ports: rule 5 applies.
    if (this.remote && (dest < this.base || dest >= this.base + NODE_STRIDE)) this.remote.send(dest, envelope);
    else this.ports.send(dest, envelope);
  }

  flush(): void {
    this.ports.flush();
    this.remote?.flush();
  }

  envelopesTo(peer: PeerId): number {
    return this.pick(peer).envelopesTo(peer);
  }

  envelopesFrom(peer: PeerId): number {
    return this.pick(peer).envelopesFrom(peer);
  }

  close(): void {
    this.ports.close();
    this.remote?.close();
  }

  private pick(peer: PeerId): Transport {
    return this.remote && (peer < this.base || peer >= this.base + NODE_STRIDE) ? this.remote : this.ports;
  }
}
