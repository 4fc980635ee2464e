// A shard hosts virtual actors in one worker thread: activates them on first message (state
// from LMDB), runs one message at a time, routes their outputs through output commit, sheds
// client commands when the commit backlog is full, and passivates idle ones (never before their
// writes are durable). Client commands are answered here with the encoded frame.
import type { MessagePort } from 'node:worker_threads';
import type { Database, Key } from 'lmdb';
import type { Logger } from 'pino';
import { ErrorCode, ServerFrame } from '../protocol/codes.js';
import { MessageIdGenerator } from '../protocol/ids.js';
import { encodeFrame } from '../protocol/wire.js';
import type { LastSeenVisibility, StorageEnv } from '../storage/env.js';
import type { Actor, ActorContext } from './actor.js';
import { Kind, type ActorMessage, type Envelope } from './envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import type { ClientCommand } from './messages.js';
import { OutputCommit, type CommitStats } from './output-commit.js';
import { threadCpuMicros } from './thread-cpu.js';
import { parseAddress, Router, threadAddress, userAddress } from './router.js';
import { ThreadActor } from './thread-actor.js';
import { ChannelActor } from './channel-actor.js';
import { TrendingActor } from './trending-actor.js';
import { NodeTransport } from './node-transport.js';
import type { PeerId, TransportEvents, TransportStats } from './transport.js';
import { UserActor } from './user-actor.js';
import { RetentionSweeper, type RetentionStats } from './retention.js';
import { EventOutbox } from '../src/webhooks/events.js';
import { directoryDatabases, type DirectoryTable, type DirectoryWriter } from '../src/cluster/directory.js';

/** Exit code of a shard worker that stopped on a storage failure: the supervisor must not restart it. */
export const EXIT_STORAGE_FAILED = 70;
/** `retry` (ms) of the `unavailable` answer to a command shed because the commit backlog is full. */
export const SHED_RETRY_MS = 1000;
/** An activation's place in the LRU order is refreshed at most this often. */
const LRU_STEP_MS = 250;

export interface ShardOptions {
  /** An activation unused this long is dropped (if it can be). */
  passivateAfterMs: number;
  /** Activations kept at most; beyond, the least recently used that can be are dropped. */
  maxActivations: number;
  /** Commit groups waiting for the disk beyond which client commands are answered `unavailable`. */
  maxCommitBacklog: number;
  /** Entries older than this are deleted by the retention sweeper (ms); 0 keeps everything. */
  retentionMs: number;
  /** How often the retention sweeper starts a pass (ms). */
  retentionSweepMs: number;
  /** How long a push notification waits for later messages of its thread to replace it (ms). */
  pushCoalesceMs: number;
  /** Who sees a user's presence before they chose. */
  defaultLastSeen: LastSeenVisibility;
  /** Webhook event kinds written to the outbox (src/webhooks/events.ts); empty: WEBHOOK_URL unset, no outbox. */
  webhookEvents: readonly string[];
  /** Thread actors keep the search index (SEARCH=on). */
  searchIndex: boolean;
  /**
   * A write or commit failed: memory is now ahead of the disk and nothing held may be released.
   * Must end this shard for good (the worker exits with EXIT_STORAGE_FAILED).
   */
  onFatal(err: unknown): void;
}

export const defaultShardOptions = (): Omit<ShardOptions, 'onFatal'> => ({
  passivateAfterMs: 60_000, maxActivations: 100_000, maxCommitBacklog: 512, retentionMs: 0, retentionSweepMs: 60_000, pushCoalesceMs: 3000, defaultLastSeen: 'contacts', webhookEvents: [], searchIndex: true,
});

/** What a shard reports to the stop protocol: idle, and its per-peer envelope counts. */
export interface QuiescenceReport {
  shard: number;
  /** no output held for a commit, nothing queued in the transport */
  idle: boolean;
  /** sent[p]: envelopes handed to thread p, received[p]: taken from it, since their link was made */
  sent: number[];
  received: number[];
  turns: number;
}

