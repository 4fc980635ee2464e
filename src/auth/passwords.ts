// Password hashing and checking on a piscina pool (scrypt, salted, memory-hard).
import { Piscina } from 'piscina';
import type { Credential } from '../../storage/env.js';
import type { HashTask, VerifyTask } from './password-worker.js';

export class PasswordHasher {
  private readonly pool: Piscina;
  /** Checked when the username is unknown, so a miss costs as much time as a wrong password. */
  private decoy: Promise<Credential> | null = null;

  constructor(private readonly cost: number, maxThreads = 2) {
    this.pool = new Piscina({ filename: new URL('./password-worker.js', import.meta.url).href, maxThreads, minThreads: 1, idleTimeout: 30_000 });
  }

  async hash(password: string): Promise<Credential> {
    const task: HashTask = { op: 'hash', password, cost: this.cost };
    const { salt, hash } = (await this.pool.run(task)) as { salt: Uint8Array; hash: Uint8Array };
    return { salt: Buffer.from(salt), hash: Buffer.from(hash), cost: this.cost };
  }

  async verify(password: string, cred: Credential | undefined): Promise<boolean> {
    const target = cred ?? (await (this.decoy ??= this.hash('decoy password')));
    const task: VerifyTask = { op: 'verify', password, cost: target.cost, salt: target.salt, hash: target.hash };
    const ok = (await this.pool.run(task)) as boolean;
    return ok && cred !== undefined;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
