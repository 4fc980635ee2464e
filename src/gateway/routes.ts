// HTTP routes (PROTOCOL.md §7): accounts and sessions, health, metrics.
import type { Logger } from 'pino';
import type { ShardCluster } from '../../actors/cluster.js';
import { userAddress } from '../../actors/router.js';
import type { Accounts } from '../auth/accounts.js';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { bodyCheckers, type BodyOf } from '../../protocol/validate.js';
import { bearerToken, parseJson, readBody, Reply } from './http.js';
import type { UWS } from './uws.js';

export interface RouteDeps {
  config: Config;
  accounts: Accounts;
  cluster: ShardCluster;
  metrics: Metrics;
  log: Logger;
  isReady: () => boolean;
}

type Handler = (reply: Reply, req: Request) => Promise<void> | void;
/** What a handler may read of the request: uWS's request object dies when the callback returns. */
interface Request { authorization: string; contentLength: string; param: string }

export function mountRoutes(app: UWS.TemplatedApp, deps: RouteDeps): void {
  const { accounts, cluster, config, metrics, log } = deps;

  const route = (handler: Handler) => (res: UWS.HttpResponse, uwsReq: UWS.HttpRequest) => {
    const reply = new Reply(res);
    const req: Request = { authorization: uwsReq.getHeader('authorization'), contentLength: uwsReq.getHeader('content-length'), param: uwsReq.getParameter(0) ?? '' };
    Promise.resolve()
      .then(() => handler(reply, req))
      .catch((err: unknown) => {
        if (err instanceof ProtocolError) return reply.error(err.code, err.message, err.retry);
        log.error({ err }, 'http handler failed');
        reply.error(ErrorCode.internal, 'internal error');
      });
  };

  const session = (req: Request) => {
    const token = bearerToken(req.authorization);
    const s = token ? accounts.authenticate(token) : undefined;
    if (!s) throw new ProtocolError(ErrorCode.unauthorized, 'missing, invalid or revoked token');
    return s;
  };

  const body = async <K extends keyof typeof bodyCheckers>(reply: Reply, req: Request, kind: K): Promise<BodyOf<K>> =>
    parseJson<BodyOf<K>>(await readBody(reply, req.contentLength, config.maxBodyBytes), bodyCheckers[kind]);

  app.post('/v1/users', route(async (reply, req) => {
    const user = await accounts.register(await body(reply, req, 'createUser'));
    reply.json(201, { user: user.user });
  }));

  app.post('/v1/sessions', route(async (reply, req) => {
    const result = await accounts.login(await body(reply, req, 'createSession'));
    reply.json(201, result);
  }));

  app.get('/v1/sessions', route((reply, req) => {
    const s = session(req);
    reply.json(200, { devices: accounts.devices(s.user) });
  }));

  const logout = async (user: string, device: string) => {
    await accounts.revoke(user, device);
    // The user actor knows the device's sockets wherever they are: it closes them with 4003.
    cluster.tell(userAddress(user), { op: 'revoke', device });
  };

  app.del('/v1/sessions/current', route(async (reply, req) => {
    const s = session(req);
    await logout(s.user, s.device);
    reply.empty(204);
  }));

  app.del('/v1/sessions/:device', route(async (reply, req) => {
    const s = session(req);
    await logout(s.user, req.param);
    reply.empty(204);
  }));

  app.get('/healthz', route((reply) => reply.json(200, { status: 'alive' })));
  app.get('/readyz', route((reply) => (deps.isReady() ? reply.json(200, { status: 'ready' }) : reply.error(ErrorCode.unavailable, 'not ready'))));
  app.get('/metrics', route(async (reply) => reply.text(200, await metrics.registry.metrics(), metrics.registry.contentType)));

  app.any('/*', route((reply) => reply.error(ErrorCode.not_found, 'no such route')));
}
