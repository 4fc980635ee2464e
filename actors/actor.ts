// What an actor is and what it may do. An actor owns its state and its keys in LMDB, runs one
// message at a time, and talks to the world only through its context (so output commit holds).
import type { Database, Key } from 'lmdb';
import type { Logger } from 'pino';
import type { LastSeenVisibility, StorageEnv } from '../storage/env.js';
import type { ActorMessage } from './envelope.js';

export interface ActorContext {
  readonly shard: number;
  /** This run of the server: presence written by an earlier run is stale. */
  readonly boot: string;
  /** How long a push notification waits for later messages of its thread to replace it (ms). */
  readonly pushCoalesceMs: number;
  /** Who sees a user's presence before they chose (privacy.set). */
  readonly defaultLastSeen: LastSeenVisibility;
  readonly storage: StorageEnv;
  readonly log: Logger;
  /** Queue a write in this tick's transaction; outputs emitted after it wait for its commit. */
  put<V, K extends Key>(db: Database<V, K>, key: K, value: V): void;
  remove<V, K extends Key>(db: Database<V, K>, key: K): void;
  /** Fire and forget to another actor (released after this tick's commit). */
  tell(to: string, msg: ActorMessage): void;
  /** The same message to many actors: it crosses to each shard once (fan-out). Read-only for them. */
  tellMany(to: readonly string[], msg: ActorMessage): void;
  /** Encoded frame to sockets on a gateway (released after this tick's commit); u = 0 if ephemeral. */
  push(gateway: number, conns: number | number[], frame: Uint8Array, u: number): void;
  /** A channel's encoded posts (seq firstSeq, firstSeq + 1, …) for its subscribers on a gateway (after this tick's commit). */
  publish(gateway: number, channel: string, firstSeq: number, frames: Uint8Array[]): void;
  /** Run `fn` in this thread once this tick's writes are durable (bookkeeping, not output). */
  afterCommit(fn: () => void): void;
  /** Run `fn` once at the end of the current batch of messages (to coalesce per batch). */
  defer(fn: () => void): void;
  /** Close a socket on a gateway with a protocol close code. */
  kick(gateway: number, conn: number, code: number, reason: string): void;
}

export interface Actor {
  /** Handles one message. For an ask, the return value is the reply; a throw becomes an error reply. */
  receive(msg: ActorMessage): unknown;
  /** May this activation be dropped now? (no sockets, no unconfirmed work) */
  canPassivate(): boolean;
  /**
   * The activation is idle (or the shard stops): write down state it keeps lazily, so that it
   * can be dropped once those writes are durable. Called again on later sweeps; idempotent.
   */
  quiesce?(): void;
  /** Live registrations this actor holds, for leak checks in /metrics. */
  registrations?(): Registrations;
}

/** Sockets attached to a user, presence watchers, and a channel's subscribers (sockets and SSE viewers). */
export interface Registrations { sockets: number; watchers: number; followers?: number }

export type ActorFactory = (id: string, ctx: ActorContext) => Actor;