export interface ShardStats {
  shard: number;
  actors: { user: number; thread: number; channel: number };
  /** sockets attached to user actors, presence watchers and channel subscribers, across this shard */
  registrations: { sockets: number; watchers: number; followers: number };
  /** commit groups waiting for the disk, and the outputs they hold */
  pendingOutputGroups: number;
  heldOutputs: number;
  /** commits so far: count, seal-to-durable time, and the outputs each held (the batch size) */
  commit: CommitStats;
  /** CPU this shard's thread has used (µs; NaN off Linux) */
  cpuMicros: number;
  /** activations made, and dropped (idle, empty after their batch, or over the bound) */
  activations: number;
  passivations: number;
  /** client commands answered `unavailable` because the commit backlog was full */
  shed: number;
  transport: TransportStats;
  turns: number;
  retention: RetentionStats;
}

interface Activation {
  actor: Actor;
  lastActive: number;
  /** the output-commit group of its newest write (0: never wrote); droppable once released */
  wroteIn: number;
  /** work it deferred to the end of this batch, not yet run: it may write (an inbox row, a block) */
  deferred: number;
}

export class Shard {
  readonly transport: NodeTransport;
  /** this shard's PeerId (router.localPeer(index)): what its own actors' addresses route to */
  readonly peer: PeerId;
  /** In least-recently-used order: every activation moves to the end. */
  private readonly activations = new Map<string, Activation>();
  private readonly outputs: OutputCommit;
  private readonly ctx: ActorContext;
  private readonly ids: MessageIdGenerator;
  /** null when webhooks are off: actors then write no event at all */
  private readonly outbox: EventOutbox | null;
  private readonly sweeper: NodeJS.Timeout;
  private readonly retention: RetentionSweeper;
  private readonly opts: ShardOptions;
  private turns = 0;
  private made = 0;
  private dropped = 0;
  private shed = 0;
  /** Deferred work of this batch, each with the activation that deferred it (writes count for it). */
  private readonly deferred = new Map<() => void, Activation | null>();
  /** The activation whose turn is running, to attribute writes; null between turns. */
  private current: Activation | null = null;
  /** Activations made during this batch, dropped at its end if they hold nothing. */
  private readonly fresh: string[] = [];
  /**
   * Tells between actors of this shard, run in this batch after the turn that made them: their
   * writes join the same transaction, and every output they cause waits for its commit anyway,
   * so a local hop costs neither a commit nor a trip through the transport.
   */
  private readonly local: { to: string; msg: ActorMessage }[] = [];
  private localHead = 0;
  /** A batch is being handled (local tells made outside one schedule their own). */
  private inBatch = false;
  private batchScheduled = false;
  /** The newest group with a write made outside any turn: blocks every passivation until released. */
  private orphanWrite = 0;
  private failed = false;
  private recoverScheduled = false;
  /** In a cluster: where rows of the replicated directory tables go after their commit. */
  private directory: { writer: DirectoryWriter; tables: Map<unknown, DirectoryTable> } | null = null;

  constructor(
    readonly index: number,
    private readonly router: Router,
    private readonly storage: StorageEnv,
    private readonly log: Logger,
    private readonly boot: string,
    opts: Partial<ShardOptions> & Pick<ShardOptions, 'onFatal'>,
  ) {
    this.opts = { ...defaultShardOptions(), ...opts };
    this.peer = router.localPeer(index);
    // Unique across the nodes of a cluster (alone: the thread index, as before).
    this.ids = new MessageIdGenerator(router.ringShard(index) + 1);
    this.outbox = this.opts.webhookEvents.length > 0 ? new EventOutbox(index, storage, this.opts.webhookEvents) : null;
    this.outputs = new OutputCommit(storage.barrier, (err) => this.fatal(err, 'commit failed'));
    this.transport = new NodeTransport(this.peer, this.transportEvents, log);
    this.ctx = this.makeContext();
    this.sweeper = setInterval(() => this.passivateIdle(), Math.max(10, this.opts.passivateAfterMs / 4));
    this.sweeper.unref();
    this.retention = new RetentionSweeper(storage, log, {
      retentionMs: this.opts.retentionMs,
      sweepMs: this.opts.retentionSweepMs,
      owns: (address) => this.router.peerOf(address) === this.peer,
      // Between turns: what an actor keeps of the deleted entries goes in a turn of its own.
      trimmed: (address, log, floor, cutoff) => {
        if (log === 'user') this.tellLocal(address, { op: 'expire', cutoff });
        else if (log === 'channel' && this.activations.has(address)) this.tellLocal(address, { op: 'trimmed', floor });
        // The thread actor drops the search blocks left without messages (it is their only writer).
        else if (log === 'thread') this.tellLocal(address, { op: 'trimmed', floor });
      },
      onFatal: (err) => this.fatal(err, 'retention sweep write failed'),
    });
    this.retention.start();
  }

