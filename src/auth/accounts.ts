// Accounts at the edge: users, usernames and credentials (written here), password checks, and
// lookups of sessions and devices — those two are written by each user's actor (login, logout).
// Tokens are stored as their sha256 only.
import { createHash } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors.js';
import type { Credential, SessionRecord, StorageEnv, UserRecord } from '../../storage/env.js';
import { ErrorCode } from '../../protocol/codes.js';
import { newUserId } from '../../protocol/ids.js';
import type { BodyOf } from '../../protocol/validate.js';
import type { PasswordHasher } from './passwords.js';
import { liveSession, type SessionClock } from './session-clock.js';
import type { DirectoryReplica } from '../cluster/directory.js';

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export interface DeviceInfo { device: string; name: string; created: number; lastSeen: number }
/** What anyone may know of an account (docs/protocol.md §4). */
export interface PublicUser { user: string; username: string; name: string }

/** Fresh ids drawn for one registration before giving up: a collision is already rare (ids.ts). */
const MAX_ID_DRAWS = 8;

const publicUser = (r: UserRecord): PublicUser => ({ user: r.user, username: r.username, name: r.name });

export class Accounts {
  /** SESSION_TTL idle expiry (set once the actors are up; none: sessions never expire) */
  clock: SessionClock | null = null;
  /** In a cluster: the replicated directory (src/cluster/directory.ts); null: this node alone. */
  directory: DirectoryReplica | null = null;

  constructor(
    private readonly storage: StorageEnv,
    private readonly passwords: PasswordHasher,
    /** where user ids come from; tests inject one that collides */
    private readonly newId: () => string = newUserId,
  ) {}

  /** For readers of the account's own data (src/auth/account-export.ts). */
  get storageEnv(): StorageEnv {
    return this.storage;
  }

  async register(body: BodyOf<'createUser'>): Promise<UserRecord> {
    const { db } = this.storage;
    // Checked again at commit; this early look only spares a hash for a name already taken.
    if (db.usernames.get(body.username) !== undefined) throw new ProtocolError(ErrorCode.conflict, 'username taken');
    const cred = await this.passwords.hash(body.password);
    const { directory } = this;
    let claimed: string | undefined;
    for (let draw = 0; draw < MAX_ID_DRAWS; draw++) {
      const record: UserRecord = { user: claimed ?? this.newId(), username: body.username, name: body.name ?? body.username, created: Date.now() };
      // In a cluster the name is claimed in the directory first: one winner across the nodes.
      if (directory && claimed === undefined) {
        if (!(await directory.claim('usernames', body.username, record.user))) throw new ProtocolError(ErrorCode.conflict, 'username taken');
        claimed = record.user;
      }
      // Check-and-set in the write transaction, where reads see every commit before ours: two
      // racing sign-ups for one name have one winner, and an id drawn twice never overwrites.
      const outcome = await db.users.transaction(() => {
        const owner = db.usernames.get(body.username);
        // (Our own claim may have come back through the replica already.)
        if (owner !== undefined && owner !== claimed) return 'taken';
        if (db.users.get(record.user) !== undefined || db.credentials.get(record.user) !== undefined) return 'id in use';
        void db.usernames.put(body.username, record.user);
        void db.users.put(record.user, record);
        void db.credentials.put(record.user, cred);
        return 'created';
      });
      if (outcome === 'taken') throw new ProtocolError(ErrorCode.conflict, 'username taken');
      if (outcome === 'created') {
        await this.storage.barrier();
        // Every node can sign this account in once the answer is sent.
        if (directory) await Promise.all([directory.put('users', record.user, record), directory.put('credentials', record.user, cred)]);
        return record;
      }
      // The claimed id is taken here (an id drawn twice): the claim is given back below.
      if (claimed !== undefined) break;
    }
    if (directory && claimed !== undefined) await directory.unclaim('usernames', body.username);
    throw new ProtocolError(ErrorCode.internal, `no free user id in ${MAX_ID_DRAWS} draws`);
  }

