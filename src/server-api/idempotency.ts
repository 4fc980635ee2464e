// Idempotency-Key for the server API's mutating calls (docs/protocol.md "Server API"): the first
// call's answer is stored under [API key id, Idempotency-Key] and a repeat of the same request
// gets it again without doing anything twice; the same key with another request is a conflict.
// Sends and channel posts are exactly-once even across a crash: their cid is derived from the
// key (idempotentCid), and the actors' cid dedupe answers the first result. Records older than
// IDEMPOTENCY_TTL are swept. Written by the gateway only.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { StorageEnv } from '../../storage/env.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';

/** An answer of the server API: status and JSON body (undefined: no body). */
export interface Answer { status: number; body?: unknown }

/** Idempotency-Key values: printable ASCII, 1 to 255 characters (a UUID, a job id). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** How often expired records are swept, and how many go per sweep turn. */
const SWEEP_EVERY_MS = 10 * 60_000;
const SWEEP_BATCH = 1000;

/** The cid a send or post made under this Idempotency-Key carries (≤ 64 chars, like a client's). */
export function idempotentCid(keyId: string, idempotencyKey: string): string {
  return `idem_${createHash('sha256').update(`${keyId}\u0000${idempotencyKey}`).digest('base64url')}`;
}

/** What identifies a request for the conflict check: method, path and body. */
export function requestDigest(method: string, path: string, body: Buffer | string): string {
  return createHash('sha256').update(`${method} ${path}\n`).update(body).digest('base64url');
}

export class IdempotencyStore {
  private readonly inflight = new Map<string, { request: string; done: Promise<Answer> }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly storage: StorageEnv, private readonly ttlMs: number, private readonly log: Logger) {}

  /** Refuses an Idempotency-Key header that is not 1–255 printable characters. */
  static check(key: string): void {
    if (!IDEMPOTENCY_KEY.test(key)) throw new ProtocolError(ErrorCode.bad_frame, 'Idempotency-Key must be 1 to 255 printable ASCII characters');
  }

  /**
   * Runs `fn` once per [keyId, key]: a repeat (also one arriving while the first runs) gets the
   * stored answer with `replayed`. Only successful answers are stored: after an error the client
   * may retry with the same key.
   */
  async run(keyId: string, key: string, request: string, fn: () => Promise<Answer>): Promise<Answer & { replayed?: boolean }> {
    const slot = `${keyId}\u0000${key}`;
    const running = this.inflight.get(slot);
    if (running) {
      if (running.request !== request) throw conflict();
      return { ...(await running.done), replayed: true };
    }
    const stored = this.storage.db.idempotency.get([keyId, key]);
    if (stored && Date.now() - stored.at < this.ttlMs) {
      if (stored.request !== request) throw conflict();
      return { status: stored.status, body: stored.body, replayed: true };
    }
    const done = (async () => {
      const answer = await fn();
      if (answer.status < 300) {
        await this.storage.db.idempotency.put([keyId, key], { request, status: answer.status, body: answer.body ?? null, at: Date.now() });
      }
      return answer;
    })();
    this.inflight.set(slot, { request, done });
    try {
      return await done;
    } finally {
      this.inflight.delete(slot);
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep().catch((err) => this.log.warn({ err }, 'idempotency sweep failed')), SWEEP_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Deletes records older than the TTL, in batches (a full scan: the table is bounded by RL_SERVER_API × TTL). */
  async sweep(now = Date.now()): Promise<number> {
    const { idempotency } = this.storage.db;
    let removed = 0;
    let batch: [string, string][] = [];
    const flush = async () => {
      const keys = batch;
      batch = [];
      await this.storage.writeBatch(() => {
        for (const k of keys) void idempotency.remove(k);
      });
    };
    for (const { key, value } of idempotency.getRange()) {
      if (now - value.at < this.ttlMs) continue;
      batch.push(key as [string, string]);
      removed++;
      if (batch.length === SWEEP_BATCH) await flush();
    }
    if (batch.length > 0) await flush();
    return removed;
  }
}

const conflict = () => new ProtocolError(ErrorCode.conflict, 'this Idempotency-Key was used for another request');
