// Push registrations over HTTP (docs/protocol.md "Push"): one per device, kept by the device's
// user actor (so logout and revocation remove it in the same commit), and the VAPID public key
// browsers need to subscribe.
import type { ShardCluster } from '../../actors/cluster.js';
import { userAddress } from '../../actors/router.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { MAX_PUSH_TOKEN_BYTES, type PushProvider } from '../push/push-provider.js';
import type { Reply } from './http.js';

export interface PushRouteDeps {
  providers: ReadonlyMap<string, PushProvider>;
  /** the configured VAPID public key (base64url), or null without Web Push */
  vapidPublicKey: string | null;
  cluster: ShardCluster;
}

export interface PushRouteKit<R> {
  on(method: 'GET' | 'POST' | 'DELETE', pattern: string, handler: (reply: Reply, req: R) => Promise<void> | void): void;
  /** async: an application JWT is verified (start a body read before awaiting it) */
  session(req: R): Promise<{ user: string; device: string }>;
  body(reply: Reply, req: R): Promise<{ provider: string; token: string }>;
}

export function mountPushRoutes<R>(kit: PushRouteKit<R>, deps: PushRouteDeps): void {
  kit.on('POST', '/v1/push', async (reply, req) => {
    const [s, { provider, token }] = await Promise.all([kit.session(req), kit.body(reply, req)]);
    const chosen = deps.providers.get(provider);
    if (!chosen) throw new ProtocolError(ErrorCode.bad_frame, `push provider ${provider} is not configured on this server; configured: ${[...deps.providers.keys()].join(', ') || 'none'}`);
    if (Buffer.byteLength(token) > MAX_PUSH_TOKEN_BYTES) throw new ProtocolError(ErrorCode.bad_frame, `token is longer than ${MAX_PUSH_TOKEN_BYTES} bytes`);
    const problem = chosen.checkToken(token);
    if (problem) throw new ProtocolError(ErrorCode.bad_frame, `token: ${problem}`);
    await deps.cluster.ask(userAddress(s.user), { op: 'push-register', device: s.device, provider, token });
    reply.empty(204);
  });

  kit.on('DELETE', '/v1/push', async (reply, req) => {
    const s = await kit.session(req);
    await deps.cluster.ask(userAddress(s.user), { op: 'push-unregister', device: s.device });
    reply.empty(204);
  });

  kit.on('GET', '/v1/push/vapid', (reply) => {
    if (deps.vapidPublicKey === null) throw new ProtocolError(ErrorCode.not_found, 'Web Push is not configured on this server');
    reply.json(200, { publicKey: deps.vapidPublicKey });
  });
}