  /** Re-runs fan-outs that a crash interrupted, for the threads this shard owns. */
  recover(): number {
    // Marks committed by the shard that died are newer than this thread's read snapshot.
    this.storage.refresh();
    this.inBatch = true;
    let n = 0;
    for (const thread of this.storage.db.fanout.getKeys()) {
      const address = threadAddress(thread as string);
      if (this.router.peerOf(address) !== this.peer) continue;
      this.deliver(address, { op: 'recover' });
      n++;
    }
    // Account deletions a crash interrupted go on (actors/account-deletion.ts).
    for (const user of this.storage.db.deletions.getKeys()) {
      const address = userAddress(user as string);
      if (this.router.peerOf(address) === this.peer) this.deliver(address, { op: 'delete-continue' });
    }
    this.endBatch();
    return n;
  }

  stats(): ShardStats {
    const actors = { user: 0, thread: 0, channel: 0 };
    const registrations = { sockets: 0, watchers: 0, followers: 0 };
    for (const [address, { actor }] of this.activations) {
      const kind = parseAddress(address).kind as keyof typeof actors;
      if (kind in actors) actors[kind]++;
      const r = actor.registrations?.();
      if (r) {
        registrations.sockets += r.sockets;
        registrations.watchers += r.watchers;
        registrations.followers += r.followers ?? 0;
      }
    }
    return {
      shard: this.index, actors, registrations,
      pendingOutputGroups: this.outputs.pendingGroups, heldOutputs: this.outputs.heldOutputs,
      commit: this.outputs.stats, cpuMicros: threadCpuMicros(),
      activations: this.made, passivations: this.dropped, shed: this.shed,
      transport: { ...this.transport.stats }, turns: this.turns,
      retention: { ...this.retention.stats, swept: { ...this.retention.stats.swept } },
    };
  }

  /** Releases every output produced so far, sends it, and reports for the stop protocol. */
  async drain(): Promise<QuiescenceReport> {
    // Stopping: no more sweeping (what a slice being committed wrote is waited for below).
    await this.retention.stop();
    for (const a of this.activations.values()) this.quiesce(a);
    await this.outputs.idle();
    this.transport.flush();
    const sent: number[] = [];
    const received: number[] = [];
    for (let thread = 0; thread <= this.router.shardCount; thread++) {
      sent.push(this.transport.envelopesTo(this.router.localPeer(thread)));
      received.push(this.transport.envelopesFrom(this.router.localPeer(thread)));
    }
    return { shard: this.index, idle: this.outputs.isIdle, sent, received, turns: this.turns };
  }

  /**
   * Thread `peer` was restarted: what was queued for it goes out now (to the old link, lost with
   * it; fan-out recovery re-sends what matters), then `port` replaces that link, with fresh counts.
   */
  reconnect(peer: number, port: MessagePort): void {
    this.transport.flush();
    this.transport.connect(peer, port);
  }

  /** From now on, committed writes to the directory tables are published to the other nodes. */
  replicateTo(writer: DirectoryWriter): void {
    const tables = new Map<unknown, DirectoryTable>();
    for (const [table, db] of directoryDatabases(this.storage)) tables.set(db, table);
    this.directory = { writer, tables };
  }

  /** A directory row written in this turn leaves for the other nodes once it is committed. */
  private replicate(db: unknown, key: unknown, value: unknown): void {
    const table = this.directory?.tables.get(db);
    if (table === undefined) return;
    const { writer } = this.directory!;
    this.outputs.emit(() => writer.publish(table, key, value));
  }

  /** Clears the timers; resolves once a retention slice being committed is. */
  stop(): Promise<unknown> {
    clearInterval(this.sweeper);
    return this.retention.stop();
  }

  /** What this shard's transports (ports, and NATS in a cluster) report to. */
  readonly transportEvents: TransportEvents = {
    onBatch: (_from, envelopes) => this.onBatch(envelopes),
    // Another node's thread came (back): tells sent to it while it was away were lost (at most
    // once), so the fan-outs still marked pending are re-sent, as after a local shard's restart.
    onPeerUp: (peer) => {
      if (!this.router.isLocalPeer(peer)) this.recoverSoon();
    },
  };

