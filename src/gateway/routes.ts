// HTTP routes (docs/protocol.md §11, §8.8): accounts, users and sessions, health, metrics; and the
// answer for everything else (404 unknown path, 405 known path with another method).
import type { Logger } from 'pino';
import type { ShardCluster } from '../../actors/cluster.js';
import type { LoginResult } from '../../actors/messages.js';
import { channelAddress, userAddress } from '../../actors/router.js';
import { hashToken, type Accounts } from '../auth/accounts.js';
import { bearerJwt } from '../auth/jwt-verifier.js';
import type { JwtSignIn } from '../auth/jwt-sign-in.js';
import { mountAccountRoutes } from './account-routes.js';
import type { Config } from '../config.js';
import type { EdgeLimits } from '../limits/edge-limits.js';
import type { Metrics } from '../metrics.js';
import type { MetricsHistory } from '../metrics-history.js';
import { mountAdminDashboard } from './admin-dashboard.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { isId, newToken } from '../../protocol/ids.js';
import type { ChannelHub } from './channels.js';
import { mountMediaRoutes, type MediaRouteDeps } from './media-routes.js';
import { mountPushRoutes, type PushRouteDeps } from './push-routes.js';
import { mountServerApi, type ServerApiDeps } from '../server-api/server-routes.js';
import { InviteDesk } from '../invites/invite-desk.js';
import { mountInviteRoutes } from '../invites/invite-routes.js';
import { mountEventsRoute, type EventsRouteDeps } from '../webhooks/events-route.js';
import { bodyCheckers, USERNAME_PATTERN, type BodyOf } from '../../protocol/validate.js';
import { bearerToken, decodedSegment, parseJson, readBody, Reply } from './http.js';
import type { UWS } from './uws.js';
import { mountWebAppRoutes } from './web-app-routes.js';
import { sameSecret } from '../auth/same-secret.js';

export interface RouteDeps {
  config: Config;
  accounts: Accounts;
  cluster: ShardCluster;
  metrics: Metrics;
  log: Logger;
  isReady: () => boolean;
  channels: ChannelHub;
  media: MediaRouteDeps;
  push: PushRouteDeps;
  /** the webhook event log (GET /v1/server/events) */
  events: EventsRouteDeps;
  limits: EdgeLimits;
  history: MetricsHistory;
  serverApi: ServerApiDeps;
  /** Bearer JWTs: application tokens (src/auth/jwt-sign-in.ts) */
  jwt: JwtSignIn;
}

/** Who a 🔒 request is for: a session token's or an application JWT's user and device. */
export interface Caller { user: string; device: string }

type Handler = (reply: Reply, req: Request) => Promise<void> | void;
/** What a handler may read of the request: uWS's request object dies when the callback returns. */
interface Request {
  authorization: string; contentLength: string; param: string; query: string;
  host: string; contentRange: string; range: string; ifNoneMatch: string; accept: string;
  /** the client's address (TRUST_PROXY: from X-Forwarded-For) */
  ip: string;
  /** the server API's Idempotency-Key header */
  idempotencyKey: string;
}
type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Paths served outside this file, with their one method (the WebSocket upgrade, server.ts). */
const OTHER_ROUTES: [Method, string][] = [['GET', '/v1/ws']];

/**
 * The methods each route pattern answers, so that the fallback can tell "no such path" (404) from
 * "not with this method" (405 with Allow). Patterns are uWS's: `:name` matches one segment.
 */
class RouteTable {
  private readonly routes: { segments: string[]; methods: Set<Method> }[] = [];

  add(method: Method, pattern: string): void {
    const segments = pattern.split('/');
    const known = this.routes.find((r) => r.segments.join('/') === pattern);
    if (known) known.methods.add(method);
    else this.routes.push({ segments, methods: new Set([method]) });
  }

  /** Methods of every pattern matching `path`, sorted; empty when none does. */
  allowed(path: string): Method[] {
    const parts = path.split('/');
    const out = new Set<Method>();
    for (const r of this.routes) {
      if (r.segments.length !== parts.length) continue;
      if (r.segments.every((seg, i) => (seg.startsWith(':') ? parts[i] !== '' : seg === parts[i]))) for (const m of r.methods) out.add(m);
    }
    return [...out].sort();
  }
}

