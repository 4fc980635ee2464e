// Server API users (docs/protocol.md "Server API"): create or update by the application's id,
// read, delete with all their data, export it, disconnect, ban and unban, presence. Deletion,
// bans, disconnects and presence are the user actor's ops; creation goes through AppUsers.
import type { PresenceNow } from '../../actors/messages.js';
import { userAddress } from '../../actors/router.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { UserRecord } from '../../storage/env.js';
import { exportAccount } from '../auth/account-export.js';
import { decodedSegment } from '../gateway/http.js';
import type { ServerApiKit, ServerApiRequest, ServerOn } from './server-api-kit.js';
import type { ServerApiDeps } from './server-routes.js';

/** A user as the server API shows it: `id` is the application's id (null for a password account). */
export function serverUserView(r: UserRecord): object {
  const out: Record<string, unknown> = { user: r.user, id: r.appId ?? null, name: r.name, bot: r.bot === true, created: r.created };
  if (r.username !== '') out.username = r.username;
  return out;
}

export function mountServerUserRoutes<R extends ServerApiRequest>(on: ServerOn<R>, kit: ServerApiKit, deps: ServerApiDeps): void {
  const { accounts, appUsers, cluster, config, storage } = deps;
  const ref = (req: ServerApiRequest) => decodedSegment(req.param);
  const record = (user: string): UserRecord => {
    storage.refresh(); // renames by AppUsers are this thread's; a deletion's tombstone is a shard's
    return storage.db.users.get(user) ?? fail404();
  };

  // Create-or-update by the application's id: 201 when the account was made (a deleted one's id makes a new, empty account), else 200.
  on('POST', '/v1/server/users', async (reply, req) => {
    const p = kit.principal(req, 'users');
    const { value: b, raw } = await kit.body(reply, req, 'serverUser');
    await kit.mutate(reply, req, p, 'POST', '/v1/server/users', raw, async () => {
      const { record: r, created } = await appUsers.upsert(b.id, { name: b.name, bot: b.bot });
      return { status: created ? 201 : 200, body: { ...serverUserView(r), created } };
    });
  });

  on('GET', '/v1/server/users/:id', (reply, req) => {
    kit.principal(req, 'users');
    reply.json(200, serverUserView(record(kit.user(ref(req)))));
  });

  // An application's user is updated through its binding; a password account may only be renamed.
  on('PATCH', '/v1/server/users/:id', async (reply, req) => {
    const p = kit.principal(req, 'users');
    const { value: b, raw } = await kit.body(reply, req, 'serverUserPatch');
    await kit.mutate(reply, req, p, 'PATCH', `/v1/server/users/${req.param}`, raw, async () => {
      const current = record(kit.user(ref(req)));
      if (current.appId !== undefined) return { status: 200, body: serverUserView((await appUsers.upsert(current.appId, { name: b.name, bot: b.bot })).record) };
      if (b.bot !== undefined) throw new ProtocolError(ErrorCode.bad_frame, 'bot is set on application users (made by POST /v1/server/users), not on password accounts');
      if (b.name !== undefined) await accounts.rename(current.user, b.name);
      return { status: 200, body: serverUserView(record(current.user)) };
    });
  });

  // The same deletion as DELETE /v1/users/me: answered once nobody can sign in as the account;
  // the app id is refused at sign-in from then on, until POST /v1/server/users makes it again.
  on('DELETE', '/v1/server/users/:id', async (reply, req) => {
    const p = kit.principal(req, 'users');
    await kit.mutate(reply, req, p, 'DELETE', `/v1/server/users/${req.param}`, Buffer.alloc(0), async () => {
      await cluster.ask(userAddress(kit.user(ref(req))), { op: 'delete-account' });
      return { status: 204 };
    });
  });

  on('GET', '/v1/server/users/:id/export', (reply, req) => {
    kit.principal(req, 'users');
    const user = kit.user(ref(req));
    reply.json(200, exportAccount(storage, user, accounts.devices(user), config.defaultLastSeen));
  });

  on('POST', '/v1/server/users/:id/disconnect', async (reply, req) => {
    const p = kit.principal(req, 'users');
    await kit.mutate(reply, req, p, 'POST', `/v1/server/users/${req.param}/disconnect`, Buffer.alloc(0), async () => {
      const { sockets } = await cluster.ask<{ sockets: number }>(userAddress(kit.user(ref(req))), { op: 'disconnect' });
      return { status: 200, body: { sockets } };
    });
  });

  on('POST', '/v1/server/users/:id/ban', async (reply, req) => {
    const p = kit.principal(req, 'users');
    const { value: b, raw } = await kit.body(reply, req, 'serverBan', true);
    await kit.mutate(reply, req, p, 'POST', `/v1/server/users/${req.param}/ban`, raw, async () => {
      await cluster.ask(userAddress(kit.user(ref(req))), b.reason === undefined ? { op: 'ban' } : { op: 'ban', reason: b.reason });
      return { status: 204 };
    });
  });

  on('DELETE', '/v1/server/users/:id/ban', async (reply, req) => {
    const p = kit.principal(req, 'users');
    await kit.mutate(reply, req, p, 'DELETE', `/v1/server/users/${req.param}/ban`, Buffer.alloc(0), async () => {
      await cluster.ask(userAddress(kit.user(ref(req))), { op: 'unban' });
      return { status: 204 };
    });
  });

  on('GET', '/v1/server/users/:id/presence', async (reply, req) => {
    kit.principal(req, 'users');
    const now = await cluster.ask<PresenceNow | undefined>(userAddress(kit.user(ref(req))), { op: 'presence' });
    if (!now) throw new ProtocolError(ErrorCode.not_found, 'no such user'); // deleted meanwhile
    reply.json(200, { user: now.user, online: now.online, last: now.last, sockets: now.sockets });
  });
}

const fail404 = (): never => {
  throw new ProtocolError(ErrorCode.not_found, 'no such user');
};
