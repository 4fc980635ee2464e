// Password hashing and checking on a piscina pool (scrypt, salted, memory-hard), with a bounded
// queue: past it a login or registration is refused at once (unavailable, retry) instead of
// waiting behind work the pool cannot finish soon.
import { Piscina } from 'piscina';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { Credential } from '../../storage/env.js';
import type { HashTask, VerifyTask } from './password-worker.js';

/** Hashes waiting for a thread before new ones are refused: far above what honest clients queue. */
export const DEFAULT_PASSWORD_QUEUE = 256;
/** What a refused client is told to wait (HTTP Retry-After rounds it up to seconds). */
export const PASSWORD_RETRY_MS = 1000;

export class PasswordHasher {
  private readonly pool: Piscina;
  /** Checked when the username is unknown, so a miss costs as much time as a wrong password. */
  private decoy: Promise<Credential> | null = null;

  constructor(
    private readonly cost: number,
    maxThreads = 2,
    private readonly maxQueue = DEFAULT_PASSWORD_QUEUE,
  ) {
    // piscina's own bound is the same: ours refuses first, with a protocol code.
    this.pool = new Piscina({ filename: new URL('./password-worker.js', import.meta.url).href, maxThreads, minThreads: 1, idleTimeout: 30_000, maxQueue });
  }

  async hash(password: string): Promise<Credential> {
    const task: HashTask = { op: 'hash', password, cost: this.cost };
    const { salt, hash } = (await this.run(task)) as { salt: Uint8Array; hash: Uint8Array };
    return { salt: Buffer.from(salt), hash: Buffer.from(hash), cost: this.cost };
  }

  async verify(password: string, cred: Credential | undefined): Promise<boolean> {
    const target = cred ?? (await this.decoyCredential());
    const task: VerifyTask = { op: 'verify', password, cost: target.cost, salt: target.salt, hash: target.hash };
    const ok = (await this.run(task)) as boolean;
    return ok && cred !== undefined;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }

  /** Tasks waiting for a thread now. */
  get queued(): number {
    return this.pool.queueSize;
  }

  private run(task: HashTask | VerifyTask): Promise<unknown> {
    // Checked in the caller's turn, so a burst is refused deterministically once the queue is full.
    if (this.pool.queueSize >= this.maxQueue) {
      return Promise.reject(new ProtocolError(ErrorCode.unavailable, 'too many logins and registrations at once; retry later', { retry: PASSWORD_RETRY_MS }));
    }
    return this.pool.run(task);
  }

  private decoyCredential(): Promise<Credential> {
    // A decoy refused by a full queue is not kept: the next miss tries again.
    return (this.decoy ??= this.hash('decoy password').catch((err: unknown) => {
      this.decoy = null;
      throw err;
    }));
  }
}
