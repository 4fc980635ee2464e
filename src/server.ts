// The Parley server: one port for HTTP and WebSocket (the gateway, this thread), actor shards
// in worker threads, one LMDB data directory. Lifecycle: starting → ready → draining → stopped.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ShardCluster } from '../actors/cluster.js';
import { openStorage } from '../storage/env.js';
import { upgradeSearchIndex } from '../storage/search-reindex.js';
import { ensureEpoch } from '../storage/epoch.js';
import { Accounts } from './auth/accounts.js';
import { AppUsers } from './auth/app-users.js';
import { JwtSignIn } from './auth/jwt-sign-in.js';
import { JwtVerifier, jwtKeyOptions } from './auth/jwt-verifier.js';
import { SessionClock } from './auth/session-clock.js';
import { userAddress } from '../actors/router.js';
import { PasswordHasher } from './auth/passwords.js';
import { ConfigError, type Config } from './config.js';
import { joinCluster, type ClusterMembership } from './cluster/join.js';
import { LeaseError } from './cluster/node-lease.js';
import { adminApp } from './gateway/admin-app.js';
import { mountRoutes } from './gateway/routes.js';
import { SocketGateway } from './gateway/sockets.js';
import { uws } from './gateway/uws.js';
import { TlsApps } from './gateway/tls-apps.js';
import { EdgeLimits } from './limits/edge-limits.js';
import { natsRateLimits } from './limits/nats-rate-limiter.js';
import { Metrics } from './metrics.js';
import { gatewaySource, MetricsHistory } from './metrics-history.js';
import type { ShardStats } from '../actors/shard.js';
import { openBlobStore } from './media/open-blob-store.js';
import { MediaLibrary } from './media/media-library.js';
import { MediaSweeper } from './media/media-sweeper.js';
import { PushDispatcher } from './push/push-dispatcher.js';
import { MessageScheduler } from './scheduler/message-scheduler.js';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { SendHook } from './webhooks/send-hook.js';
import { openPushProviders, vapidPublicKey } from './push/open-push-providers.js';
import { loadSigningKey, UrlSigner } from './media/signed-urls.js';
import { UploadStaging } from './media/upload-staging.js';
import { join } from 'node:path';
import { ApiKeys } from './server-api/api-keys.js';
import { IdempotencyStore } from './server-api/idempotency.js';

export type ServerState = 'starting' | 'ready' | 'draining' | 'stopped';

export interface Server {
  readonly port: number;
  readonly state: ServerState;
  /** The actor runtime (tests and operations: shard figures, restarts). */
  readonly cluster: ShardCluster;
  /** Stops accepting, closes sockets with 1001, lets shards finish, flushes and closes storage. */
  stop(): Promise<void>;
}

export interface ServerHooks {
  /**
   * The runtime cannot go on (a storage failure, shards dying too often). Default: stop, then
   * exit the process with 1 so the process supervisor starts it afresh. Tests observe it instead.
   */
  onFatal?(err: unknown, stop: () => Promise<void>): void;
}

/** Exits non-zero even if the stop itself fails or hangs on a broken runtime. */
function exitAfterStop(_err: unknown, stop: () => Promise<void>): void {
  process.exitCode = 1;
  setTimeout(() => process.exit(1), FATAL_STOP_LIMIT_MS).unref();
  stop().finally(() => process.exit(1));
}
const FATAL_STOP_LIMIT_MS = 10_000;

