// Accounts and sessions at the edge: users, usernames, credentials, sessions and device records.
// Only the gateway writes these tables; tokens are stored as their sha256 only.
import { createHash } from 'node:crypto';
import { ProtocolError } from '../../protocol/errors.js';
import type { SessionRecord, StorageEnv, UserRecord } from '../../storage/env.js';
import { ErrorCode } from '../../protocol/codes.js';
import { newDeviceId, newToken, newUserId } from '../../protocol/ids.js';
import type { BodyOf } from '../../protocol/validate.js';
import type { PasswordHasher } from './passwords.js';

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export interface DeviceInfo { device: string; name: string; created: number; lastSeen: number }

export class Accounts {
  constructor(private readonly storage: StorageEnv, private readonly passwords: PasswordHasher) {}

  async register(body: BodyOf<'createUser'>): Promise<UserRecord> {
    const { db } = this.storage;
    if (db.usernames.get(body.username) !== undefined) throw new ProtocolError(ErrorCode.conflict, 'username taken');
    const cred = await this.passwords.hash(body.password);
    const record: UserRecord = { user: newUserId(), username: body.username, name: body.name ?? body.username, created: Date.now() };
    // Conditional on the username still being free at commit: two racing sign-ups, one winner.
    const won = await db.usernames.ifNoExists(body.username, () => {
      void db.usernames.put(body.username, record.user);
      void db.users.put(record.user, record);
      void db.credentials.put(record.user, cred);
    });
    if (!won) throw new ProtocolError(ErrorCode.conflict, 'username taken');
    await this.storage.barrier();
    return record;
  }

  async login(body: BodyOf<'createSession'>): Promise<{ token: string; user: string; device: string }> {
    const { db } = this.storage;
    const user = db.usernames.get(body.username);
    const cred = user === undefined ? undefined : db.credentials.get(user);
    if (!(await this.passwords.verify(body.password, cred)) || user === undefined) {
      throw new ProtocolError(ErrorCode.unauthorized, 'wrong username or password');
    }
    const token = newToken();
    const tokenHash = hashToken(token);
    const device = newDeviceId();
    const created = Date.now();
    void db.devices.put([user, device], { name: body.device, created, tokenHash });
    void db.sessions.put(tokenHash, { user, device, created });
    await this.storage.barrier();
    return { token, user, device };
  }

  /** The session a bearer token stands for, or undefined (unknown or revoked). */
  authenticate(token: string): SessionRecord | undefined {
    return this.storage.db.sessions.get(hashToken(token));
  }

  devices(user: string): DeviceInfo[] {
    const { db } = this.storage;
    const out: DeviceInfo[] = [];
    for (const { key, value } of db.devices.getRange({ start: [user, ''], end: [user, '\uffff'] })) {
      const device = (key as [string, string])[1];
      const lastSeen = db.cursors.get([user, device])?.lastSeen ?? value.created;
      out.push({ device, name: value.name, created: value.created, lastSeen });
    }
    return out;
  }

  /** Deletes the device's session; the caller then tells the user actor to close its sockets. */
  async revoke(user: string, device: string): Promise<void> {
    const { db } = this.storage;
    const record = db.devices.get([user, device]);
    if (!record) throw new ProtocolError(ErrorCode.not_found, 'no such device');
    void db.sessions.remove(record.tokenHash);
    void db.devices.remove([user, device]);
    await this.storage.barrier();
  }
}
