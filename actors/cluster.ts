// The gateway's side of the actor runtime: starts the shard workers, gives every pair of
// threads a MessageChannel, offers tell/ask to actors plus the pushes actors send back, and
// supervises the shards: a dead one is restarted in place, a storage failure stops the server.
import type { LatencySnapshot } from './latency-stats.js';
import { MessageChannel, Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Logger } from 'pino';
import { ErrorCode } from '../protocol/codes.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Durability, LastSeenVisibility } from '../storage/env.js';
import type { LogLevel } from './log.js';
import { PendingAsks, type ReplyCallback } from './asks.js';
import { Kind, type ActorMessage, type Envelope } from './envelope.js';
import { GATEWAY_THREAD, Router } from './router.js';
import { openRemote, routerFor, type NodeLink, type RemoteLink } from './node-link.js';
import { NodeTransport } from './node-transport.js';
import type { ShardControl } from './shard-worker.js';
import { EXIT_STORAGE_FAILED, type QuiescenceReport, type ShardStats } from './shard.js';
import type { TransportStats } from './transport.js';

export interface ShardWorkerData {
  index: number;
  shardCount: number;
  dataDir: string;
  durability: Durability;
  logLevel: LogLevel;
  boot: string;
  passivateAfterMs: number;
  maxActivations: number;
  maxCommitBacklog: number;
  retentionMs: number;
  retentionSweepMs: number;
  pushCoalesceMs: number;
  defaultLastSeen: LastSeenVisibility;
  webhookEvents: string[];
  searchIndex: boolean;
  /** [PeerId, port] for the gateway and every other shard of this node */
  peers: [number, MessagePort][];
  /** the cluster this node is part of (absent: alone) */
  link?: NodeLink;
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
  passivateAfterMs: number;
  maxActivations: number;
  maxCommitBacklog: number;
  /** Retention (ms; 0 keeps everything) and the sweeper's interval (ms). */
  retentionMs?: number;
  retentionSweepMs?: number;
  /** How long a push notification waits for later messages of its thread to replace it (ms). */
  pushCoalesceMs?: number;
  /** Who sees a user's presence before they chose (privacy.set); the protocol's default is contacts. */
  defaultLastSeen?: LastSeenVisibility;
  /** Webhook event kinds the actors write to the outbox (src/webhooks/events.ts); empty or absent: none. */
  webhookEvents?: string[];
  /** Thread actors keep the search index (SEARCH; default on). */
  searchIndex?: boolean;
  /** The cluster this node is part of, over NATS (absent: this process alone). */
  link?: NodeLink;
  /** Shard deaths within a minute that make the server give up (exit non-zero) instead of restarting. */
  maxShardRestartsPerMinute: number;
  /**
   * The runtime cannot go on (a storage failure, or shards dying too often): the server must
   * stop and exit non-zero, so the process supervisor starts everything afresh.
   */
  onFatal: (err: unknown) => void;
}

/** What the gateway does with envelopes actors address to it. */
export interface GatewaySink {
  push(conns: number | number[], frame: Uint8Array, u: number): void;
  /** A channel's new posts for this gateway's subscribers: frames[i] is the cmsg of seq firstSeq + i. */
  publish(channel: string, firstSeq: number, frames: Uint8Array[]): void;
  kick(conn: number, code: number, reason: string): void;
  /** Brackets each incoming batch, so the sink can write everything it produced at once. */
  beginBatch(): void;
  endBatch(): void;
  /**
   * Shard `shard` (a PeerId: this node's thread, or another node's) died and runs again: actors
   * re-activated from LMDB, but the sockets and watches registered with its user actors are gone. The sink closes the sockets
   * concerned with a reconnect code, so their clients attach again and replay.
   */
  shardRestarted(shard: number): void;
}

/** A shard stopping the process stops it for this reason. */
export class ShardFailure extends Error {
  override name = 'ShardFailure';
}

interface ShardSlot {
  index: number;
  worker: Worker;
  control: Comlink.Remote<ShardControl>;
  live: boolean;
  /** resolves when the worker reports ready; rejects if it exits first */
  ready: Promise<void>;
  /** rejects when the worker exits: control calls race it, so none waits on a dead worker */
  exited: Promise<never>;
  lastError?: unknown;
  fatalCause?: string;
}

const MINUTE_MS = 60_000;
/** Safety net only: the stop protocol ends by detecting quiescence, not by waiting. */
const STOP_QUIESCENCE_LIMIT_MS = 5_000;

