// GET /v1/server/events?after=<id>&limit=<n> (docs/protocol.md "Events API"): the global webhook
// event log after a cursor, for an operator replaying what its receiver missed. Read-only; the
// webhook dispatcher owns the log.
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { StorageEnv } from '../../storage/env.js';
import { bearerToken, type Reply } from '../gateway/http.js';
import { readEvents } from './webhook-dispatcher.js';
import { allows, type ApiKeys } from '../server-api/api-keys.js';

export interface EventsRouteDeps {
  storage: StorageEnv;
  /** the server API's keys (ADMIN_TOKEN counts as an admin key) */
  apiKeys: ApiKeys;
}

export interface EventsRouteKit<R> {
  on(method: 'GET', pattern: string, handler: (reply: Reply, req: R) => Promise<void> | void): void;
  /** the request's Authorization header and query string */
  authorization(req: R): string;
  query(req: R): string;
}

export const MAX_EVENTS_PAGE = 1000;
const DEFAULT_EVENTS_PAGE = 100;

/** Who may read the event log (it holds every message body): an API key with the `admin` scope, or ADMIN_TOKEN. */
export function authorizeEventsRead(authorization: string, apiKeys: ApiKeys): void {
  const secret = bearerToken(authorization);
  const p = secret === null ? undefined : apiKeys.authenticate(secret);
  if (!p) throw new ProtocolError(ErrorCode.unauthorized, 'missing, invalid or revoked API key');
  if (!allows(p, 'admin')) throw new ProtocolError(ErrorCode.forbidden, 'the events API needs an API key with the admin scope');
}

export function mountEventsRoute<R>(kit: EventsRouteKit<R>, deps: EventsRouteDeps): void {
  kit.on('GET', '/v1/server/events', (reply, req) => {
    authorizeEventsRead(kit.authorization(req), deps.apiKeys);
    const query = new URLSearchParams(kit.query(req));
    const after = intParam(query.get('after'), 'after', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = intParam(query.get('limit'), 'limit', 1, MAX_EVENTS_PAGE) ?? DEFAULT_EVENTS_PAGE;
    deps.storage.refresh(); // the dispatcher's newest move
    const events = readEvents(deps.storage, after, limit);
    reply.json(200, { events, next: events.length > 0 ? events[events.length - 1].id : after });
  });
}

function intParam(raw: string | null, name: string, min: number, max: number): number | undefined {
  if (raw === null) return undefined;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ProtocolError(ErrorCode.bad_frame, `${name} must be an integer from ${min} to ${max}`);
  return n;
}
