// The directory in a cluster: the tables any node's gateway and actors read for any user
// (accounts, usernames, credentials, sessions, devices, application users), replicated to every
// node through one NATS KV bucket (history 1: the bucket is the directory's latest state, and
// its stream order is the one order every node applies). Each node still writes its own LMDB at
// once (read-your-writes) and publishes the row after its commit; every node, the writer too,
// applies every entry in bucket order, so all replicas converge to the bucket. Names and
// application users are claimed in the bucket first (create: one winner cluster-wide).
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Database, Key } from 'lmdb';
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { StorageEnv } from '../../storage/env.js';

/** The replicated tables, by the name their entries carry. */
export const DIRECTORY_TABLES = ['users', 'usernames', 'credentials', 'sessions', 'devices', 'app-users'] as const;
export type DirectoryTable = typeof DIRECTORY_TABLES[number];

type AnyDb = Database<unknown, Key>;

export function directoryDatabases(storage: StorageEnv): Map<DirectoryTable, AnyDb> {
  const { db } = storage;
  return new Map<DirectoryTable, AnyDb>([
    ['users', db.users], ['usernames', db.usernames], ['credentials', db.credentials],
    ['sessions', db.sessions], ['devices', db.devices], ['app-users', db.appUsers],
  ] as [DirectoryTable, AnyDb][]);
}

const bucketName = (cluster: string) => `parley-${cluster}-directory`;
/** KV keys allow [-/_=.a-zA-Z0-9]: the table, then the LMDB key packed and base64url'd. */
const entryKey = (table: DirectoryTable, key: unknown) => `${table}.${Buffer.from(pack(key)).toString('base64url')}`;
/** The cluster's own entries are not table rows: their keys start with `_`. */
const EPOCH_KEY = '_epoch';
/** How often a failed publish is tried again before the row is reported out of the directory. */
const PUBLISH_ATTEMPTS = 5;
/** Each replica says how far it has applied this often (and after every batch it applied). */
const APPLIED_EVERY_MS = 1000;
/** A replica not heard from for this long is down: writers stop waiting for it. */
const REPLICA_SILENT_MS = 3 * APPLIED_EVERY_MS;
/** A write waits at most this long for the live replicas (then it is logged and goes on). */
const REPLICATION_WAIT_MS = 5000;

/** What shards and gateways write through: the publishing half. */
export class DirectoryWriter {
  constructor(protected readonly kv: KV, protected readonly log: Logger) {}

  static async open(nc: NatsConnection, cluster: string, log: Logger): Promise<DirectoryWriter> {
    return new DirectoryWriter(await openBucket(nc, cluster), log);
  }

  /** Publishes a committed row (undefined: removed). Retries; a row that never goes is logged. */
  publish(table: DirectoryTable, key: unknown, value: unknown): void {
    const k = entryKey(table, key);
    const attempt = (n: number): void => {
      const done = value === undefined ? this.kv.delete(k) : this.kv.put(k, pack(value));
      done.then(undefined, (err: unknown) => {
        if (n + 1 < PUBLISH_ATTEMPTS) return attempt(n + 1);
        this.log.error({ err, table }, 'directory: a row could not be published; other nodes do not see it');
      });
    };
    attempt(0);
  }

  /** Publishes and resolves with the row's revision once the bucket has it. */
  async put(table: DirectoryTable, key: unknown, value: unknown): Promise<number> {
    return this.kv.put(entryKey(table, key), pack(value));
  }

  /**
   * Claims a key cluster-wide: true if this call created it, false if it exists (a name taken on
   * another node, an application user bound there first).
   */
  async claim(table: DirectoryTable, key: unknown, value: unknown): Promise<boolean> {
    try {
      await this.kv.create(entryKey(table, key), pack(value));
      return true;
    } catch (err) {
      if (err instanceof Error && /wrong last sequence|key exists/i.test(err.message)) return false;
      throw err;
    }
  }

  /**
   * The cluster's epoch (docs/protocol.md §3): the first node's, claimed once in the bucket, so a
   * cursor stays valid whichever node a client reconnects to (a user's log lives on one node).
   */
  async clusterEpoch(candidate: string): Promise<string> {
    try {
      await this.kv.create(EPOCH_KEY, pack(candidate));
      return candidate;
    } catch (err) {
      if (!(err instanceof Error && /wrong last sequence|key exists/i.test(err.message))) throw err;
    }
    const entry = await this.kv.get(EPOCH_KEY);
    if (!entry || entry.operation !== 'PUT') throw new Error('directory: the cluster epoch is missing');
    return unpack(entry.value) as string;
  }

  /** Gives a claim back (the claimer could not use it). */
  async unclaim(table: DirectoryTable, key: unknown): Promise<void> {
    await this.kv.delete(entryKey(table, key));
  }

  /** The bucket's current row (undefined: none), read from the bucket itself. */
  async read(table: DirectoryTable, key: unknown): Promise<unknown> {
    const entry = await this.kv.get(entryKey(table, key));
    return entry && entry.operation === 'PUT' ? unpack(entry.value) : undefined;
  }
}

/**
 * A node's replica: the writer, plus the watcher that applies the bucket to this node's LMDB.
 * Writes made here (put) resolve once every live replica has committed them, so a message this
 * node sends next (an attach, a group with the new user) finds the row on whichever node it
 * reaches. Replicas say how far they have committed on `parley.<cluster>.directory.applied`.
 */
