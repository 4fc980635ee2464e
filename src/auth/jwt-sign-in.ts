// A verified application JWT as a Parley user and device (docs/operator-guide.md "Sign-in with
// your application's tokens"): the user bound to `sub` (created on first sight by AppUsers), and
// the device the token names. Used by hello {jwt}, refresh {jwt} and Bearer JWTs on 🔒 routes.
import type { ShardCluster } from '../../actors/cluster.js';
import type { AppDevice } from '../../actors/messages.js';
import { userAddress } from '../../actors/router.js';
import type { StorageEnv } from '../../storage/env.js';
import type { AppUsers } from './app-users.js';
import type { AppClaims, JwtVerifier } from './jwt-verifier.js';

export interface AppSession {
  user: string;
  device: string;
  /** the token's expiry (ms) */
  exp: number;
  /** the name a new device of this token gets (its `device` claim, or "application token") */
  deviceName: string;
  claims: AppClaims;
}

export class JwtSignIn {
  constructor(
    readonly verifier: JwtVerifier,
    private readonly appUsers: AppUsers,
    private readonly storage: StorageEnv,
  ) {}

  get enabled(): boolean {
    return this.verifier.enabled;
  }

  /** The user and device of a valid token; unauthorized (ProtocolError) otherwise, or for a deleted account. */
  async signIn(token: string): Promise<AppSession> {
    const claims = await this.verifier.verify(token);
    const record = await this.appUsers.signIn(claims.sub, claims.name);
    return { user: record.user, device: claims.device, exp: claims.exp, deviceName: claims.namedDevice ? claims.device : 'application token', claims };
  }

  /** A token's claims if it may replace the one `user` signed in with on `device` (refresh), else null. */
  async sameSession(token: string, user: string, device: string): Promise<AppClaims | null> {
    const claims = await this.verifier.verify(token);
    if (this.appUsers.resolve(claims.sub) !== user) return null;
    // A token without a device claim keeps the socket's device: its derived id only names a device at hello.
    if (claims.namedDevice && claims.device !== device) return null;
    return claims;
  }

  /**
   * Over HTTP the device must exist too (push registration, logout of the current device): the
   * user actor creates it when no hello did yet. One read when it exists.
   */
  async ensureDevice(cluster: ShardCluster, s: AppSession): Promise<void> {
    if (this.storage.db.devices.get([s.user, s.device])) return;
    this.storage.refresh(); // written by the user actor in a shard
    if (this.storage.db.devices.get([s.user, s.device])) return;
    const msg: AppDevice = { op: 'app-device', device: s.device, name: s.deviceName };
    await cluster.ask(userAddress(s.user), msg);
  }
}
