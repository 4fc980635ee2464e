// A shard hosts virtual actors in one worker thread: activates them on first message (state
// from LMDB), runs one message at a time, routes their outputs through output commit, and
// passivates idle ones. Client commands are answered here with the encoded frame.
import type { Database, Key } from 'lmdb';
import type { Logger } from 'pino';
import { ErrorCode, ServerFrame } from '../protocol/codes.js';
import { MessageIdGenerator } from '../protocol/ids.js';
import { encodeFrame } from '../protocol/wire.js';
import type { StorageEnv } from '../storage/env.js';
import type { Actor, ActorContext } from './actor.js';
import { Kind, type ActorMessage, type Envelope } from './envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import type { ClientCommand } from './messages.js';
import { OutputCommit } from './output-commit.js';
import { parseAddress, Router, threadAddress } from './router.js';
import { ThreadActor } from './thread-actor.js';
import { Transport } from './transport.js';
import { UserActor } from './user-actor.js';

export interface ShardStats {
  shard: number;
  actors: { user: number; thread: number };
  /** sockets attached to user actors, and presence watchers, across this shard */
  registrations: { sockets: number; watchers: number };
  pendingOutputGroups: number;
  transport: Transport['stats'];
  turns: number;
}

interface Activation {
  actor: Actor;
  lastActive: number;
}

const PASSIVATE_AFTER_MS = 60_000;

export class Shard {
  readonly transport: Transport;
  private readonly activations = new Map<string, Activation>();
  private readonly outputs: OutputCommit;
  private readonly ctx: ActorContext;
  private readonly ids: MessageIdGenerator;
  private readonly sweeper: NodeJS.Timeout;
  private turns = 0;
  private readonly deferred = new Set<() => void>();

  constructor(
    readonly index: number,
    private readonly router: Router,
    private readonly storage: StorageEnv,
    private readonly log: Logger,
    private readonly boot: string,
  ) {
    this.ids = new MessageIdGenerator(index);
    this.outputs = new OutputCommit(storage.barrier, (err) => {
      // Outputs of a failed commit must never be released; state in memory is now ahead of disk.
      log.fatal({ err }, 'commit failed; stopping the shard');
      throw err;
    });
    this.transport = new Transport(index, (_from, envelopes) => this.onBatch(envelopes));
    this.ctx = this.makeContext();
    this.sweeper = setInterval(() => this.passivateIdle(), PASSIVATE_AFTER_MS / 4);
    this.sweeper.unref();
  }

  /** Re-runs fan-outs that a crash interrupted, for the threads this shard owns. */
  recover(): number {
    let n = 0;
    for (const thread of this.storage.db.fanout.getKeys()) {
      const address = threadAddress(thread as string);
      if (this.router.threadOf(address) !== this.index) continue;
      this.deliver(address, { op: 'recover' });
      n++;
    }
    return n;
  }

  stats(): ShardStats {
    const actors = { user: 0, thread: 0 };
    const registrations = { sockets: 0, watchers: 0 };
    for (const [address, { actor }] of this.activations) {
      const kind = parseAddress(address).kind as keyof typeof actors;
      if (kind in actors) actors[kind]++;
      const r = actor.registrations?.();
      if (r) {
        registrations.sockets += r.sockets;
        registrations.watchers += r.watchers;
      }
    }
    return { shard: this.index, actors, registrations, pendingOutputGroups: this.outputs.pendingGroups, transport: { ...this.transport.stats }, turns: this.turns };
  }

  /** Resolves when every output produced so far is released and sent. */
  async drain(): Promise<void> {
    await this.outputs.idle();
    this.transport.flush();
  }

  stop(): void {
    clearInterval(this.sweeper);
  }

  private onBatch(envelopes: Envelope[]): void {
    // Other threads commit too: read their latest writes (sessions, devices, users).
    this.storage.refresh();
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
    for (const fn of this.deferred) {
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, 'deferred work failed');
      }
    }
    this.deferred.clear();
  }

  private activate(address: string): Actor {
    let activation = this.activations.get(address);
    if (!activation) {
      const { kind, id } = parseAddress(address);
      let actor: Actor;
      if (kind === 'user') actor = new UserActor(id, this.ctx);
      else if (kind === 'thread') actor = new ThreadActor(id, this.ctx, this.ids);
      else throw new ProtocolError(ErrorCode.not_found, `no actor kind ${kind}`);
      activation = { actor, lastActive: 0 };
      this.activations.set(address, activation);
    }
    activation.lastActive = Date.now();
    return activation.actor;
  }

  private deliver(address: string, msg: ActorMessage): void {
    this.turns++;
    try {
      this.activate(address).receive(msg);
    } catch (err) {
      this.log.error({ err, address, op: msg.op }, 'tell failed');
    }
  }

  private answer(address: string, msg: ActorMessage, replyTo: number, id: number): void {
    this.turns++;
    let value: unknown;
    let error: ProtocolError | undefined;
    try {
      value = this.activate(address).receive(msg);
    } catch (err) {
      error = err instanceof ProtocolError ? err : new ProtocolError(ErrorCode.internal, 'internal error', { cause: err });
      if (error.code === ErrorCode.internal) this.log.error({ err, address, op: msg.op }, 'turn failed');
    }
    let reply: Envelope;
    if (msg.op === 'cmd') {
      // Client commands are answered with the frame itself, encoded once, here.
      reply = [Kind.reply, id, clientAnswer((msg as ClientCommand).caller.r, value, error)];
    } else {
      reply = error ? [Kind.reply, id, null, error.code, error.message] : [Kind.reply, id, value];
    }
    this.outputs.emit(() => this.transport.send(replyTo, reply));
  }

  private passivateIdle(): void {
    const cutoff = Date.now() - PASSIVATE_AFTER_MS;
    for (const [address, a] of this.activations) {
      if (a.lastActive < cutoff && a.actor.canPassivate()) this.activations.delete(address);
    }
  }

  private makeContext(): ActorContext {
    const { outputs, transport, router } = this;
    return {
      shard: this.index,
      boot: this.boot,
      storage: this.storage,
      log: this.log,
      put<V, K extends Key>(db: Database<V, K>, key: K, value: V) {
        void db.put(key, value);
        outputs.wrote();
      },
      remove<V, K extends Key>(db: Database<V, K>, key: K) {
        void db.remove(key);
        outputs.wrote();
      },
      tell(to, msg) {
        outputs.emit(() => transport.send(router.threadOf(to), [Kind.tell, to, msg]));
      },
      tellMany(to, msg) {
        if (to.length === 1) return this.tell(to[0], msg);
        const byThread = new Map<number, string[]>();
        for (const address of to) {
          const thread = router.threadOf(address);
          const list = byThread.get(thread);
          if (list) list.push(address);
          else byThread.set(thread, [address]);
        }
        outputs.emit(() => {
          for (const [thread, addresses] of byThread) transport.send(thread, [Kind.tellMany, addresses, msg]);
        });
      },
      push(gateway, conns, frame, u) {
        outputs.emit(() => transport.send(gateway, [Kind.push, conns, frame, u]));
      },
      kick(gateway, conn, code, reason) {
        outputs.emit(() => transport.send(gateway, [Kind.kick, conn, code, reason]));
      },
      afterCommit(fn) {
        outputs.emit(fn);
      },
      defer: (fn) => {
        this.deferred.add(fn);
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
