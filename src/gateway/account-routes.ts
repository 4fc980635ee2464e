// The account's own life over HTTP (docs/protocol.md "Sessions"): password change, deletion and
// export. Writes go to the user's actor, which owns sessions and devices.
import type { ShardCluster } from '../../actors/cluster.js';
import { userAddress } from '../../actors/router.js';
import { exportAccount } from '../auth/account-export.js';
import type { Accounts } from '../auth/accounts.js';
import type { Config } from '../config.js';
import type { Reply } from './http.js';

export interface AccountRouteDeps {
  accounts: Accounts;
  cluster: ShardCluster;
  config: Config;
}

export interface AccountRouteKit<R> {
  on(method: 'GET' | 'POST' | 'DELETE', pattern: string, handler: (reply: Reply, req: R) => Promise<void> | void): void;
  /** async: an application JWT is verified (start a body read before awaiting it) */
  session(req: R): Promise<{ user: string; device: string }>;
  body(reply: Reply, req: R): Promise<{ old: string; new: string }>;
}

export function mountAccountRoutes<R>(kit: AccountRouteKit<R>, deps: AccountRouteDeps): void {
  const { accounts, cluster } = deps;

  // Wrong old password: 403 (the token is fine; 401 would tell an SDK to drop it). The actor
  // stores the new credential and logs every other device out (4003) in one commit.
  kit.on('POST', '/v1/users/me/password', async (reply, req) => {
    const [s, b] = await Promise.all([kit.session(req), kit.body(reply, req)]);
    const cred = await accounts.newCredential(s.user, b.old, b.new);
    await cluster.ask(userAddress(s.user), { op: 'password', keep: s.device, cred });
    reply.empty(204);
  });

  // Answered once nobody can log in or authenticate as the account (that first commit); the
  // rest of its data goes in bounded turns right after (actors/account-deletion.ts).
  kit.on('DELETE', '/v1/users/me', async (reply, req) => {
    const s = await kit.session(req);
    await cluster.ask(userAddress(s.user), { op: 'delete-account' });
    reply.empty(204);
  });

  kit.on('GET', '/v1/users/me/export', async (reply, req) => {
    const s = await kit.session(req);
    reply.json(200, exportAccount(accounts.storageEnv, s.user, accounts.devices(s.user), deps.config.defaultLastSeen));
  });
}
