// A real Shard in the test's thread over a real LMDB temp directory, driven with envelopes from
// a real PortTransport playing the gateway. The one thing the test controls is the commit
// barrier: `gate` holds every flush back until the test opens it, to see what waits for it.
import { MessageChannel } from 'node:worker_threads';
import { createLogger } from '../../actors/log.js';
import { Kind, type ActorMessage, type Envelope } from '../../actors/envelope.js';
import type { ClientCommand } from '../../actors/messages.js';
import { PortTransport } from '../../actors/port-transport.js';
import { Router, threadAddress, userAddress } from '../../actors/router.js';
import { Shard, type ShardOptions } from '../../actors/shard.js';
import { directThreadId } from '../../protocol/ids.js';
import { decodeFrame } from '../../protocol/wire.js';
import { openStorage, type StorageEnv } from '../../storage/env.js';
import { tempDataDir } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

/** A barrier the test opens by hand; it records how often the shard asked for it. */
export class Gate {
  requested = 0;
  private opened = false;
  private waiters: (() => void)[] = [];
  private failure: unknown = null;
  private onRequest: (() => void)[] = [];

  constructor(private readonly real: () => Promise<unknown>) {}

  readonly barrier = (): Promise<unknown> => {
    this.requested++;
    for (const fn of this.onRequest.splice(0)) fn();
    if (this.failure) return Promise.reject(this.failure);
    if (this.opened) return this.real();
    return new Promise<void>((resolve) => this.waiters.push(resolve)).then(() => {
      if (this.failure) throw this.failure;
      return this.real();
    });
  };

  /** Resolves at the next barrier request (the shard sealed a group with a write). */
  nextRequest(): Promise<void> {
    return new Promise((resolve) => this.onRequest.push(resolve));
  }

  open(): void {
    this.opened = true;
    for (const w of this.waiters.splice(0)) w();
  }

  /** Every held and later commit fails with `err`. */
  fail(err: unknown): void {
    this.failure = err;
    for (const w of this.waiters.splice(0)) w();
  }
}

export interface Harness {
  shard: Shard;
  storage: StorageEnv;
  gate: Gate;
  fatal: unknown[];
  /** envelopes the shard sent the gateway, in arrival order */
  received: Envelope[];
  /** sends one batch of envelopes to the shard */
  batch(envelopes: Envelope[]): void;
  /** resolves with the reply to ask `id` */
  reply(id: number): Promise<Envelope>;
  /** an ask envelope carrying a client command from `user` */
  command(id: number, user: string, frame: ClientCommand['frame']): Envelope;
  send(id: number, from: string, to: string, body: string): Envelope;
  /** Resolves once the shard has nothing held and ran no turn between two drains. */
  settle(): Promise<void>;
}

export async function shardHarness(t: Teardown, users: string[], opts: Partial<ShardOptions> = {}): Promise<Harness> {
  const dir = tempDataDir(t);
  const real = openStorage(dir, 'relaxed');
  for (const user of users) await real.db.users.put(user, { user, username: user, name: user, created: Date.now() });
  const gate = new Gate(() => real.barrier());
  const storage: StorageEnv = { ...real, barrier: gate.barrier };
  const log = createLogger('silent');
  const fatal: unknown[] = [];
  const shard = new Shard(1, new Router(1), storage, log, 'boot-1', { onFatal: (err) => fatal.push(err), ...opts });
  const received: Envelope[] = [];
  const waiting = new Map<number, (e: Envelope) => void>();
  const gateway = new PortTransport(0, {
    onBatch(_from, envelopes) {
      for (const e of envelopes) {
        received.push(e);
        if (e[0] === Kind.reply) waiting.get(e[1])?.(e);
      }
    },
  }, log);
  const { port1, port2 } = new MessageChannel();
  shard.transport.connect(0, port1);
  gateway.connect(1, port2);
  t.teardown(async () => {
    shard.stop();
    gateway.close();
    shard.transport.close();
    await real.close();
  });
  const command = (id: number, user: string, frame: ClientCommand['frame']): Envelope => {
    // Where the gateway routes it: a send to its thread, history to the thread named, the rest to the user.
    const to =
      frame.t === 'send' ? threadAddress(directThreadId(user, frame.to as string))
      : frame.t === 'history' ? threadAddress(frame.thread as string)
      : userAddress(user);
    const msg: ClientCommand = { op: 'cmd', caller: { user, device: 'phone', r: id }, frame };
    return [Kind.ask, to, msg as ActorMessage, 0, id];
  };
  return {
    shard, storage: real, gate, fatal, received,
    batch(envelopes) {
      for (const e of envelopes) gateway.send(1, e);
      gateway.flush();
    },
    reply(id) {
      const seen = received.find((e) => e[0] === Kind.reply && e[1] === id);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    command,
    send: (id, from, to, body) => command(id, from, { t: 'send', to, cid: `cid-${id}`, body }),
    async settle() {
      let previous = -1;
      for (;;) {
        const report = await shard.drain();
        // Let what the drain sent (to itself) arrive: a turn of the loop, not a timer.
        await new Promise((resolve) => setImmediate(resolve));
        if (report.idle && report.turns === previous && shard.stats().turns === previous) return;
        previous = report.turns;
      }
    },
  };
}

/** The client frame inside a reply to a client command. */
export const answerOf = (reply: Envelope): Record<string, unknown> => decodeFrame(reply[2] as Uint8Array) as Record<string, unknown>;