export class ShardCluster {
  readonly router: Router;
  private readonly transport: NodeTransport;
  private remote: RemoteLink | null = null;
  /** other nodes' threads seen up before: seeing one up again means that node restarted */
  private readonly seenRemote = new Set<number>();
  private readonly asks: PendingAsks;
  /** slots[index] for shard thread index 1..N (slot 0 unused: the gateway) */
  private readonly slots: ShardSlot[] = [];
  private sink: GatewaySink | null = null;
  private started = false;
  private stopping = false;
  private fatal = false;
  private readonly deaths: number[] = [];
  /** Restarts so far, and how long the last one took (death seen → shard ready), for /metrics. */
  restarts = 0;
  lastRestartMs = 0;

  constructor(private readonly opts: ClusterOptions) {
    this.router = routerFor(opts.shards, opts.link);
    this.asks = new PendingAsks(opts.askTimeoutMs);
    this.transport = new NodeTransport(this.router.gatewayPeer, {
      onBatch: (_from, envelopes) => this.onBatch(envelopes),
      // Another node's thread is gone: its asks will not be answered; fail them now.
      onPeerDown: (peer) => {
        if (!this.router.isLocalPeer(peer)) this.asks.failTo(peer, `node ${this.router.nodeOfPeer(peer)} is unreachable`);
      },
      // Seen again: it restarted, and the sockets and watches this gateway registered there are gone.
      onPeerUp: (peer) => {
        if (this.router.isLocalPeer(peer)) return;
        if (this.seenRemote.has(peer)) this.sink?.shardRestarted(peer);
        this.seenRemote.add(peer);
      },
    }, opts.log);
  }

  /** Starts every shard and resolves when all have opened storage and run recovery. */
  async start(sink: GatewaySink): Promise<void> {
    this.sink = sink;
    const n = this.opts.shards;
    const peer = (thread: number) => this.router.localPeer(thread);
    const peers: [number, MessagePort][][] = Array.from({ length: n + 1 }, () => []);
    for (let a = 0; a <= n; a++) {
      for (let b = a + 1; b <= n; b++) {
        const { port1, port2 } = new MessageChannel();
        peers[a].push([peer(b), port1]);
        peers[b].push([peer(a), port2]);
      }
    }
    for (const [p, port] of peers[GATEWAY_THREAD]) this.transport.connect(p, port);
    if (this.opts.link) {
      this.remote = await openRemote(this.router.gatewayPeer, this.transport.events, this.opts.log, this.opts.link);
      this.transport.attachRemote(this.remote.transport);
    }
    for (let index = 1; index <= n; index++) this.spawn(index, peers[index]);
    await Promise.all(this.slots.slice(1).map((s) => s.ready));
    this.started = true;
  }

  tell(to: string, msg: ActorMessage): void {
    this.send(this.router.peerOf(to), [Kind.tell, to, msg]);
  }

  /** Asks an actor; rejects with ProtocolError (its code) or `unavailable` after the timeout. */
  ask<T>(to: string, msg: ActorMessage): Promise<T> {
    return new Promise<T>((resolve, reject) => this.askWith<T>(to, msg, (err, value) => (err ? reject(err) : resolve(value as T))));
  }

  /**
   * Like ask, but `done` runs synchronously inside the batch that carried the reply. An ask to a
   * shard that dies before answering fails at once with `unavailable`.
   */
  askWith<T>(to: string, msg: ActorMessage, done: ReplyCallback<T>): void {
    const peer = this.router.peerOf(to);
    const id = this.asks.open<T>(`${msg.op} to ${to}`, done, peer);
    this.send(peer, [Kind.ask, to, msg, this.router.gatewayPeer, id]);
  }

  /** Answered asks per shard: open to answer, as this thread saw it (the transport's hops included). */
  askLatency(): { shard: number; latency: LatencySnapshot }[] {
    // This node's shards (0-based); other nodes' are left out.
    const { router } = this;
    return [...this.asks.latency].filter(([peer]) => router.isLocalPeer(peer) && peer !== router.gatewayPeer)
      .map(([peer, s]) => ({ shard: peer - router.gatewayPeer - 1, latency: s.snapshot() }));
  }

  /** The gateway thread's transport figures: batches and envelopes to and from the shards (and nodes). */
  get transportStats(): TransportStats {
    return this.transport.stats;
  }

