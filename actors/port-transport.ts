// The Transport between threads of one process: one MessagePort per peer thread, each batch one
// owned buffer transferred (not copied) to the receiving thread.
import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import { BatchingTransport } from './batching-transport.js';
import type { PeerId, TransportEvents, Undeliverable } from './transport.js';

export class PortTransport extends BatchingTransport {
  private readonly ports = new Map<PeerId, MessagePort>();
  /** peers whose port closed: the other thread exited or closed its transport */
  private readonly gone = new Set<PeerId>();

  /** @param self this thread's index (0 = gateway, 1.. = shards) */
  constructor(self: PeerId, events: TransportEvents, log: Logger) {
    super(self, events, log);
  }

  /** Links `peer` through `port`, replacing (and closing) any earlier port to it: a restarted peer. */
  connect(peer: PeerId, port: MessagePort): void {
    if (this.isClosed) {
      port.close();
      return;
    }
    const old = this.ports.get(peer);
    this.ports.set(peer, port);
    old?.close(); // its 'close' is ignored below: it is no longer the port to `peer`
    this.gone.delete(peer);
    this.peerUp(peer);
    port.on('message', (bytes: unknown) => this.receive(peer, bytes));
    port.on('messageerror', (err: Error) => this.decodeFailed(peer, err));
    // Emitted when either end closes, including when the thread holding the other end exits.
    port.on('close', () => {
      if (this.ports.get(peer) !== port) return;
      this.ports.delete(peer);
      this.gone.add(peer);
      this.peerDown(peer);
    });
  }

  protected reach(dest: PeerId): Undeliverable | undefined {
    if (this.ports.has(dest)) return undefined;
    return this.gone.has(dest) ? 'gone' : 'unknown';
  }

  protected post(dest: PeerId, bytes: Uint8Array): Undeliverable | undefined {
    try {
      this.ports.get(dest)!.postMessage(bytes, [bytes.buffer as ArrayBuffer]); // owned: see encodeBatch
      return undefined;
    } catch (err) {
      this.log.error({ err, dest }, 'transport: postMessage failed');
      return 'gone';
    }
  }

  protected closeLinks(): void {
    const ports = [...this.ports.values()];
    this.ports.clear();
    for (const port of ports) port.close();
  }
}
