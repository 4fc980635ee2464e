// What every server API route shares: the API key and its scope, the per-key rate limit, JSON
// bodies validated by the protocol's schemas (and the body size limit), Idempotency-Key, and
// naming users by the application's id or Parley's own.
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { bodyCheckers, type ApiScope, type BodyOf } from '../../protocol/validate.js';
import type { AppUsers } from '../auth/app-users.js';
import type { Config } from '../config.js';
import { bearerToken, parseJson, readBody, type Reply } from '../gateway/http.js';
import type { EdgeLimits } from '../limits/edge-limits.js';
import type { StorageEnv } from '../../storage/env.js';
import { allows, type ApiKeys, type ApiPrincipal } from './api-keys.js';
import { IdempotencyStore, requestDigest, type Answer } from './idempotency.js';

/** What a server API handler reads of the request (copied in the uWS callback). */
export interface ServerApiRequest {
  authorization: string; contentLength: string; param: string; query: string; ip: string;
  /** the Idempotency-Key header ('' when absent) */
  idempotencyKey: string;
}

export type ServerMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';
export type ServerOn<R> = (method: ServerMethod, pattern: string, handler: (reply: Reply, req: R) => Promise<void> | void) => void;

type BodyKind = keyof typeof bodyCheckers;
const EMPTY_OBJECT = Buffer.from('{}');

export class ServerApiKit {
  constructor(
    private readonly config: Config,
    private readonly apiKeys: ApiKeys,
    private readonly idempotency: IdempotencyStore,
    private readonly limits: EdgeLimits,
    private readonly appUsers: AppUsers,
    private readonly storage: StorageEnv,
  ) {}

  /**
   * The API key of the request, allowed `scope`; counted against its rate limit. 401 for no,
   * an unknown or a revoked key (a user's session token is no API key), 403 for a missing scope.
   */
  principal(req: ServerApiRequest, scope: ApiScope): ApiPrincipal {
    const secret = bearerToken(req.authorization);
    const p = secret === null ? undefined : this.apiKeys.authenticate(secret);
    if (!p) {
      // Guessing keys costs what guessing tokens does: the address's limit for requests without a valid session.
      if (this.limits.on) this.limits.http(req.ip);
      throw new ProtocolError(ErrorCode.unauthorized, 'missing, invalid or revoked API key');
    }
    if (!allows(p, scope)) throw new ProtocolError(ErrorCode.forbidden, `this API key lacks the ${scope} scope`);
    this.limits.serverApiCall(p.id);
    return p;
  }

  /**
   * The JSON body, validated (400 with the first problem; 413 past MAX_BODY_BYTES), and its raw
   * bytes for the idempotency check. Call before the handler's first await (uWS hands a body only
   * to a reader attached in its callback). `optional`: no body (Content-Length 0) reads as {}.
   */
  async body<K extends BodyKind>(reply: Reply, req: ServerApiRequest, kind: K, optional = false): Promise<{ value: BodyOf<K>; raw: Buffer }> {
    // An empty body is not waited for (uWS may hand no chunk at all for it).
    const raw = req.contentLength === '0' ? Buffer.alloc(0) : await readBody(reply, req.contentLength, this.config.maxBodyBytes);
    return { value: parseJson<BodyOf<K>>(optional && raw.length === 0 ? EMPTY_OBJECT : raw, bodyCheckers[kind]), raw };
  }

  /**
   * A mutating call: with an Idempotency-Key it runs once per key (a repeat answers the stored
   * result with `Idempotent-Replayed: true`; another request under the same key is 409), without
   * one it just runs. `fn` gets the key ('' when none).
   */
  async mutate(reply: Reply, req: ServerApiRequest, p: ApiPrincipal, method: ServerMethod, path: string, raw: Buffer, fn: (idempotencyKey: string) => Promise<Answer>): Promise<void> {
    const key = req.idempotencyKey;
    let answer: Answer & { replayed?: boolean };
    if (key === '') answer = await fn('');
    else {
      IdempotencyStore.check(key);
      answer = await this.idempotency.run(p.id, key, requestDigest(method, path, raw), () => fn(key));
    }
    const headers: Record<string, string> = answer.replayed ? { 'Idempotent-Replayed': 'true' } : {};
    if (answer.body === undefined || answer.body === null) reply.empty(answer.status, headers);
    else reply.json(answer.status, answer.body, headers);
  }

  /** The Parley user an app id or a Parley id names; 404 for nobody (or a deleted account). */
  user(ref: string, what = 'user'): string {
    // A deletion's tombstone is committed by a shard: a binding this thread's snapshot still shows live may be gone.
    this.storage.refresh();
    const user = this.appUsers.resolve(ref);
    if (user === undefined) throw new ProtocolError(ErrorCode.not_found, `no such ${what} ${ref}`);
    return user;
  }

  users(refs: string[]): string[] {
    return refs.map((r) => this.user(r));
  }
}
