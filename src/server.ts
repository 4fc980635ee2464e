// The Parley server: one port for HTTP and WebSocket (the gateway, this thread), actor shards
// in worker threads, one LMDB data directory. Lifecycle: starting → ready → draining → stopped.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ShardCluster } from '../actors/cluster.js';
import { openStorage } from '../storage/env.js';
import { Accounts } from './auth/accounts.js';
import { PasswordHasher } from './auth/passwords.js';
import type { Config } from './config.js';
import { mountRoutes } from './gateway/routes.js';
import { SocketGateway } from './gateway/sockets.js';
import { uws } from './gateway/uws.js';
import { Metrics } from './metrics.js';

export type ServerState = 'starting' | 'ready' | 'draining' | 'stopped';

export interface Server {
  readonly port: number;
  readonly state: ServerState;
  /** Stops accepting, closes sockets with 1001, lets shards finish, flushes and closes storage. */
  stop(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<Server> {
  let state: ServerState = 'starting';
  let stopping: Promise<void> | null = null;
  let listenSocket: unknown = null;
  const boot = randomUUID();
  const storage = openStorage(config.dataDir, config.durability);
  const passwords = new PasswordHasher(config.passwordCost);
  const accounts = new Accounts(storage, passwords);
  const cluster = new ShardCluster({
    shards: config.shards, dataDir: config.dataDir, durability: config.durability,
    logLevel: config.logLevel, askTimeoutMs: config.askTimeoutMs, boot, log,
    onFatal: () => {
      // Without the shard its actors cannot run: stop cleanly and let the process exit non-zero.
      process.exitCode = 1;
      void stop();
    },
  });
  const metrics = new Metrics(() => cluster.stats());
  const sockets = new SocketGateway(config, cluster, storage, accounts, metrics, log);

  const app = uws.App();
  app.ws('/v1/ws', sockets.behavior());
  mountRoutes(app, { config, accounts, cluster, metrics, log, isReady: () => state === 'ready' });

  const stop = () =>
    (stopping ??= (async () => {
      state = 'draining';
      log.info('draining');
      sockets.closeAll();
      if (listenSocket) uws.us_listen_socket_close(listenSocket as never);
      await cluster.stop();
      await storage.barrier();
      await storage.close();
      await passwords.close();
      state = 'stopped';
      log.info('stopped');
    })());

  // Listen first: /healthz answers and /readyz says 503 while the shards start and recover.
  listenSocket = await new Promise<unknown>((resolve, reject) => {
    app.listen(config.host, config.port, (ls) => (ls ? resolve(ls) : reject(new Error(`cannot listen on ${config.host}:${config.port}`))));
  });
  const port = uws.us_socket_local_port(listenSocket as never);
  log.info({ port }, 'listening');
  try {
    await cluster.start(sockets);
  } catch (err) {
    await stop();
    throw err;
  }
  sockets.open();
  state = 'ready';
  log.info({ port }, 'ready');

  return {
    port,
    get state() {
      return state;
    },
    stop,
  };
}