export async function startServer(config: Config, log: Logger, hooks: ServerHooks = {}): Promise<Server> {
  let state: ServerState = 'starting';
  let stopping: Promise<void> | null = null;
  let listenSocket: unknown = null;
  let adminListenSocket: unknown = null;
  const boot = randomUUID();
  // First: a half-configured provider or an unreadable key file stops start-up with its reason.
  const pushProviders = openPushProviders(config);
  // Likewise an unreadable AUTH_JWT_PUBLIC_KEY.
  const jwtVerifier = new JwtVerifier(jwtKeyOptions(config));
  // TLS_CERT/TLS_KEY: a missing file or a key of another certificate stops start-up here.
  const tls = config.tlsCert !== '' ? new TlsApps({ certFile: config.tlsCert, keyFile: config.tlsKey }, log) : null;
  const storage = openStorage(config.dataDir, config.durability);
  // Before any shard writes: a data directory of an earlier version gets its search blocks.
  const upgraded = upgradeSearchIndex(storage);
  if (upgraded > 0) log.info({ threads: upgraded }, 'search index upgraded to blocks');
  // CLUSTER_NATS_URL: this node's lease and the directory first, so no shard runs without
  // owning its partition or reads accounts the others wrote before it caught up.
  let membership: ClusterMembership | null = null;
  if (config.clusterNatsUrl !== '') {
    try {
      membership = await joinCluster(config, storage, log, (err) => {
        log.fatal({ err: err.message }, 'this node lost its lease; stopping');
        (hooks.onFatal ?? exitAfterStop)(err, stop);
      });
    } catch (err) {
      await storage.close();
      // A layout the other nodes disagree with, a node id held by a live process: the operator's to fix.
      throw err instanceof LeaseError ? new ConfigError(err.message) : err;
    }
  }
  const passwords = new PasswordHasher(config.passwordCost);
  const accounts = new Accounts(storage, passwords);
  // The application's users (JWT sub, server API ids) bound to Parley users: one instance for all.
  const appUsers = new AppUsers(storage);
  accounts.directory = appUsers.directory = membership?.directory ?? null;
  const jwt = new JwtSignIn(jwtVerifier, appUsers, storage);
  const cluster = new ShardCluster({
    shards: config.shards, dataDir: config.dataDir, durability: config.durability,
    logLevel: config.logLevel, askTimeoutMs: config.askTimeoutMs, boot, log,
    passivateAfterMs: config.passivateAfterMs, maxActivations: config.maxActivations,
    maxCommitBacklog: config.maxCommitBacklog, maxShardRestartsPerMinute: config.maxShardRestarts,
    retentionMs: config.retentionMs, retentionSweepMs: config.retentionSweepMs, pushCoalesceMs: config.pushCoalesceMs, defaultLastSeen: config.defaultLastSeen,
    // WEBHOOK_URL unset: no outbox, not a single event written.
    webhookEvents: config.webhookUrl !== '' ? config.webhookEvents : [],
    searchIndex: config.search === 'on',
    link: membership?.link,
    onFatal: (err) => {
      log.fatal({ err }, 'the actor runtime cannot go on; stopping the server');
      (hooks.onFatal ?? exitAfterStop)(err, stop);
    },
  });
  const metrics = new Metrics(() => cluster.stats(), () => ({ restarts: cluster.restarts, lastRestartMs: cluster.lastRestartMs }), () => cluster.askLatency(), {
    gatewayTransport: () => cluster.transportStats,
    storageTransactions: () => storage.transactions(),
  });
  const blobs = openBlobStore(config);
  const media = new MediaLibrary(storage, blobs, new UrlSigner(loadSigningKey(config.signingSecret, config.dataDir)), config.mediaMaxBytes);
  const staging = new UploadStaging(join(config.dataDir, 'media-uploads'));
  const pushDispatcher = new PushDispatcher(storage, pushProviders, cluster, (user, device) => sockets.isOnline(user, device), metrics, log, {
    coalesceMs: config.pushCoalesceMs, timeoutMs: config.pushTimeoutMs, concurrency: config.pushConcurrency,
    maxPerHour: config.pushMaxPerHour, maxPerDay: config.pushMaxPerDay, preview: config.pushPreview === 'on',
  });
  const scheduler = new MessageScheduler(storage, cluster, metrics.registry, log);
  const webhooks = config.webhookUrl === '' ? null : new WebhookDispatcher(storage, metrics, log, {
    url: config.webhookUrl, secret: config.webhookSecret, batch: config.webhookBatch, timeoutMs: config.webhookTimeoutMs,
    backoffMs: config.webhookBackoffMs, backoffMaxMs: config.webhookBackoffMaxMs, retentionMs: config.webhookRetentionMs,
  });
  const sendHook = config.sendHookUrl === '' ? null : new SendHook({
    url: config.sendHookUrl, secret: config.sendHookSecret || config.webhookSecret, timeoutMs: config.sendHookTimeoutMs,
    fail: config.sendHookFail, concurrency: config.sendHookConcurrency,
  }, metrics, log);
  const mediaSweeper = new MediaSweeper(storage, blobs, staging, metrics, log, { graceMs: config.mediaGraceMs, everyMs: config.retentionSweepMs });
  // SESSION_TTL: uses and expired sessions go to the device's user actor (src/auth/session-clock.ts).
  accounts.clock = new SessionClock(config.sessionTtlMs, {
    touch: (user, device, at) => cluster.tell(userAddress(user), { op: 'touch', device, at }),
    expire: (user, device) => cluster.tell(userAddress(user), { op: 'session-expired', device, ttl: config.sessionTtlMs }),
  });
  // In a cluster the per-user limits hold across the nodes (src/limits/nats-rate-limiter.ts).
  const sharedLimits = membership ? natsRateLimits(membership.nc, { prefix: `parley.${config.clusterName}`, nodeId: config.nodeId, log }) : undefined;
  const limits = new EdgeLimits(config, metrics.registry, undefined, sharedLimits);
  // The history's sampler is synchronous: the shards' figures are fetched each second beside it.
  let shardFigures: ShardStats[] = [];
  const shardPoll = setInterval(() => void cluster.stats().then((s) => (shardFigures = s), () => undefined), 1000);
  shardPoll.unref();
  const history = new MetricsHistory(storage, gatewaySource(metrics, () => limits.totalRefusals(), () => shardFigures));
  const apiKeys = new ApiKeys(storage, config.apiKeys, config.adminToken);
  const idempotency = new IdempotencyStore(storage, config.idempotencyTtlMs, log);
  // In a cluster the epoch is the cluster's: users' logs live on every node, cursors go anywhere.
  const epoch = membership ? await membership.directory.clusterEpoch(ensureEpoch(storage)) : ensureEpoch(storage);
  const sockets = new SocketGateway(config, cluster, storage, accounts, metrics, log, epoch, media, limits, jwt, sendHook);

  const app = tls ? tls.app : uws.App();
  app.ws('/v1/ws', sockets.behavior());
  sockets.attachApp(app);
  mountRoutes(app, { config, accounts, cluster, metrics, log, isReady: () => state === 'ready', channels: sockets.channels, limits, history, jwt,
    media: { media, staging, publicUrl: config.publicUrl, metrics, log },
    push: { providers: pushProviders, vapidPublicKey: vapidPublicKey(config), cluster },
    serverApi: { config, accounts, cluster, storage, appUsers, apiKeys, idempotency, limits, media },
    events: { storage, apiKeys },
  });

  // SIGHUP: read TLS_CERT/TLS_KEY again; new connections get the new certificate, open ones stay.
  function reloadCertificate(): void {
    if (!tls) {
      log.info('SIGHUP: nothing to reload (no TLS_CERT/TLS_KEY)');
      return;
    }
    try {
      log.info({ certificate: tls!.reload() }, 'tls certificate reloaded');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'tls certificate not reloaded; the previous one stays in use');
    }
  }

  const stop = () =>
    (stopping ??= (async () => {
      state = 'draining';
      log.info('draining');
      sockets.closeAll();
      limits.stop();
      idempotency.stop();
      if (listenSocket) uws.us_listen_socket_close(listenSocket as never);
      process.off('SIGHUP', reloadCertificate);
      tls?.close();
      if (adminListenSocket) uws.us_listen_socket_close(adminListenSocket as never);
      clearInterval(shardPoll);
      await history.stop();
      await mediaSweeper.stop();
      await pushDispatcher.stop();
      await scheduler.stop();
      await webhooks?.stop();
      sendHook?.close();
      await Promise.all([...pushProviders.values()].map((p) => p.close()));
      await cluster.stop();
      await membership?.leave();
      await storage.barrier();
      await storage.close();
      await passwords.close();
      await blobs.close();
      state = 'stopped';
      log.info('stopped');
    })());

  // Listen first: /healthz answers and /readyz says 503 while the shards start and recover.
  let port: number;
  if (tls) {
    port = tls.listen(config.host, config.port);
    log.info({ certificate: tls.info }, 'https and wss on this port');
  } else {
    listenSocket = await new Promise<unknown>((resolve, reject) => {
      app.listen(config.host, config.port, (ls) => (ls ? resolve(ls) : reject(new Error(`cannot listen on ${config.host}:${config.port}`))));
    });
    port = uws.us_socket_local_port(listenSocket as never);
  }
  // Handled with or without TLS: a `systemctl reload` must never end the process.
  process.on('SIGHUP', reloadCertificate);
  if (config.adminPort !== 0) {
    adminListenSocket = await new Promise<unknown>((resolve, reject) => {
      adminApp(metrics, history).listen(config.adminHost, config.adminPort, (ls) => (ls ? resolve(ls) : reject(new Error(`cannot listen on the admin port ${config.adminHost}:${config.adminPort}`))));
    });
    log.info({ host: config.adminHost, port: config.adminPort }, 'admin port listening');
  } else if (config.adminToken === '') {
    log.info('/metrics is open to anyone who reaches this port: set ADMIN_TOKEN or ADMIN_PORT to close it');
  }
  log.info({ port }, 'listening');
  try {
    await cluster.start(sockets);
  } catch (err) {
    await stop();
    throw err;
  }
  sockets.open();
  mediaSweeper.start();
  pushDispatcher.start();
  scheduler.start();
  webhooks?.start();
  history.start();
  idempotency.start();
  state = 'ready';
  log.info({ port }, 'ready');

  return {
    port,
    get state() {
      return state;
    },
    cluster,
    stop,
  };
}