export class DirectoryReplica extends DirectoryWriter {
  /** the newest revision handed to LMDB, and the newest known committed (readable here) */
  private received = 0;
  private committed = 0;
  private committing = false;
  private readonly syncWaiters: { revision: number; resolve: () => void }[] = [];
  /** the other replicas: how far each has committed, and when it last said so */
  private readonly replicas = new Map<string, { revision: number; at: number }>();
  private readonly replicationWaiters = new Set<() => void>();
  private readonly databases: Map<DirectoryTable, AnyDb>;
  private readonly appliedSubject: string;
  private subscription: Subscription | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private watch: Awaited<ReturnType<KV['watch']>> | null = null;
  private stopped = false;
  /** entries skipped because they could not be read (logged once) */
  rejected = 0;

  private constructor(kv: KV, private readonly nc: NatsConnection, cluster: string, private readonly node: string, private readonly storage: StorageEnv, log: Logger) {
    super(kv, log);
    this.databases = directoryDatabases(storage);
    this.appliedSubject = `parley.${cluster}.directory.applied`;
  }

  /** Opens the bucket, starts applying it, and resolves once this replica has caught up. */
  static async start(nc: NatsConnection, cluster: string, node: string, storage: StorageEnv, log: Logger): Promise<DirectoryReplica> {
    const replica = new DirectoryReplica(await openBucket(nc, cluster), nc, cluster, node, storage, log);
    replica.subscription = nc.subscribe(replica.appliedSubject, {
      callback: (err, msg) => {
        if (!err) replica.onApplied(msg.data);
      },
    });
    replica.watch = await replica.kv.watch();
    void replica.run();
    await replica.sync();
    replica.heartbeat = setInterval(() => replica.sayApplied(), APPLIED_EVERY_MS);
    replica.heartbeat.unref();
    replica.sayApplied();
    return replica;
  }

  /** Resolves once every entry the bucket held when called is readable here (a read barrier). */
  async sync(): Promise<void> {
    const status = await this.kv.status();
    const last = status.streamInfo.state.last_seq;
    if (this.committed >= last || this.stopped) return;
    await new Promise<void>((resolve) => this.syncWaiters.push({ revision: last, resolve }));
  }

  /** Publishes the row, and resolves once this and every live replica has committed it. */
  override async put(table: DirectoryTable, key: unknown, value: unknown): Promise<number> {
    const revision = await super.put(table, key, value);
    await this.replicated(revision);
    return revision;
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.subscription?.unsubscribe();
    this.watch?.stop();
    for (const w of this.syncWaiters.splice(0)) w.resolve();
    for (const check of [...this.replicationWaiters]) check();
  }

  private async run(): Promise<void> {
    for await (const entry of this.watch!) {
      if (this.stopped) break;
      this.apply(entry);
      this.received = Math.max(this.received, entry.revision);
      this.commitSoon();
    }
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.key.startsWith('_')) return;
    const dot = entry.key.indexOf('.');
    const table = entry.key.slice(0, dot) as DirectoryTable;
    const db = this.databases.get(table);
    try {
      if (!db) throw new Error(`no directory table ${table}`);
      const key = unpack(Buffer.from(entry.key.slice(dot + 1), 'base64url')) as Key;
      // Writes join lmdb-js's next async batch: many entries, one commit.
      if (entry.operation === 'PUT') void db.put(key, unpack(entry.value));
      else void db.remove(key);
    } catch (err) {
      if (this.rejected++ === 0) this.log.error({ err, key: entry.key }, 'directory: an entry could not be applied; skipped (logged once)');
    }
  }

  /** Once what was handed to LMDB is committed: readable here, and said to the writers. */
  private commitSoon(): void {
    if (this.committing) return;
    this.committing = true;
    const upTo = this.received;
    void this.storage.barrier().then(() => {
      this.committing = false;
      this.storage.refresh();
      this.committed = Math.max(this.committed, upTo);
      const ready = this.syncWaiters.filter((w) => w.revision <= this.committed);
      for (const w of ready) this.syncWaiters.splice(this.syncWaiters.indexOf(w), 1);
      for (const w of ready) w.resolve();
      this.sayApplied();
      for (const check of [...this.replicationWaiters]) check();
      if (this.received > this.committed) this.commitSoon();
    }, (err: unknown) => this.log.error({ err }, 'directory: a commit failed'));
  }

  /** Resolves once every replica heard from lately has committed `revision`, this one included. */
  private replicated(revision: number): Promise<void> {
    const done = () => {
      if (this.stopped) return true;
      if (this.committed < revision) return false;
      const now = Date.now();
      for (const r of this.replicas.values()) if (now - r.at < REPLICA_SILENT_MS && r.revision < revision) return false;
      return true;
    };
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.replicationWaiters.delete(check);
        const behind = [...this.replicas].filter(([, r]) => r.revision < revision).map(([node]) => node);
        this.log.warn({ revision, behind }, 'directory: replicas did not confirm a write in time; going on');
        resolve();
      }, REPLICATION_WAIT_MS);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.replicationWaiters.delete(check);
        resolve();
      };
      this.replicationWaiters.add(check);
    });
  }

  private onApplied(data: Uint8Array): void {
    let node: unknown, revision: unknown;
    try {
      [node, revision] = unpack(data) as [unknown, unknown];
    } catch {
      return;
    }
    if (typeof node !== 'string' || typeof revision !== 'number' || node === this.node) return;
    this.replicas.set(node, { revision, at: Date.now() });
    for (const check of [...this.replicationWaiters]) check();
  }

  private sayApplied(): void {
    if (this.stopped) return;
    try {
      this.nc.publish(this.appliedSubject, pack([this.node, this.committed]));
    } catch {
      // closed or reconnecting: the next heartbeat says it
    }
  }
}

async function openBucket(nc: NatsConnection, cluster: string): Promise<KV> {
  return new Kvm(nc).create(bucketName(cluster), { history: 1 });
}
