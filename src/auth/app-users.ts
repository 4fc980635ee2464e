// The operator's application's users (docs/operator-guide.md): each application user id (a JWT
// `sub`, or the id the server API names) is bound to one Parley user, created on first sight.
// The binding outlives a deletion as a tombstone, so a still-valid application token cannot bring
// a deleted account back; only the server API recreates it (as a new, empty account).
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { newUserId } from '../../protocol/ids.js';
import type { StorageEnv, UserRecord } from '../../storage/env.js';
import { liveUser } from '../../actors/account-deletion.js';
import type { DirectoryReplica } from '../cluster/directory.js';

/** Application user ids: printable, no spaces, at most this long (a UUID, an e-mail, a number). */
export const MAX_APP_ID_LENGTH = 128;
const APP_ID = /^[\x21-\x7e]+$/;
/** Fresh ids drawn before giving up (as at registration: a collision is already rare). */
const MAX_ID_DRAWS = 8;

export const validAppId = (id: unknown): id is string =>
  typeof id === 'string' && id.length > 0 && id.length <= MAX_APP_ID_LENGTH && APP_ID.test(id);

export interface AppUserFields { name?: string; bot?: boolean }

export class AppUsers {
  /** In a cluster: the replicated directory (src/cluster/directory.ts); null: this node alone. */
  directory: DirectoryReplica | null = null;

  constructor(
    private readonly storage: StorageEnv,
    /** where user ids come from; tests inject one that collides */
    private readonly newId: () => string = newUserId,
  ) {}

  /**
   * Sign-in with the application's token: the user bound to `appId`, created on first sight
   * (named `name`, else the app id). Unauthorized when the account bound to it was deleted.
   */
  async signIn(appId: string, name?: string): Promise<UserRecord> {
    const bound = this.lookUp(appId);
    if (bound?.state === 'live') return bound.record;
    if (bound?.state === 'deleted') throw new ProtocolError(ErrorCode.unauthorized, 'this account was deleted');
    return (await this.bind(appId, { name }, false)).record;
  }

  /**
   * The server API's create-or-update: a new account for an unknown or deleted app id (`created`),
   * else the live one with the given fields changed.
   */
  async upsert(appId: string, fields: AppUserFields): Promise<{ record: UserRecord; created: boolean }> {
    return this.bind(appId, fields, true);
  }

  /** The Parley user an app id or a Parley id names (a live account), or undefined. */
  resolve(idOrAppId: string): string | undefined {
    const bound = this.lookUp(idOrAppId);
    if (bound?.state === 'live') return bound.record.user;
    const { db } = this.storage;
    return liveUser(db.users.get(idOrAppId)) ? idOrAppId : undefined;
  }

  private lookUp(appId: string): { state: 'live'; record: UserRecord } | { state: 'deleted' } | undefined {
    const { db } = this.storage;
    let binding = db.appUsers.get(appId);
    if (binding === undefined) {
      // Bindings and tombstones are also written by other threads: a miss may be an old snapshot.
      this.storage.refresh();
      binding = db.appUsers.get(appId);
    }
    if (binding === undefined) return undefined;
    const record = db.users.get(binding.user);
    if (binding.deleted !== undefined || !liveUser(record)) return { state: 'deleted' };
    return { state: 'live', record: record! };
  }

  /** Creates (or, with `update`, changes) the account bound to appId, checked and set in one write transaction. */
  private async bind(appId: string, fields: AppUserFields, update: boolean): Promise<{ record: UserRecord; created: boolean }> {
    const { db } = this.storage;
    const { directory } = this;
    for (let draw = 0; draw < MAX_ID_DRAWS; draw++) {
      const fresh: UserRecord = { user: this.newId(), username: '', name: fields.name ?? appId, created: Date.now(), appId };
      if (fields.bot) fresh.bot = true;
      // In a cluster a new binding is claimed in the directory first: one account per app id
      // across the nodes. Lost: another node bound it a moment ago; take that one once it is here.
      if (directory && this.lookUp(appId) === undefined && !(await directory.claim('app-users', appId, { user: fresh.user }))) {
        await directory.sync();
        continue;
      }
      const outcome = await db.users.transaction(() => {
        const binding = db.appUsers.get(appId);
        const current = binding === undefined ? undefined : db.users.get(binding.user);
        if (binding !== undefined && binding.deleted === undefined && liveUser(current)) {
          if (!update) return { record: current!, created: false };
          const next: UserRecord = { ...current! };
          if (fields.name !== undefined) next.name = fields.name;
          if (fields.bot !== undefined) {
            if (fields.bot) next.bot = true;
            else delete next.bot;
          }
          void db.users.put(next.user, next);
          return { record: next, created: false };
        }
        if (binding?.deleted !== undefined && !update) return 'deleted';
        if (db.users.get(fresh.user) !== undefined || db.credentials.get(fresh.user) !== undefined) return 'id in use';
        void db.appUsers.put(appId, { user: fresh.user });
        void db.users.put(fresh.user, fresh);
        return { record: fresh, created: true };
      });
      if (outcome === 'deleted') throw new ProtocolError(ErrorCode.unauthorized, 'this account was deleted');
      if (outcome !== 'id in use') {
        await this.storage.barrier();
        if (directory && (outcome.created || update)) {
          await Promise.all([directory.put('users', outcome.record.user, outcome.record), ...(outcome.created ? [directory.put('app-users', appId, { user: outcome.record.user })] : [])]);
        }
        return outcome;
      }
    }
    throw new ProtocolError(ErrorCode.internal, `no free user id in ${MAX_ID_DRAWS} draws`);
  }
}
