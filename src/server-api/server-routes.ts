// The server API (docs/protocol.md "Server API"): the operator's backend manages users, sends
// messages, runs groups and channels, reads history and moderates, under /v1/server/…, with an API
// key (never a user's session token). Every call goes through the actors' own ops and commands,
// as a WebSocket client's would; nothing here writes an actor's tables.
import type { ShardCluster } from '../../actors/cluster.js';
import type { StorageEnv } from '../../storage/env.js';
import type { AppUsers } from '../auth/app-users.js';
import type { Accounts } from '../auth/accounts.js';
import type { Config } from '../config.js';
import type { EdgeLimits } from '../limits/edge-limits.js';
import type { MediaLibrary } from '../media/media-library.js';
import type { ApiKeys } from './api-keys.js';
import type { IdempotencyStore } from './idempotency.js';
import { ServerApiKit, type ServerApiRequest, type ServerOn } from './server-api-kit.js';
import { mountServerMessageRoutes } from './server-message-routes.js';
import { mountServerUserRoutes } from './server-user-routes.js';

export interface ServerApiDeps {
  config: Config;
  accounts: Accounts;
  cluster: ShardCluster;
  storage: StorageEnv;
  appUsers: AppUsers;
  apiKeys: ApiKeys;
  idempotency: IdempotencyStore;
  limits: EdgeLimits;
  media: MediaLibrary;
}

export function mountServerApi<R extends ServerApiRequest>(on: ServerOn<R>, deps: ServerApiDeps): void {
  const kit = new ServerApiKit(deps.config, deps.apiKeys, deps.idempotency, deps.limits, deps.appUsers, deps.storage);
  const { apiKeys } = deps;

  // ---- API keys (admin scope or ADMIN_TOKEN) ----

  // Not idempotent on purpose: a stored answer would keep the key's secret; the key is shown once.
  on('POST', '/v1/server/keys', async (reply, req) => {
    kit.principal(req, 'admin');
    const { value: b } = await kit.body(reply, req, 'serverKey');
    const made = await apiKeys.create(b.name, b.scopes);
    reply.json(201, { id: made.id, key: made.key, name: made.name, scopes: made.scopes, created: made.created });
  });

  on('GET', '/v1/server/keys', (reply, req) => {
    kit.principal(req, 'admin');
    reply.json(200, { keys: apiKeys.list() });
  });

  on('DELETE', '/v1/server/keys/:id', async (reply, req) => {
    const p = kit.principal(req, 'admin');
    await kit.mutate(reply, req, p, 'DELETE', `/v1/server/keys/${req.param}`, Buffer.alloc(0), async () => {
      await apiKeys.revoke(req.param);
      return { status: 204 };
    });
  });

  mountServerUserRoutes(on, kit, deps);
  mountServerMessageRoutes(on, kit, deps);
}