  /** One recovery pass for any number of peers coming up in one tick. */
  private recoverSoon(): void {
    if (this.recoverScheduled) return;
    this.recoverScheduled = true;
    setImmediate(() => {
      this.recoverScheduled = false;
      if (this.failed) return;
      const n = this.recover();
      if (n > 0) this.log.info({ threads: n }, 'resuming fan-outs after another node came up');
    });
  }

  private onBatch(envelopes: Envelope[]): void {
    if (this.failed) return;
    // Other threads commit too: read their latest writes (sessions, devices, users).
    this.storage.refresh();
    this.inBatch = true;
    this.storage.writeBatch(() => this.handleBatch(envelopes)).then(undefined, this.onBatchFailed);
  }

  private readonly onBatchFailed = (err: unknown): void => this.fatal(err, 'write failed');

  private handleBatch(envelopes: Envelope[]): void {
    for (const env of envelopes) {
      switch (env[0]) {
        case Kind.tell:
          this.deliver(env[1], env[2]);
          break;
        case Kind.ask:
          this.answer(env[1], env[2], env[3], env[4]);
          break;
        case Kind.tellMany:
          for (const to of env[1]) this.deliver(to, env[2]);
          break;
        default:
          this.log.error({ kind: env[0] }, 'shard got an envelope it does not handle');
      }
    }
    this.endBatch();
  }

  private endBatch(): void {
    this.inBatch = true;
    // Local tells, then the batch's deferred work, which may tell again: until both are done.
    for (;;) {
      this.runLocal();
      if (this.deferred.size === 0) break;
      const work = [...this.deferred];
      this.deferred.clear();
      for (const [fn, activation] of work) {
        if (activation) activation.deferred--;
        this.current = activation;
        try {
          fn();
        } catch (err) {
          this.log.error({ err }, 'deferred work failed');
        }
      }
      this.current = null;
    }
    this.inBatch = false;
    // An activation that wrote nothing holds nothing LMDB does not (e.g. `history` on a thread
    // id that does not exist): it is not kept for the idle time.
    for (const address of this.fresh) {
      const a = this.activations.get(address);
      if (a && a.wroteIn === 0 && a.actor.canPassivate()) this.drop(address);
    }
    this.fresh.length = 0;
    if (this.activations.size > this.opts.maxActivations) this.evict();
  }

  private send(dest: number, envelope: Envelope): void {
    this.transport.send(dest, envelope);
  }

  /** A tell to an actor of this shard: queued for this batch (or, outside one, for the next tick). */
  private tellLocal(to: string, msg: ActorMessage): void {
    this.local.push({ to, msg });
    if (!this.inBatch && !this.batchScheduled) {
      this.batchScheduled = true;
      setImmediate(() => {
        this.batchScheduled = false;
        if (!this.failed) this.endBatch();
      });
    }
  }

  private runLocal(): void {
    const queue = this.local;
    while (this.localHead < queue.length) {
      const { to, msg } = queue[this.localHead++];
      this.deliver(to, msg);
    }
    queue.length = 0;
    this.localHead = 0;
  }

  private activate(address: string): Activation {
    let activation = this.activations.get(address);
    if (activation) {
      // Used within the last LRU_STEP_MS: already near the end; moving it every turn costs more
      // than the order is worth (passivation works in tens of seconds).
      const now = Date.now();
      if (now - activation.lastActive < LRU_STEP_MS) return activation;
      this.activations.delete(address); // to the end: most recently used
    } else {
      const { kind, id } = parseAddress(address);
      let actor: Actor;
      if (kind === 'user') actor = new UserActor(id, this.ctx, this.outbox);
      else if (kind === 'thread') actor = new ThreadActor(id, this.ctx, this.ids, this.outbox, this.opts.searchIndex);
      else if (kind === 'channel') actor = new ChannelActor(id, this.ctx, this.ids, this.outbox);
      else if (kind === 'trending') actor = new TrendingActor();
      else throw new ProtocolError(ErrorCode.not_found, `no actor kind ${kind}`);
      activation = { actor, lastActive: 0, wroteIn: 0, deferred: 0 };
      this.made++;
      this.fresh.push(address);
    }
    this.activations.set(address, activation);
    activation.lastActive = Date.now();
    return activation;
  }

