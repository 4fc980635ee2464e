// GET /i/:code (docs/protocol.md "Invite links"): the invite's page, or its JSON with
// `Accept: application/json`. Not signed in: limited per IP (RL_INVITE_GUESS, RL_HTTP_PER_IP).
import { ProtocolError } from '../../protocol/errors.js';
import { ErrorCode } from '../../protocol/codes.js';
import type { Reply } from '../gateway/http.js';
import type { InviteDesk } from './invite-desk.js';
import { invitePage, missingInvitePage } from './invite-page.js';

export interface InviteRequest { param: string; host: string; ip: string; accept: string }

const HTML = 'text/html; charset=utf-8';

export function mountInviteRoutes<R extends InviteRequest>(get: (pattern: string, handler: (reply: Reply, req: R) => Promise<void>) => void, desk: InviteDesk): void {
  get('/i/:code', async (reply, req) => {
    const json = req.accept.includes('application/json');
    try {
      const info = await desk.info({ ip: req.ip, host: req.host }, req.param);
      if (json) {
        const { target, name, ...rest } = info;
        reply.json(200, { ...rest, [info.kind === 'group' ? 'thread' : 'channel']: target, ...(name !== undefined ? { name } : {}) });
      } else reply.text(200, invitePage(info, desk.url(info.code, req.host)), HTML);
    } catch (err) {
      // A browser gets a page saying so; API clients (and rate limits) the JSON error.
      if (!json && err instanceof ProtocolError && err.code === ErrorCode.not_found) return reply.text(404, missingInvitePage(), HTML);
      throw err;
    }
  });
}