  /** Figures of the shards that are running (a shard being restarted is left out). */
  async stats(): Promise<ShardStats[]> {
    const live = this.slots.filter((s) => s?.live);
    const settled = await Promise.allSettled(live.map((s) => this.call(s, (c) => c.stats())));
    return settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /** Tests and operations: ends shard `index` abruptly, as a crash would (it is then restarted). */
  async killShard(index: number): Promise<void> {
    const slot = this.slots[index];
    if (!slot?.live) throw new Error(`shard ${index} is not running`);
    await slot.worker.terminate();
  }

  /** Tests: blocks shard `index` (a hung worker that answers nothing); resolves once it is blocked. */
  stallShard(index: number): Promise<void> {
    const slot = this.slots[index];
    if (!slot?.live) return Promise.reject(new Error(`shard ${index} is not running`));
    return new Promise((resolve) => {
      slot.worker.on('message', (m) => m === 'stalled' && resolve());
      // Never answers: the worker is blocked until it is terminated.
      void slot.control.stall();
    });
  }

  /** Resolves when shard `index` is running again (after a restart). */
  async shardReady(index: number): Promise<void> {
    for (;;) {
      const slot = this.slots[index];
      await slot.ready.catch(() => undefined);
      if (this.slots[index] === slot && slot.live) return;
      if (this.stopping || this.fatal) throw new Error(`shard ${index} will not run again`);
      if (this.slots[index] === slot) await slot.exited.catch(() => undefined);
    }
  }

  /**
   * Lets every shard finish, then closes their storage and ends the workers. Termination
   * detection (the four-counter rule): a round asks every shard to release its outputs and
   * report its per-peer envelope counts; the system is quiescent when every shard is idle,
   * every pair's sent equals the other side's received, and two consecutive rounds saw the same
   * counts (so nothing moved in between, and nothing is in flight).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const deadline = Date.now() + STOP_QUIESCENCE_LIMIT_MS;
    let previous: string | null = null;
    for (let round = 0; ; round++) {
      this.transport.flush();
      const live = this.slots.filter((s) => s?.live);
      const reports = await Promise.allSettled(live.map((s) => this.call(s, (c) => c.drain())));
      const ok = reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const gateway = this.counts();
      const key = JSON.stringify([gateway, ok]);
      const quiet = ok.length === live.length && balanced(gateway, ok);
      if (quiet && key === previous) break;
      previous = quiet ? key : null;
      if (Date.now() > deadline) {
        this.opts.log.error({ rounds: round }, 'stop: the shards did not become quiescent in time; closing anyway');
        break;
      }
    }
    const live = this.slots.filter((s) => s?.live);
    await Promise.allSettled(live.map((s) => this.call(s, (c) => c.close())));
    this.asks.close('server stopping');
    for (const s of this.slots) if (s) s.control[Comlink.releaseProxy]();
    await Promise.all(this.slots.filter(Boolean).map((s) => s.worker.terminate()));
    this.transport.close();
    await this.remote?.close();
  }

  /** The gateway's side of the stop protocol: its per-peer envelope counts (it holds no outputs). */
  private counts(): QuiescenceReport {
    const sent: number[] = [];
    const received: number[] = [];
    for (let thread = 0; thread <= this.opts.shards; thread++) {
      sent.push(this.transport.envelopesTo(this.router.localPeer(thread)));
      received.push(this.transport.envelopesFrom(this.router.localPeer(thread)));
    }
    return { shard: GATEWAY_THREAD, idle: true, sent, received, turns: 0 };
  }

  private send(dest: number, envelope: Envelope): void {
    this.transport.send(dest, envelope);
  }

  /** Runs a control call that fails (instead of hanging) if the worker dies first. */
  private call<T>(slot: ShardSlot, fn: (c: Comlink.Remote<ShardControl>) => Promise<T>): Promise<T> {
    return Promise.race([fn(slot.control), slot.exited]);
  }

  private spawn(index: number, peers: [number, MessagePort][]): ShardSlot {
    const control = new MessageChannel();
    const o = this.opts;
    const data: ShardWorkerData = {
      index, shardCount: o.shards, dataDir: o.dataDir, durability: o.durability, logLevel: o.logLevel, boot: o.boot,
      passivateAfterMs: o.passivateAfterMs, maxActivations: o.maxActivations, maxCommitBacklog: o.maxCommitBacklog,
      retentionMs: o.retentionMs ?? 0, retentionSweepMs: o.retentionSweepMs ?? 60_000,
      pushCoalesceMs: o.pushCoalesceMs ?? 3000, defaultLastSeen: o.defaultLastSeen ?? 'contacts',
      webhookEvents: o.webhookEvents ?? [], searchIndex: o.searchIndex ?? true,
      peers, control: control.port2, link: o.link,
    };
    const transferList: TransferListItem[] = [...peers.map(([, p]) => p), control.port2];
    const worker = new Worker(new URL('./shard-worker.js', import.meta.url), { workerData: data, transferList });
    let markReady!: () => void;
    let failStart!: (err: Error) => void;
    let markExited!: (err: Error) => void;
    const slot: ShardSlot = {
      index, worker, control: Comlink.wrap<ShardControl>(nodeEndpoint(control.port1)), live: false,
      ready: new Promise<void>((resolve, reject) => ((markReady = resolve), (failStart = reject))),
      exited: new Promise<never>((_, reject) => (markExited = reject)),
    };
    // Both are awaited only by whoever needs them; their rejection is reported by the exit handler.
    slot.ready.catch(() => undefined);
    slot.exited.catch(() => undefined);
    this.slots[index] = slot;
    worker.on('message', (m: unknown) => {
      if (m === 'ready') {
        slot.live = true;
        markReady();
      } else if (m && typeof m === 'object' && 'fatal' in m) {
        slot.fatalCause = String((m as { fatal: unknown }).fatal);
      }
    });
    worker.on('error', (err) => {
      slot.lastError = err;
      o.log.error({ err, shard: index }, 'shard threw');
    });
    worker.once('exit', (code) => {
      slot.live = false;
      const why = new ProtocolError(ErrorCode.unavailable, `shard ${index} stopped (exit code ${code})`, { cause: slot.lastError });
      markExited(why);
      failStart(why);
      this.onExit(slot, code);
    });
    return slot;
  }

  private onExit(slot: ShardSlot, code: number): void {
    const { index } = slot;
    const failed = this.asks.failTo(this.router.localPeer(index), `shard ${index} stopped`);
    if (this.stopping || this.fatal || !this.started) return; // stop() and start() handle these
    const log = this.opts.log;
    if (code === EXIT_STORAGE_FAILED) {
      // Not restarted: memory was ahead of the disk; only a fresh process is trustworthy.
      log.fatal({ shard: index, cause: slot.fatalCause }, 'shard stopped on a storage failure; stopping the server');
      return this.giveUp(new ShardFailure(`shard ${index}: storage failure: ${slot.fatalCause ?? 'unknown'}`));
    }
    const now = Date.now();
    this.deaths.push(now);
    while (this.deaths.length > 0 && this.deaths[0] <= now - MINUTE_MS) this.deaths.shift();
    if (this.deaths.length >= this.opts.maxShardRestartsPerMinute) {
      log.fatal({ shard: index, code, err: slot.lastError, deaths: this.deaths.length }, 'shards keep dying; stopping the server');
      return this.giveUp(new ShardFailure(`${this.deaths.length} shard deaths within a minute`));
    }
    log.error({ shard: index, code, err: slot.lastError, failedAsks: failed }, 'shard died; restarting it');
    this.restart(index, performance.now()).catch((err: unknown) => {
      log.fatal({ err, shard: index }, 'shard restart failed; stopping the server');
      this.giveUp(err);
    });
  }

  private giveUp(err: unknown): void {
    if (this.fatal) return;
    this.fatal = true;
    this.opts.onFatal(err);
  }

  /**
   * A new worker with the same index and fresh links to the gateway and to every running shard
   * (handed over by a control call). Its actors re-activate from LMDB on their next message;
   * then every shard re-runs fan-out recovery, since tells to the dead shard were lost.
   */
  private async restart(index: number, since: number): Promise<void> {
    this.restarts++;
    // What the gateway queued for the dead shard leaves on the old link and is lost with it.
    this.transport.flush();
    const toGateway = new MessageChannel();
    const peer = this.router.localPeer(index);
    this.transport.connect(peer, toGateway.port1);
    const peers: [number, MessagePort][] = [[this.router.gatewayPeer, toGateway.port2]];
    const handovers: Promise<void>[] = [];
    for (const other of this.slots) {
      if (!other || other.index === index || !other.live) continue;
      const { port1, port2 } = new MessageChannel();
      peers.push([this.router.localPeer(other.index), port1]);
      handovers.push(this.call(other, (c) => c.reconnect(peer, Comlink.transfer(port2, [port2]))));
    }
    const slot = this.spawn(index, peers);
    // A shard that dies meanwhile is restarted by its own exit handler.
    await Promise.allSettled(handovers);
    try {
      await slot.ready;
    } catch {
      return; // died while starting: its exit handler has counted it and restarts it again
    }
    if (this.stopping) return;
    const others = this.slots.filter((s) => s?.live && s.index !== index);
    await Promise.allSettled(others.map((s) => this.call(s, (c) => c.recover())));
    if (this.stopping) return;
    this.lastRestartMs = performance.now() - since;
    this.opts.log.warn({ shard: index, ms: Math.round(this.lastRestartMs) }, 'shard restarted');
    this.sink?.shardRestarted(peer);
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
        case Kind.publish: sink.publish(env[1], env[2], env[3]); break;
        default: this.opts.log.error({ kind: env[0] }, 'gateway got an envelope it does not handle');
      }
    }
  }
}

/**
 * Every pair of running threads has delivered all it sent (A's count to B equals B's count from
 * A), and every shard is idle. Threads not reporting (dead, restarting) are left out.
 */
function balanced(gateway: QuiescenceReport, shards: QuiescenceReport[]): boolean {
  const all = [gateway, ...shards];
  if (shards.some((r) => !r.idle)) return false;
  for (const a of all) {
    for (const b of all) {
      if (a !== b && a.sent[b.shard] !== b.received[a.shard]) return false;
    }
  }
  return true;
}