  private deliver(address: string, msg: ActorMessage): void {
    this.turns++;
    try {
      const activation = this.activate(address);
      this.current = activation;
      activation.actor.receive(msg);
    } catch (err) {
      this.log.error({ err, address, op: msg.op }, 'tell failed');
    } finally {
      this.current = null;
    }
  }

  private answer(address: string, msg: ActorMessage, replyTo: number, id: number): void {
    this.turns++;
    if (msg.op === 'cmd' && this.outputs.pendingGroups >= this.opts.maxCommitBacklog) {
      // The disk is behind: say so now rather than queue more work behind it. Depends on no write.
      this.shed++;
      const busy = new ProtocolError(ErrorCode.unavailable, 'storage is busy, retry later', { retry: SHED_RETRY_MS });
      this.send(replyTo, [Kind.reply, id, clientAnswer((msg as ClientCommand).caller.r, undefined, busy)]);
      return;
    }
    let value: unknown;
    let error: ProtocolError | undefined;
    let activation: Activation | undefined;
    let wroteBefore = 0;
    try {
      activation = this.activate(address);
      wroteBefore = activation.wroteIn;
      this.current = activation;
      value = activation.actor.receive(msg);
    } catch (err) {
      error = err instanceof ProtocolError ? err : new ProtocolError(ErrorCode.internal, 'internal error', { cause: err });
      if (error.code === ErrorCode.internal) this.log.error({ err, address, op: msg.op }, 'turn failed');
    } finally {
      this.current = null;
    }
    let reply: Envelope;
    if (msg.op === 'cmd') {
      // Client commands are answered with the frame itself, encoded once, here.
      reply = [Kind.reply, id, clientAnswer((msg as ClientCommand).caller.r, value, error)];
    } else {
      reply = error ? [Kind.reply, id, null, error.code, error.message] : [Kind.reply, id, value];
    }
    // A turn that wrote nothing, by an actor whose own writes are all durable and that has no
    // work deferred to the batch's end (which may write: thread.set's inbox row), answers from
    // durable state: it need not wait behind other actors' commits (a `history` or `inbox`
    // under load). Anything else waits for this tick's commit.
    const readOnly = !activation || (activation.wroteIn === wroteBefore && activation.deferred === 0 && this.outputs.isReleased(wroteBefore));
    const release = () => this.outputs.emit(() => this.send(replyTo, reply));
    if (readOnly && this.outputs.isReleased(this.orphanWrite)) this.send(replyTo, reply);
    // Emitted after the work it deferred, so whatever that writes holds the answer too.
    else if (activation && activation.deferred > 0) this.deferFor(activation, release);
    else release();
  }

  /** Runs `fn` at the end of this batch, after the work deferred before it, counted for `activation`. */
  private deferFor(activation: Activation | null, fn: () => void): void {
    this.deferred.set(fn, activation);
    if (activation) activation.deferred++;
  }

  /** May this activation go now? Its own rules, and every write it made is durable. */
  private droppable(a: Activation): boolean {
    return this.outputs.isReleased(a.wroteIn) && this.outputs.isReleased(this.orphanWrite) && a.actor.canPassivate();
  }

  private drop(address: string): void {
    this.activations.delete(address);
    this.dropped++;
  }

  /** Drops activations idle since before `now - passivateAfterMs` that can go (the sweeper's job). */
  passivateIdle(now = Date.now()): void {
    const cutoff = now - this.opts.passivateAfterMs;
    for (const [address, a] of this.activations) {
      if (a.lastActive >= cutoff) break; // LRU order: the rest are more recent
      if (this.droppable(a)) this.drop(address);
      else this.quiesce(a); // droppable on a later sweep, once what it writes now is durable
    }
  }

  private quiesce(a: Activation): void {
    if (!a.actor.quiesce) return;
    this.current = a;
    try {
      a.actor.quiesce();
    } catch (err) {
      this.log.error({ err }, 'quiesce failed');
    } finally {
      this.current = null;
    }
  }