export function mountRoutes(app: UWS.TemplatedApp, deps: RouteDeps): void {
  const { accounts, cluster, config, metrics, log, limits } = deps;
  const table = new RouteTable();
  for (const [method, pattern] of OTHER_ROUTES) table.add(method, pattern);
  const on = (method: Method, pattern: string, handler: (res: UWS.HttpResponse, req: UWS.HttpRequest, pattern?: string) => void) => {
    table.add(method, pattern);
    const timed = handler;
    handler = (res, req) => timed(res, req, `${method} ${pattern}`);
    if (method === 'GET') app.get(pattern, handler);
    else if (method === 'POST') app.post(pattern, handler);
    else if (method === 'PUT') app.put(pattern, handler);
    else if (method === 'PATCH') app.patch(pattern, handler);
    else if (method === 'HEAD') app.head(pattern, handler);
    else app.del(pattern, handler);
  };

  const route = (handler: Handler) => (res: UWS.HttpResponse, uwsReq: UWS.HttpRequest, pattern = 'other') => {
    const reply = new Reply(res);
    const started = performance.now();
    reply.onAnswer = (status) => {
      metrics.http.record(pattern, String(status), (performance.now() - started) / 1000);
    };
    const req: Request = {
      authorization: uwsReq.getHeader('authorization'), contentLength: uwsReq.getHeader('content-length'),
      param: uwsReq.getParameter(0) ?? '', query: uwsReq.getQuery() ?? '', host: uwsReq.getHeader('host'),
      contentRange: uwsReq.getHeader('content-range'), range: uwsReq.getHeader('range'), ifNoneMatch: uwsReq.getHeader('if-none-match'),
      ip: limits.on ? limits.clientIp(res, uwsReq) : '', idempotencyKey: uwsReq.getHeader('idempotency-key'),
      accept: uwsReq.getHeader('accept'),
    };
    // Rate limits by IP before login (a request with a token is counted if the token is bad: session()).
    const anonymous = limits.on && req.authorization === '' && !UNCOUNTED_PATHS.has(uwsReq.getUrl());
    const fail = (err: unknown) => {
      if (err instanceof ProtocolError) return reply.error(err.code, err.message, err.retry);
      log.error({ err }, 'http handler failed');
      reply.error(ErrorCode.internal, 'internal error');
    };
    // Synchronously up to the handler's first await: uWS hands a body only to an onData attached
    // before this callback returns.
    try {
      if (anonymous) limits.http(req.ip);
      const pending = handler(reply, req);
      if (pending) pending.catch(fail);
    } catch (err) {
      fail(err);
    }
  };

  const refuse = (req: Request, why: string): never => {
    if (limits.on && req.authorization !== '') limits.http(req.ip);
    throw new ProtocolError(ErrorCode.unauthorized, why);
  };
  /**
   * The caller of a 🔒 route. A bearer of three base64url parts joined by dots is an application
   * JWT (verified asynchronously, its device created on first use); anything else is a session
   * token (43 base64url characters, no dots). A handler that reads a body starts the read before
   * awaiting this (uWS hands the body only to a reader attached in its callback).
   */
  const session = async (req: Request): Promise<Caller> => {
    const jwt = bearerJwt(req.authorization);
    if (jwt !== null) {
      let app;
      try {
        app = await deps.jwt.signIn(jwt);
      } catch (err) {
        if (err instanceof ProtocolError && err.code === ErrorCode.unauthorized) refuse(req, err.message);
        throw err;
      }
      await deps.jwt.ensureDevice(cluster, app!);
      return { user: app!.user, device: app!.device };
    }
    const token = bearerToken(req.authorization);
    const s = token ? accounts.authenticate(token) : undefined;
    return s ?? refuse(req, 'missing, invalid or revoked token');
  };
  /** Passwords off (AUTH_PASSWORDS=off): no registration, no login; existing sessions keep working. */
  const passwordsOn = () => {
    if (config.authPasswords === 'off') throw new ProtocolError(ErrorCode.forbidden, 'password accounts are turned off on this server (AUTH_PASSWORDS=off): sign in with your application\'s token');
  };

  const body = async <K extends keyof typeof bodyCheckers>(reply: Reply, req: Request, kind: K): Promise<BodyOf<K>> =>
    parseJson<BodyOf<K>>(await readBody(reply, req.contentLength, config.maxBodyBytes), bodyCheckers[kind]);

  on('POST', '/v1/users', route(async (reply, req) => {
    passwordsOn();
    limits.register(req.ip);
    const user = await accounts.register(await body(reply, req, 'createUser'));
    reply.json(201, { user: user.user });
  }));

  // Static segments win over parameters in uWS's router, so `me` never reaches `:username`
  // (nor could it name anyone: usernames have at least 3 characters).
  on('GET', '/v1/users/me', route(async (reply, req) => reply.json(200, accounts.me((await session(req)).user))));

  on('PATCH', '/v1/users/me', route(async (reply, req) => {
    const [s, { name }] = await Promise.all([session(req), body(reply, req, 'updateUser')]);
    reply.json(200, await accounts.rename(s.user, name));
  }));

  on('GET', '/v1/users/:username', route(async (reply, req) => {
    limits.lookup((await session(req)).user);
    const found = USERNAME_RE.test(req.param) ? accounts.find(req.param) : undefined;
    if (!found) throw new ProtocolError(ErrorCode.not_found, 'no such user');
    reply.json(200, found);
  }));

  on('POST', '/v1/sessions', route(async (reply, req) => {
    passwordsOn();
    limits.loginFromIp(req.ip);
    const b = await body(reply, req, 'createSession');
    limits.loginAttempt(b.username); // locked out: 429 whatever the password
    let user: string;
    try {
      user = await accounts.verify(b);
    } catch (err) {
      if (!(err instanceof ProtocolError && err.code === ErrorCode.unauthorized)) limits.loginDidNotFail(b.username);
      throw err;
    }
    limits.loginDidNotFail(b.username);
    // The bearer secret is made here and only its hash leaves; the user actor mints the device
    // and stores it with the session (answered once that is on disk).
    const token = newToken();
    const { device } = await cluster.ask<LoginResult>(userAddress(user), { op: 'login', name: b.device, tokenHash: hashToken(token) });
    reply.json(201, { token, user, device });
  }));

  on('GET', '/v1/sessions', route(async (reply, req) => {
    const s = await session(req);
    reply.json(200, { devices: accounts.devices(s.user) });
  }));

  // The user actor owns the device: it removes it with its session and closes its sockets with
  // 4003 wherever they are; answered once the removal is on disk (not_found for no such device).
  const logout = (user: string, device: string) => cluster.ask<void>(userAddress(user), { op: 'revoke', device });

  on('DELETE', '/v1/sessions/current', route(async (reply, req) => {
    const s = await session(req);
    await logout(s.user, s.device);
    reply.empty(204);
  }));

  on('DELETE', '/v1/sessions/:device', route(async (reply, req) => {
    const s = await session(req);
    await logout(s.user, req.param);
    reply.empty(204);
  }));

  // Channels are public (docs/protocol.md §8.3): their stream and history need no account.
  on('GET', '/v1/channels/:channel/events', (res, uwsReq) => {
    const channel = decodedSegment(uwsReq.getParameter(0) ?? '');
    const query = new URLSearchParams(uwsReq.getQuery() ?? '');
    const lastEventId = uwsReq.getHeader('last-event-id');
    const reply = new Reply(res, false);
    const fail = (code: ErrorCode | string, message: string) => reply.error(code, message);
    if (!isId(channel)) {
      res.onAborted(() => undefined);
      return fail(ErrorCode.not_found, 'no such channel');
    }
    const raw = lastEventId !== '' ? lastEventId : query.get('since');
    const since = raw === null ? undefined : seqParam(raw);
    if (since === null) {
      res.onAborted(() => undefined);
      return fail(ErrorCode.bad_frame, 'Last-Event-ID and since are post seqs (non-negative integers)');
    }
    deps.channels.openStream(res, channel, since, (err) => fail(err.code, err.message));
  });

  on('GET', '/v1/channels/:channel/messages', route(async (reply, req) => {
    const channel = decodedSegment(req.param);
    if (!isId(channel)) throw new ProtocolError(ErrorCode.not_found, 'no such channel');
    const query = new URLSearchParams(req.query);
    const num = (name: string, min: number, max: number): number | undefined => {
      const raw = query.get(name);
      if (raw === null) return undefined;
      const n = seqParam(raw);
      if (n === null || n < min || n > max) throw new ProtocolError(ErrorCode.bad_frame, `${name} must be an integer from ${min} to ${max}`);
      return n;
    };
    const before = num('before', 1, Number.MAX_SAFE_INTEGER);
    const after = num('after', 0, Number.MAX_SAFE_INTEGER);
    const limit = num('limit', 1, 100) ?? 50;
    reply.json(200, await cluster.ask(channelAddress(channel), { op: 'read-posts', before, after, limit }));
  }));

  mountMediaRoutes<Request>({ on: (method, pattern, handler) => on(method, pattern, route(handler)), session, body: (reply, req) => body(reply, req, 'createMedia') }, deps.media);

  mountAccountRoutes<Request>({ on: (method, pattern, handler) => on(method, pattern, route(handler)), session, body: (reply, req) => body(reply, req, 'changePassword') }, { accounts, cluster, config });

  mountPushRoutes<Request>({ on: (method, pattern, handler) => on(method, pattern, route(handler)), session, body: (reply, req) => body(reply, req, 'registerPush') }, deps.push);

  mountServerApi<Request>((method, pattern, handler) => on(method, pattern, route(handler)), deps.serverApi);
  mountInviteRoutes<Request>((pattern, handler) => on('GET', pattern, route(handler)), new InviteDesk(config, cluster, accounts.storageEnv, limits));
  mountEventsRoute<Request>({ on: (method, pattern, handler) => on(method, pattern, route(handler)), authorization: (req) => req.authorization, query: (req) => req.query }, deps.events);

  mountWebAppRoutes<Request>((method, pattern, handler) => on(method, pattern, route(handler)), config.webApp);

  on('GET', '/healthz', route((reply) => reply.json(200, { status: 'alive' })));
  on('GET', '/readyz', route((reply) => (deps.isReady() ? reply.json(200, { status: 'ready' }) : reply.error(ErrorCode.unavailable, 'not ready'))));
  // Operators' routes (docs/protocol.md §8.7): behind ADMIN_TOKEN here; open on the internal admin
  // port (server.ts); with an admin port and no token they are not served here at all.
  const admin = (req: Request) => {
    if (config.adminToken !== '') {
      const token = bearerToken(req.authorization);
      if (token === null || !sameSecret(token, config.adminToken)) throw new ProtocolError(ErrorCode.unauthorized, 'the admin token is missing or wrong');
    } else if (config.adminPort !== 0) throw new ProtocolError(ErrorCode.not_found, 'no such route');
  };
  on('GET', '/metrics', route(async (reply, req) => {
    admin(req);
    reply.text(200, await metrics.registry.metrics(), metrics.registry.contentType);
  }));
  // The series behind the same check; the page (no data in it) wherever the admin routes are served here.
  mountAdminDashboard<Request>((pattern, handler) => on('GET', pattern, route(handler)), deps.history, admin, () => {
    if (config.adminToken === '' && config.adminPort !== 0) throw new ProtocolError(ErrorCode.not_found, 'no such route');
  });

  // Everything uWS parsed but no route took. (What its parser refuses never gets here: see
  // docs/protocol.md "Malformed HTTP".)
  app.any('/*', (res, uwsReq) => {
    const reply = new Reply(res);
    const method = uwsReq.getCaseSensitiveMethod();
    const path = uwsReq.getUrl();
    const allowed = table.allowed(path);
    if (allowed.length === 0) return reply.error(ErrorCode.not_found, 'no such route');
    // The one route reaching here with its own method: the WebSocket endpoint without an upgrade.
    if (allowed.includes(method as Method)) return reply.json(426, { error: ErrorCode.bad_frame, message: `${path} is a WebSocket endpoint: upgrade` }, { Upgrade: 'websocket' });
    const allow = allowed.join(', ');
    // A HEAD answer has no body (a client would read one as the next response).
    if (method === 'HEAD') return reply.empty(405, { Allow: allow });
    reply.json(405, { error: ErrorCode.bad_frame, message: `${method} is not allowed here; allowed: ${allow}` }, { Allow: allow });
  });
}

const USERNAME_RE = new RegExp(USERNAME_PATTERN);
/** Probes and scrapes: never rate-limited (a refused probe would restart a healthy server). */
const UNCOUNTED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** A seq in a query or header: a non-negative safe integer in plain digits, else null. */
function seqParam(raw: string): number | null {
  if (!/^\d{1,16}$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}
