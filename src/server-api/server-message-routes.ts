// Server API conversations (docs/protocol.md "Server API"): send as a user or a bot, create
// groups and change their members, create channels and post, read a thread's history. Sends,
// group creation and posts are the same commands a client sends, with a cid (or group id)
// derived from the Idempotency-Key, so the actors' own dedupe makes a repeat exactly-once.
import { channelAddress, threadAddress } from '../../actors/router.js';
import { Command, ErrorCode } from '../../protocol/codes.js';
import { fail, ProtocolError } from '../../protocol/errors.js';
import { channelIdFor, directThreadId, groupIdFor, isId, newGroupId, newToken } from '../../protocol/ids.js';
import { bodyTooLarge, checkChannelPost, checkSend, type FrameOf } from '../../protocol/validate.js';
import { readThreadLog } from '../../storage/thread-log.js';
import { decodedSegment } from '../gateway/http.js';
import { actorCommand } from './actor-commands.js';
import { idempotentCid } from './idempotency.js';
import type { ServerApiKit, ServerApiRequest, ServerOn } from './server-api-kit.js';
import type { ServerApiDeps } from './server-routes.js';

export function mountServerMessageRoutes<R extends ServerApiRequest>(on: ServerOn<R>, kit: ServerApiKit, deps: ServerApiDeps): void {
  const { cluster, media, storage } = deps;
  const cidFor = (keyId: string, idem: string) => (idem === '' ? newToken() : idempotentCid(keyId, idem));
  const tooLarge = (body: string | undefined) => {
    if (bodyTooLarge(body)) throw new ProtocolError(ErrorCode.too_large, 'body is larger than 16 KiB');
  };
  const isBot = (user: string) => storage.db.users.get(user)?.bot === true;

  on('POST', '/v1/server/messages', async (reply, req) => {
    const p = kit.principal(req, 'messages');
    const { value: b, raw } = await kit.body(reply, req, 'serverMessage');
    await kit.mutate(reply, req, p, 'POST', '/v1/server/messages', raw, async (idem) => {
      const problem = checkSend(b as unknown as FrameOf<'send'>);
      if (problem) throw new ProtocolError(ErrorCode.bad_frame, problem);
      tooLarge(b.body);
      const user = kit.user(b.as);
      const to = b.to === undefined ? undefined : kit.user(b.to);
      const thread = b.thread ?? directThreadId(user, to!);
      if (thread.length > 40) throw new ProtocolError(ErrorCode.not_found, 'no such user');
      const frame: Record<string, unknown> = { t: Command.send, cid: cidFor(p.id, idem) };
      if (b.thread !== undefined) frame.thread = b.thread;
      if (to !== undefined) frame.to = to;
      if (b.body !== undefined) frame.body = b.body;
      if (b.media !== undefined) frame.media = media.attachable(user, b.media);
      if (b.reply !== undefined) frame.reply = b.reply;
      const sent = await actorCommand(cluster, threadAddress(thread), user, frame as { t: string }, isBot(user) ? { bot: true } : {});
      return { status: 201, body: sent };
    });
  });

  // History as the server sees it: every message (no cids), or with ?as= what that member sees.
  // Read from LMDB like the account export: an acknowledged message is committed.
  on('GET', '/v1/server/threads/:thread/history', (reply, req) => {
    kit.principal(req, 'messages');
    const thread = decodedSegment(req.param);
    const query = new URLSearchParams(req.query);
    const before = intParam(query, 'before', 1);
    const after = intParam(query, 'after', 0);
    const limit = intParam(query, 'limit', 1, 100) ?? 50;
    storage.refresh(); // written by the thread actors in the shards
    const meta = isId(thread) ? storage.db.threads.get(thread) : undefined;
    if (!meta) throw new ProtocolError(ErrorCode.not_found, 'no such thread');
    let floor = 0;
    const as = query.get('as');
    if (as !== null) {
      const user = kit.user(as);
      if (!meta.members.includes(user)) throw new ProtocolError(ErrorCode.forbidden, 'not a member of this thread');
      floor = meta.joined[user] ?? 0;
    }
    const page = readThreadLog(storage, thread, { before, after, limit, floor });
    reply.json(200, { messages: page.messages.map(({ cid: _cid, ...m }) => ({ thread, ...m })), more: page.more });
  });

  on('POST', '/v1/server/groups', async (reply, req) => {
    const p = kit.principal(req, 'messages');
    const { value: b, raw } = await kit.body(reply, req, 'serverGroup');
    await kit.mutate(reply, req, p, 'POST', '/v1/server/groups', raw, async (idem) => {
      const user = kit.user(b.as);
      const members = kit.users(b.members);
      // With a key the id is derived, so a repeat reaches the same group (group.create's cid rule).
      const cid = idem === '' ? undefined : idempotentCid(p.id, idem);
      const group = cid === undefined ? newGroupId() : groupIdFor(user, cid);
      const frame: Record<string, unknown> = { t: Command.groupCreate, title: b.title, members };
      if (cid !== undefined) frame.cid = cid;
      const made = await actorCommand<{ thread: string }>(cluster, threadAddress(group), user, frame as { t: string });
      return { status: 201, body: { thread: made.thread } };
    });
  });

  // As `as` (an admin of the group), or without it as the group's first admin.
  on('POST', '/v1/server/groups/:thread/members', async (reply, req) => {
    const p = kit.principal(req, 'messages');
    const { value: b, raw } = await kit.body(reply, req, 'serverGroupMembers');
    await kit.mutate(reply, req, p, 'POST', `/v1/server/groups/${req.param}/members`, raw, async () => {
      if (b.add === undefined && b.remove === undefined) throw new ProtocolError(ErrorCode.bad_frame, 'one of add or remove is required');
      const thread = decodedSegment(req.param);
      const meta = () => {
        storage.refresh();
        return (isId(thread) ? storage.db.threads.get(thread) : undefined) ?? fail(ErrorCode.not_found, 'no such thread');
      };
      const before = meta();
      const actor = b.as !== undefined ? kit.user(b.as) : (before.admins[0] ?? fail(ErrorCode.not_found, 'no such group'));
      const address = threadAddress(thread);
      if (b.add !== undefined) await actorCommand(cluster, address, actor, { t: Command.groupAdd, thread, users: kit.users(b.add) });
      if (b.remove !== undefined) await actorCommand(cluster, address, actor, { t: Command.groupRemove, thread, users: kit.users(b.remove) });
      const after = meta();
      return { status: 200, body: { thread, members: after.members, admins: after.admins } };
    });
  });

  on('POST', '/v1/server/channels', async (reply, req) => {
    const p = kit.principal(req, 'channels');
    const { value: b, raw } = await kit.body(reply, req, 'serverChannel');
    await kit.mutate(reply, req, p, 'POST', '/v1/server/channels', raw, async () => {
      const user = kit.user(b.as);
      const frame: Record<string, unknown> = { t: Command.channelCreate, name: b.name, title: b.title };
      if (b.mode !== undefined) frame.mode = b.mode;
      const made = await actorCommand<{ channel: string }>(cluster, channelAddress(channelIdFor(b.name)), user, frame as { t: string });
      return { status: 201, body: { channel: made.channel } };
    });
  });

  // As the owner or an admin (broadcast), or anyone (open: the server speaks for a joined user).
  on('POST', '/v1/server/channels/:channel/posts', async (reply, req) => {
    const p = kit.principal(req, 'channels');
    const { value: b, raw } = await kit.body(reply, req, 'serverChannelPost');
    await kit.mutate(reply, req, p, 'POST', `/v1/server/channels/${req.param}/posts`, raw, async (idem) => {
      const channel = decodedSegment(req.param);
      if (!isId(channel)) throw new ProtocolError(ErrorCode.not_found, 'no such channel');
      const problem = checkChannelPost(b as unknown as FrameOf<'channel.post'>);
      if (problem) throw new ProtocolError(ErrorCode.bad_frame, problem);
      tooLarge(b.body);
      const user = kit.user(b.as);
      const frame: Record<string, unknown> = { t: Command.channelPost, channel, cid: cidFor(p.id, idem) };
      if (b.body !== undefined) frame.body = b.body;
      if (b.media !== undefined) frame.media = media.attachable(user, b.media);
      const posted = await actorCommand(cluster, channelAddress(channel), user, frame as { t: string }, { joined: true });
      return { status: 201, body: { channel, ...posted } };
    });
  });
}

/** An optional integer query parameter from min to max; 400 otherwise. */
function intParam(query: URLSearchParams, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ProtocolError(ErrorCode.bad_frame, `${name} must be an integer from ${min} to ${max}`);
  return n;
}