  /** Over the bound: drop the least recently used activations that can go. */
  private evict(): void {
    let excess = this.activations.size - this.opts.maxActivations;
    for (const [address, a] of this.activations) {
      if (excess <= 0) break;
      if (this.droppable(a)) {
        this.drop(address);
        excess--;
      } else this.quiesce(a);
    }
  }

  /** A write or commit failed: log it, release nothing more, and let the owner end the shard. */
  private fatal(err: unknown, what: string): void {
    if (this.failed) return;
    this.failed = true;
    this.log.fatal({ err, shard: this.index }, `${what}; stopping the shard (its outputs are never released)`);
    this.opts.onFatal(err);
  }

  private makeContext(): ActorContext {
    const { outputs, router } = this;
    const shard = this;
    const send = (dest: number, envelope: Envelope) => this.send(dest, envelope);
    // lmdb-js: put/remove resolve true once committed (false only for a failed ifVersion
    // condition, which we never use) and reject when the commit fails: either is fatal.
    // Unconditional writes of one transaction share one promise: watch each promise once.
    const onWritten = (ok: boolean) => {
      if (!ok) this.fatal(new Error('a write was not applied'), 'write failed');
    };
    const onWriteFailed = (err: unknown) => this.fatal(err, 'write failed');
    let watched: Promise<boolean> | null = null;
    const watch = (written: Promise<boolean>) => {
      if (written === watched) return;
      watched = written;
      written.then(onWritten, onWriteFailed);
    };
    const wrote = () => {
      const group = outputs.wrote();
      if (shard.current) shard.current.wroteIn = group;
      else shard.orphanWrite = group;
    };
    return {
      shard: this.index,
      boot: this.boot,
      pushCoalesceMs: this.opts.pushCoalesceMs,
      defaultLastSeen: this.opts.defaultLastSeen,
      storage: this.storage,
      log: this.log,
      put<V, K extends Key>(db: Database<V, K>, key: K, value: V) {
        watch(db.put(key, value));
        wrote();
        if (shard.directory) shard.replicate(db, key, value);
      },
      remove<V, K extends Key>(db: Database<V, K>, key: K) {
        watch(db.remove(key));
        wrote();
        if (shard.directory) shard.replicate(db, key, undefined);
      },
      tell(to, msg) {
        const dest = router.peerOf(to);
        if (dest === shard.peer) shard.tellLocal(to, msg);
        else outputs.emit(() => send(dest, [Kind.tell, to, msg]));
      },
      tellMany(to, msg) {
        if (to.length === 1) return this.tell(to[0], msg);
        let byThread: Map<number, string[]> | null = null;
        for (const address of to) {
          const thread = router.peerOf(address);
          if (thread === shard.peer) {
            shard.tellLocal(address, msg);
            continue;
          }
          byThread ??= new Map();
          const list = byThread.get(thread);
          if (list) list.push(address);
          else byThread.set(thread, [address]);
        }
        if (!byThread) return;
        const remote = byThread;
        outputs.emit(() => {
          for (const [thread, addresses] of remote) send(thread, [Kind.tellMany, addresses, msg]);
        });
      },
      push(gateway, conns, frame, u) {
        outputs.emit(() => send(gateway, [Kind.push, conns, frame, u]));
      },
      publish(gateway, channel, firstSeq, frames) {
        outputs.emit(() => send(gateway, [Kind.publish, channel, firstSeq, frames]));
      },
      kick(gateway, conn, code, reason) {
        outputs.emit(() => send(gateway, [Kind.kick, conn, code, reason]));
      },
      afterCommit(fn) {
        outputs.emit(fn);
      },
      defer: (fn) => {
        if (!this.deferred.has(fn)) this.deferFor(this.current, fn);
      },
    };
  }
}

/** The encoded ok/err frame for a client command, or null when nothing is owed (no r, success). */
function clientAnswer(r: number | undefined, value: unknown, error: ProtocolError | undefined): Uint8Array | null {
  if (error) {
    const frame: Record<string, unknown> = { t: ServerFrame.err, code: error.code, msg: error.message };
    if (r !== undefined) frame.r = r;
    if (error.retry !== undefined) frame.retry = error.retry;
    return encodeFrame(frame);
  }
  if (r === undefined) return null;
  return encodeFrame({ t: ServerFrame.ok, r, ...(value as object | undefined) });
}