  /** The account behind a username (user.find, GET /v1/users/:username), or undefined. */
  find(username: string): PublicUser | undefined {
    const { db } = this.storage;
    const user = db.usernames.get(username);
    const record = user === undefined ? undefined : db.users.get(user);
    return record ? publicUser(record) : undefined;
  }

  /**
   * users.get: the accounts of these ids, in the order asked, each once; a deleted account as
   * `{user, deleted: true}` (its name is gone with it), an id no account ever had left out.
   */
  lookup(users: readonly string[]): (PublicUser | { user: string; deleted: true })[] {
    const out: (PublicUser | { user: string; deleted: true })[] = [];
    for (const user of new Set(users)) {
      const record = this.storage.db.users.get(user);
      if (record) out.push(record.deleted === undefined ? publicUser(record) : { user, deleted: true });
    }
    return out;
  }

  /** The caller's own account (GET /v1/users/me). */
  me(user: string): PublicUser {
    const record = this.storage.db.users.get(user);
    if (!record) throw new ProtocolError(ErrorCode.not_found, 'no such user');
    return publicUser(record);
  }

  /** Changes the display name (PATCH /v1/users/me); read-modify-write in one transaction. */
  async rename(user: string, name: string): Promise<PublicUser> {
    const { db } = this.storage;
    const updated = await db.users.transaction(() => {
      const record = db.users.get(user);
      if (!record) return undefined;
      const next: UserRecord = { ...record, name };
      void db.users.put(user, next);
      return next;
    });
    if (!updated) throw new ProtocolError(ErrorCode.not_found, 'no such user');
    await this.storage.barrier();
    await this.directory?.put('users', user, updated);
    return publicUser(updated);
  }

  /** The user whose password this is; unauthorized otherwise (the same answer and work either way). */
  async verify(body: BodyOf<'createSession'>): Promise<string> {
    const { db } = this.storage;
    const user = db.usernames.get(body.username);
    const cred = user === undefined ? undefined : db.credentials.get(user);
    if (!(await this.passwords.verify(body.password, cred)) || user === undefined) {
      throw new ProtocolError(ErrorCode.unauthorized, 'wrong username or password');
    }
    return user;
  }

  /** The session a bearer token stands for, or undefined (unknown, revoked or idle past SESSION_TTL). */
  /**
   * As authenticate; in a cluster a miss waits for this node's directory to catch up once (the
   * session may have been created on another node a moment ago).
   */
  async authenticateFresh(token: string): Promise<SessionRecord | undefined> {
    const found = this.authenticate(token);
    if (found || !this.directory) return found;
    await this.directory.sync();
    return this.authenticate(token);
  }

  authenticate(token: string): SessionRecord | undefined {
    const hash = hashToken(token);
    const { sessions } = this.storage.db;
    // Sessions are committed by the shards: a miss may be this thread's older read snapshot.
    let found = sessions.get(hash);
    if (!found) {
      this.storage.refresh();
      found = sessions.get(hash);
    }
    if (!found || !this.clock) return found;
    return liveSession(this.storage, this.clock, found) ? found : undefined;
  }

  /**
   * POST /v1/users/me/password: checks the old password (forbidden if wrong: the caller is
   * authenticated, so 401 would read as "your token is bad") and hashes the new one, off the
   * main thread. The user actor stores it (see ChangePassword).
   */
  async newCredential(user: string, old: string, next: string): Promise<Credential> {
    const cred = this.storage.db.credentials.get(user);
    if (!(await this.passwords.verify(old, cred))) throw new ProtocolError(ErrorCode.forbidden, 'wrong password');
    return this.passwords.hash(next);
  }

  devices(user: string): DeviceInfo[] {
    const { db } = this.storage;
    this.storage.refresh(); // written by the user actor in a shard
    const out: DeviceInfo[] = [];
    for (const { key, value } of db.devices.getRange({ start: [user, ''], end: [user, '\uffff'] })) {
      const device = (key as [string, string])[1];
      const lastSeen = db.cursors.get([user, device])?.lastSeen ?? value.created;
      out.push({ device, name: value.name, created: value.created, lastSeen });
    }
    return out;
  }
}
