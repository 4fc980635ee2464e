// The gateway's side of the actor runtime: starts the shard workers, gives every pair of
// threads a MessageChannel, and offers tell/ask to actors plus the pushes actors send back.
import { MessageChannel, Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Logger } from 'pino';
import type { Durability } from '../storage/env.js';
import type { LogLevel } from './log.js';
import { PendingAsks, type ReplyCallback } from './asks.js';
import { Kind, type ActorMessage, type Envelope } from './envelope.js';
import { GATEWAY_THREAD, Router } from './router.js';
import type { ShardControl } from './shard-worker.js';
import type { ShardStats } from './shard.js';
import { Transport } from './transport.js';

export interface ShardWorkerData {
  index: number;
  shardCount: number;
  dataDir: string;
  durability: Durability;
  logLevel: LogLevel;
  boot: string;
  /** [peer thread index, port] for the gateway and every other shard */
  peers: [number, MessagePort][];
  control: MessagePort;
}

export interface ClusterOptions {
  shards: number;
  dataDir: string;
  durability: Durability;
  logLevel: LogLevel;
  askTimeoutMs: number;
  /** Identifies this run of the server (presence from earlier runs is stale). */
  boot: string;
  log: Logger;
  /** A shard died: its in-memory actors are gone (the logs are safe). The server must stop. */
  onFatal: (err: unknown) => void;
}

/** What the gateway does with envelopes actors address to it. */
export interface GatewaySink {
  push(conns: number | number[], frame: Uint8Array, u: number): void;
  kick(conn: number, code: number, reason: string): void;
  /** Brackets each incoming batch, so the sink can write everything it produced at once. */
  beginBatch(): void;
  endBatch(): void;
}

export class ShardCluster {
  readonly router: Router;
  private readonly transport: Transport;
  private readonly asks: PendingAsks;
  private readonly workers: Worker[] = [];
  private readonly controls: Comlink.Remote<ShardControl>[] = [];
  private sink: GatewaySink | null = null;
  private stopping = false;

  constructor(private readonly opts: ClusterOptions) {
    this.router = new Router(opts.shards);
    this.asks = new PendingAsks(opts.askTimeoutMs);
    this.transport = new Transport(GATEWAY_THREAD, (_from, envelopes) => this.onBatch(envelopes));
  }

  /** Starts every shard and resolves when all have opened storage and run recovery. */
  async start(sink: GatewaySink): Promise<void> {
    this.sink = sink;
    const n = this.opts.shards;
    const peers: [number, MessagePort][][] = Array.from({ length: n + 1 }, () => []);
    for (let a = 0; a <= n; a++) {
      for (let b = a + 1; b <= n; b++) {
        const { port1, port2 } = new MessageChannel();
        peers[a].push([b, port1]);
        peers[b].push([a, port2]);
      }
    }
    for (const [peer, port] of peers[GATEWAY_THREAD]) this.transport.connect(peer, port);
    const started: Promise<void>[] = [];
    for (let index = 1; index <= n; index++) {
      const control = new MessageChannel();
      const data: ShardWorkerData = {
        index, shardCount: n, dataDir: this.opts.dataDir, durability: this.opts.durability,
        logLevel: this.opts.logLevel, boot: this.opts.boot, peers: peers[index], control: control.port2,
      };
      const transferList: TransferListItem[] = [...peers[index].map(([, p]) => p), control.port2];
      const worker = new Worker(new URL('./shard-worker.js', import.meta.url), { workerData: data, transferList });
      this.workers.push(worker);
      this.controls.push(Comlink.wrap<ShardControl>(nodeEndpoint(control.port1)));
      started.push(
        new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`shard ${index} exited with ${code} while starting`)));
        }),
      );
      worker.on('error', (err) => {
        this.opts.log.fatal({ err, shard: index }, 'shard crashed');
        if (!this.stopping) this.opts.onFatal(err);
      });
    }
    await Promise.all(started);
  }

  tell(to: string, msg: ActorMessage): void {
    this.transport.send(this.router.threadOf(to), [Kind.tell, to, msg]);
  }

  /** Asks an actor; rejects with ProtocolError (its code) or `unavailable` after the timeout. */
  ask<T>(to: string, msg: ActorMessage): Promise<T> {
    return new Promise<T>((resolve, reject) => this.askWith<T>(to, msg, (err, value) => (err ? reject(err) : resolve(value as T))));
  }

  /** Like ask, but `done` runs synchronously inside the batch that carried the reply. */
  askWith<T>(to: string, msg: ActorMessage, done: ReplyCallback<T>): void {
    const id = this.asks.open<T>(`${msg.op} to ${to}`, done);
    this.transport.send(this.router.threadOf(to), [Kind.ask, to, msg, GATEWAY_THREAD, id]);
  }

  async stats(): Promise<ShardStats[]> {
    return Promise.all(this.controls.map((c) => c.stats()));
  }

  /**
   * Lets every shard finish: shards keep telling each other (fan-out confirmations), so drain
   * all of them until a whole round runs no new turn. Then close their storage, end the workers.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.transport.flush();
    let previous = '';
    for (let round = 0; round < 50; round++) {
      const turns = (await Promise.all(this.controls.map((c) => c.drain()))).join(',');
      if (turns === previous) break;
      previous = turns;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(this.controls.map((c) => c.close()));
    this.asks.close('server stopping');
    for (const c of this.controls) c[Comlink.releaseProxy]();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.transport.close();
  }

  private onBatch(envelopes: Envelope[]): void {
    const sink = this.sink!;
    sink.beginBatch();
    try {
      this.dispatch(sink, envelopes);
    } finally {
      sink.endBatch();
    }
  }

  private dispatch(sink: GatewaySink, envelopes: Envelope[]): void {
    for (const env of envelopes) {
      switch (env[0]) {
        case Kind.push: sink.push(env[1], env[2], env[3]); break;
        case Kind.reply: this.asks.settle(env[1], env[2], env[3], env[4]); break;
        case Kind.kick: sink.kick(env[1], env[2], env[3]); break;
        default: this.opts.log.error({ kind: env[0] }, 'gateway got an envelope it does not handle');
      }
    }
  }
}
