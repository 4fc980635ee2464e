// The WebSocket gateway (docs/protocol.md §3): sessions, replay from the user log, live pushes, and
// routing of validated commands to actors. It keeps per-socket delivery state only — the
// newest u each socket has been sent — and no domain state.
import type { Logger } from 'pino';
import type { ShardCluster } from '../../actors/cluster.js';
import type { AttachResult, ClientCommand, ReplayResult } from '../../actors/messages.js';
import { channelAddress, threadAddress, userAddress } from '../../actors/router.js';
import type { StorageEnv } from '../../storage/env.js';
import type { PresenceState } from '../../storage/presence.js';
import type { Accounts } from '../auth/accounts.js';
import { TokenDeadlines } from '../auth/jwt-deadlines.js';
import type { AppSession, JwtSignIn } from '../auth/jwt-sign-in.js';
import type { Config } from '../config.js';
import type { MediaLibrary } from '../media/media-library.js';
import type { Metrics } from '../metrics.js';
import { CloseCode, Command, ErrorCode, ServerFrame } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { channelIdFor, directThreadId, groupIdFor, newGroupId } from '../../protocol/ids.js';
import { bodyTooLarge, checkChannelGet, checkChannelPost, checkEmoji, checkForward, checkHello, checkInviteTarget, checkSchedule, checkSearch, checkSend, frameCheckers, knownFields, MAX_PRESENCE_SUBS, type FrameOf } from '../../protocol/validate.js';
import { TRENDING_ADDRESS } from '../../actors/trending-actor.js';
import { InviteDesk } from '../invites/invite-desk.js';
import { ChannelHub, type Following } from './channels.js';
import { TokenBuckets } from '../limits/token-buckets.js';
import type { EdgeLimits, LimitName, SocketBudget } from '../limits/edge-limits.js';
import { answerErrorCode, decodeClientFrame, encodeFrame, wireTime } from '../../protocol/wire.js';
import type { UWS } from './uws.js';
import type { SendHook, SendHookRequest } from '../webhooks/send-hook.js';

const enum Phase { awaitingHello, authenticating, syncing, live, closed }

/** Per-socket state, kept small: it is most of what an idle connection costs. */
interface Conn {
  id: number;
  phase: Phase;
  user: string;
  device: string;
  /** newest u written to this socket: pushes at or below it are duplicates */
  sentU: number;
  /** live pushes paused until the send buffer drains; the log catches the socket up */
  lagging: boolean;
  badFrames: number;
  helloDeadline: number;
  /** typing rate limit: a token bucket (tokens, time of the last refill) */
  typingTokens: number;
  typingAt: number;
  /** users this socket watches with presence.sub; null until it subscribes to any */
  watching: Set<string> | null;
  /** commands sent to actors and not answered yet (bounded by MAX_ASKS_PER_SOCKET) */
  inflight: number;
  /** a replay ask is on its way: live pushes wait, its answer continues from sentU */
  replaying: boolean;
  /** channels this socket has joined (src/gateway/channels.ts); null until it joins any */
  channels: Map<string, Following> | null;
  /** the client's address and command budget (src/limits/edge-limits.ts); null budget: RATE_LIMITS=off */
  ip: string;
  budget: SocketBudget | null;
  /** the Host header of the upgrade (interned): the origin of invite links without PUBLIC_URL */
  host: string;
  /** signed in with an application JWT: its expiry and the refresh deadline; null: a session token */
  token: TokenTimes | null;
}

/** A JWT socket's deadlines (ms): `refresh` is sent at refreshAt (0: sent), the close follows at exp + grace. */
interface TokenTimes { exp: number; refreshAt: number; slot: number }

type Socket = UWS.WebSocket<Conn>;

/** Frames waiting for the end of a batch, with the u of each (0: not a durable push). */
interface QueuedFrames { bytes: Uint8Array[]; u: number[] }

/** Read after an await: the close handler may have run meanwhile. */
const isClosed = (conn: Conn): boolean => conn.phase === Phase.closed;

const MAX_BAD_FRAMES = 3;
/** typing: a burst of 5, then one per second per socket, so a client cannot flood a group */
const TYPING_BURST = 5;
const TYPING_REFILL_MS = 1000;
/** How long a client over its in-flight bound is told to wait. */
const INFLIGHT_RETRY_MS = 100;
/** After its JWT's exp a socket still has this long for the refresh on its way (clock skew, a slow JWKS). */
const TOKEN_CLOSE_GRACE_MS = 1000;
/** How often the process-wide bound on buffered bytes is checked. */
const BUFFER_SWEEP_MS = 1000;
/** `retry` of an upgrade refused at MAX_SOCKETS, and how often that refusal is logged. */
const FULL_RETRY_MS = 5000;
const FULL_LOG_EVERY_MS = 10_000;

export class SocketGateway {
  private readonly sockets = new Map<number, Socket>();
  /** user + device → its attached sockets here (push skips devices that are online) */
  private readonly onlineDevices = new Map<string, number>();
  private readonly awaitingHello = new Set<Socket>();
  private nextId = 1;
  private readonly helloSweep: NodeJS.Timeout;
  private readonly bufferSweep: NodeJS.Timeout;
  /** New sockets are refused until the server is ready, and again once it drains. */
  private accepting = false;
  private fullLoggedAt = 0;
  /**
   * Frames produced while handling a batch from the shards, per socket. Outside uWS's own
   * callbacks every send would be its own syscall; written at the batch's end, one cork each.
   */
  private batching = false;
  private readonly queued = new Map<Socket, QueuedFrames>();
  readonly channels: ChannelHub;
  /** channel.post per user, across their sockets */
  private readonly posts: TokenBuckets;
  private readonly invites: InviteDesk;
  /** Host headers seen, so that sockets share one string each (bounded). */
  private readonly hosts = new Map<string, string>();
  /** JWT sockets by when they need a refresh frame or a close (swept with the hello deadlines) */
  private readonly tokenDeadlines = new TokenDeadlines<Conn>();

  constructor(
    private readonly config: Config,
    private readonly cluster: ShardCluster,
    private readonly storage: StorageEnv,
    private readonly accounts: Accounts,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** the data directory's log epoch (docs/protocol.md §3) */
    private readonly epoch: string,
    /** resolves `media` ids in send and channel.post to the media objects messages carry */
    private readonly media: MediaLibrary,
    private readonly limits: EdgeLimits,
    /** hello {jwt}, refresh {jwt}: application tokens (src/auth/jwt-sign-in.ts) */
    private readonly jwt: JwtSignIn,
    /** SEND_HOOK_URL: every send and channel.post is checked by the operator first (null: off) */
    private readonly sendHook: SendHook | null,
  ) {
    this.helloSweep = setInterval(() => {
      this.closeLateHellos();
      this.sweepTokens();
    }, 500);
    this.helloSweep.unref();
    this.bufferSweep = setInterval(() => this.boundBufferedBytes(), BUFFER_SWEEP_MS);
    this.bufferSweep.unref();
    this.posts = new TokenBuckets(config.channelPostsPerSecond, config.channelPostsPerSecond);
    this.invites = new InviteDesk(config, cluster, storage, limits);
    this.channels = new ChannelHub(cluster, {
      isOpen: (ws) => !isClosed(ws.getUserData() as Conn),
      send: (ws, frame) => this.send(ws as Socket, frame),
      writeNow: (ws, bytes) => this.writeNow(ws as Socket, bytes),
      error: (ws, r, code, msg, retry) => this.error(ws as Socket, r, code, msg, retry),
      takeAskSlot: (ws, r) => this.takeAskSlot(ws as Socket, ws.getUserData() as Conn, r),
      releaseAskSlot: (ws) => void (ws.getUserData() as Conn).inflight--,
      close: (ws, code, reason) => this.close(ws as Socket, code, reason),
    }, metrics, log, epoch, config.slowConsumerBytes, config.sseKeepaliveSeconds * 1000);
  }

  /** The uWS app whose topics carry channel posts. */
  attachApp(app: UWS.TemplatedApp): void {
    this.channels.attach(app);
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** uWS WebSocket behavior for `app.ws('/v1/ws', ...)`. */
  behavior(): UWS.WebSocketBehavior<Conn> {
    const idle = Math.max(8, Math.ceil((2 * this.config.heartbeatSeconds) / 4) * 4);
    return {
      // uWS drops a socket whose frame exceeds maxPayloadLength without a close frame (1006).
      // Accepting up to twice our limit lets us close an oversized frame properly with 1009;
      // beyond that uWS cuts the connection, which bounds what a client can make us buffer.
      maxPayloadLength: this.config.maxFrameBytes * 2,
      idleTimeout: idle,
      sendPingsAutomatically: true,
      // We pause pushes at slowConsumerBytes and close with 4009 at 4× that (see write), so uWS's
      // own limit (which drops frames silently) must never be the one that acts.
      maxBackpressure: Number.MAX_SAFE_INTEGER,
      upgrade: (res, req, context) => {
        if (!this.accepting) {
          res.writeStatus('503 Service Unavailable').end('not ready');
          return;
        }
        if (this.sockets.size >= this.config.maxSockets) return this.refuseFull(res);
        const ip = this.limits.on ? this.limits.clientIp(res, req) : '';
        const refused = this.limits.on ? this.limits.wsConnect(ip) : null;
        if (refused) {
          res.cork(() => res.writeStatus('429 Too Many Requests').writeHeader('Retry-After', String(Math.ceil(refused.wait / 1000))).writeHeader('Content-Type', 'application/json')
            .end(JSON.stringify({ error: ErrorCode.rate_limited, message: refused.why, retry: refused.wait })));
          return;
        }
        const conn: Conn = {
          id: 0, phase: Phase.awaitingHello, user: '', device: '', sentU: 0, lagging: false, badFrames: 0, helloDeadline: 0,
          typingTokens: TYPING_BURST, typingAt: 0, watching: null, inflight: 0, replaying: false, channels: null,
          ip, budget: this.limits.on ? this.limits.newBudget() : null, host: this.internHost(req.getHeader('host')), token: null,
        };
        res.upgrade(conn, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (ws) => {
        const conn = ws.getUserData();
        conn.id = this.nextId++;
        conn.helloDeadline = Date.now() + this.config.helloTimeoutMs;
        this.sockets.set(conn.id, ws);
        this.awaitingHello.add(ws);
        this.metrics.counts.connections++;
        if (conn.budget) this.limits.wsOpened(conn.ip);
      },
      message: (ws, data, isBinary) => this.onMessage(ws, data, isBinary),
      drain: (ws) => {
        const conn = ws.getUserData();
        if (ws.getBufferedAmount() >= this.config.slowConsumerBytes / 2) return;
        if (conn.lagging) this.catchUp(ws, conn);
        this.channels.drained(ws, conn);
      },
      close: (ws) => this.onClose(ws),
    };
  }

  // ---- from actors ----

  beginBatch(): void {
    this.batching = true;
  }

  endBatch(): void {
    this.batching = false;
    for (const ws of this.queued.keys()) this.flushQueued(ws);
  }

  private flushQueued(ws: Socket): void {
    const q = this.queued.get(ws);
    if (!q) return;
    this.queued.delete(ws);
    const conn = ws.getUserData();
    if (conn.phase === Phase.closed) return;
    ws.cork(() => {
      for (let i = 0; i < q.bytes.length; i++) {
        const u = q.u[i];
        // A durable push meets the pause rule when it is written, not when it was queued: a
        // batch can carry far more than the send buffer should take.
        if (u > 0 && (conn.lagging || this.mustPause(ws, conn, u))) continue;
        this.writeNow(ws, q.bytes[i]);
      }
    });
  }

  /** Full send buffer: stop live pushes at u (the log catches the socket up once it drains). */
  private mustPause(ws: Socket, conn: Conn, u: number): boolean {
    if (ws.getBufferedAmount() <= this.config.slowConsumerBytes) return false;
    conn.lagging = true;
    conn.sentU = u - 1;
    this.metrics.counts.slowConsumerPauses++;
    return true;
  }

  /** An encoded event for some of our sockets. u > 0: durable, in the user log at u. */
  push(conns: number | number[], frame: Uint8Array, u: number): void {
    if (typeof conns === 'number') this.pushOne(conns, frame, u);
    else for (const id of conns) this.pushOne(id, frame, u);
  }

  publish(channel: string, firstSeq: number, frames: Uint8Array[]): void {
    this.channels.publish(channel, firstSeq, frames);
  }

  kick(connId: number, code: number, reason: string): void {
    const ws = this.sockets.get(connId);
    if (ws) this.close(ws, code, reason);
  }

  /**
   * Shard `shard` died and was restarted: the sockets and presence watches registered with its
   * user actors are gone. Close the sockets whose user, or a user they watch, lives there with
   * 1012, so their clients attach again and replay (nothing durable is lost: the logs have it).
   */
  shardRestarted(shard: number): void {
    const onShard = (user: string) => this.cluster.router.peerOf(userAddress(user)) === shard;
    for (const ws of [...this.sockets.values()]) {
      const conn = ws.getUserData();
      // Still authenticating: its attach to the dead shard fails on its own (unavailable).
      if (conn.phase !== Phase.syncing && conn.phase !== Phase.live) continue;
      if (onShard(conn.user) || (conn.watching && [...conn.watching].some(onShard))) this.close(ws, CloseCode.serviceRestart, 'service restart, reconnect');
    }
    this.channels.shardRestarted(shard, CloseCode.serviceRestart);
  }

  /**
   * MAX_SOCKETS reached: 503 with Retry-After, so the client tries later (or another node) and
   * this process keeps the files it needs to go on answering everyone it holds.
   */
  private refuseFull(res: UWS.HttpResponse): void {
    const now = Date.now();
    if (now - this.fullLoggedAt > FULL_LOG_EVERY_MS) {
      this.fullLoggedAt = now;
      this.log.warn({ sockets: this.sockets.size, maxSockets: this.config.maxSockets }, 'MAX_SOCKETS reached: refusing new WebSockets (logged at most every 10 s)');
    }
    res.cork(() => res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', String(FULL_RETRY_MS / 1000)).writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify({ error: ErrorCode.unavailable, message: 'this server holds as many connections as it may; try again later', retry: FULL_RETRY_MS })));
  }

  /** The shards are up: accept sockets. */
  open(): void {
    this.accepting = true;
  }

  /** Shutdown: no new sockets; every open one gets 1001. */
  closeAll(): void {
    this.accepting = false;
    clearInterval(this.helloSweep);
    clearInterval(this.bufferSweep);
    this.channels.stop();
    this.posts.stop();
    for (const ws of [...this.sockets.values()]) this.close(ws, CloseCode.goingAway, 'server shutting down');
  }

  private pushOne(connId: number, frame: Uint8Array, u: number): void {
    const ws = this.sockets.get(connId);
    if (!ws) return;
    const conn = ws.getUserData();
    if (conn.phase !== Phase.live || conn.lagging || conn.replaying) return; // the log will catch it up
    if (u === 0) {
      this.write(ws, frame);
      return;
    }
    if (u <= conn.sentU) return;
    if (u > conn.sentU + 1) {
      // A push went missing (dropped while lagging): the log has everything up to u.
      this.catchUp(ws, conn);
      return;
    }
    conn.sentU = u;
    if (this.batching) this.queue(ws, frame, u);
    else if (!this.mustPause(ws, conn, u)) this.writeNow(ws, frame);
  }

  // ---- from clients ----

  private onMessage(ws: Socket, data: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData();
    this.metrics.counts.framesIn++;
    if (data.byteLength > this.config.maxFrameBytes) return this.close(ws, CloseCode.tooLarge, 'frame too large');
    if (!isBinary) return this.badFrame(ws, conn, undefined, 'frames must be binary msgpack');
    let frame: unknown;
    try {
      frame = decodeClientFrame(new Uint8Array(data));
    } catch (err) {
      return this.badFrame(ws, conn, undefined, err instanceof ProtocolError ? err.message : 'frame is not valid msgpack');
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame) || typeof (frame as { t?: unknown }).t !== 'string') {
      return this.badFrame(ws, conn, undefined, 'a frame is a msgpack map with a string t');
    }
    const f = frame as { t: string; r?: unknown };
    const r = typeof f.r === 'number' && Number.isInteger(f.r) && f.r >= 0 ? f.r : undefined;
    const check = frameCheckers.get(f.t);
    if (!check) return this.badFrame(ws, conn, r, `unknown command ${f.t}`);
    const problem = check(frame);
    if (problem) return this.badFrame(ws, conn, r, `${f.t}: ${problem}`);
    // Only what the schema validated goes further: no unknown field reaches an actor.
    frame = knownFields(f.t, frame);

    if (f.t === Command.hello) return void this.hello(ws, conn, frame as FrameOf<'hello'>, r);
    if (f.t === Command.ping) return this.send(ws, { t: ServerFrame.pong, ts: wireTime(Date.now()), ...(r !== undefined ? { r } : {}) });
    if (conn.phase === Phase.awaitingHello || conn.phase === Phase.authenticating) {
      return this.error(ws, r, ErrorCode.unauthorized, 'send hello first');
    }
    if (conn.budget && !this.withinLimits(ws, conn, f.t, r)) return;
    switch (f.t) {
      case Command.refresh: return void this.refresh(ws, conn, (frame as FrameOf<'refresh'>).jwt, r);
      case Command.ack: {
        const { u } = frame as FrameOf<'ack'>;
        this.cluster.tell(userAddress(conn.user), { op: 'ack', device: conn.device, u });
        if (r !== undefined) this.send(ws, { t: ServerFrame.ok, r });
        return;
      }
      case Command.send: return this.sendMessage(ws, conn, frame as FrameOf<'send'>, r);
      case Command.typing:
        if (!this.takeTypingToken(conn)) return this.error(ws, r, ErrorCode.rate_limited, 'typing too often', TYPING_REFILL_MS);
        return this.command(ws, conn, threadAddress((frame as FrameOf<'typing'>).thread), frame as ClientCommand['frame'], r);
      case Command.history:
      case Command.read:
      case Command.groupAdd:
      case Command.groupRemove:
      case Command.groupLeave:
      case Command.groupTitle:
        return this.command(ws, conn, threadAddress((frame as { thread: string }).thread), frame as ClientCommand['frame'], r);
      case Command.groupCreate: {
        // With a cid the id is derived, so a retry after a lost answer reaches the same group.
        const cid = (frame as FrameOf<'group.create'>).cid;
        const group = cid === undefined ? newGroupId() : groupIdFor(conn.user, cid);
        return this.command(ws, conn, threadAddress(group), frame as ClientCommand['frame'], r);
      }
      case Command.inbox:
      case Command.threadGet:
      case Command.threadSet:
      case Command.contactsAdd:
      case Command.contactsRemove:
      case Command.contactsList:
      case Command.privacySet:
      case Command.block:
      case Command.unblock:
      case Command.blocksList:
      case Command.scheduleList:
      case Command.scheduleCancel:
        return this.command(ws, conn, userAddress(conn.user), frame as ClientCommand['frame'], r);
      case Command.schedule: {
        const f = frame as FrameOf<'schedule'>;
        const problem = checkSchedule(f);
        if (problem) return this.badFrame(ws, conn, r, `schedule: ${problem}`);
        if (bodyTooLarge(f.body)) return this.error(ws, r, ErrorCode.too_large, 'body is larger than 16 KiB');
        const go = () => this.command(ws, conn, userAddress(conn.user), frame as ClientCommand['frame'], r);
        // Checked when scheduled (the operator's verdict is about the words, not the hour): the job keeps what was accepted.
        if (this.sendHook) return this.checked(ws, conn, f, r, { user: conn.user, thread: f.thread ?? directThreadId(conn.user, f.to!) }, go);
        return go();
      }
      case Command.search: {
        if (this.config.search === 'off') return this.error(ws, r, ErrorCode.forbidden, 'search is turned off on this server');
        const problem = checkSearch(frame as FrameOf<'search'>);
        if (problem) return this.badFrame(ws, conn, r, `search: ${problem}`);
        return this.command(ws, conn, userAddress(conn.user), frame as ClientCommand['frame'], r);
      }
      case Command.userFind: return this.findUser(ws, (frame as FrameOf<'user.find'>).username, r);
      case Command.usersGet: return this.getUsers(ws, (frame as FrameOf<'users.get'>).users, r);
      case Command.presenceSub: return this.presenceSub(ws, conn, (frame as FrameOf<'presence.sub'>).users, r);
      case Command.presenceUnsub: return this.presenceUnsub(ws, conn, (frame as FrameOf<'presence.unsub'>).users, r);
      case Command.channelCreate:
        return this.command(ws, conn, channelAddress(channelIdFor((frame as FrameOf<'channel.create'>).name)), frame as ClientCommand['frame'], r);
      case Command.channelGet: {
        const f = frame as FrameOf<'channel.get'>;
        const problem = checkChannelGet(f);
        if (problem) return this.badFrame(ws, conn, r, `channel.get: ${problem}`);
        return this.command(ws, conn, channelAddress(f.channel ?? channelIdFor(f.name!)), frame as ClientCommand['frame'], r);
      }
      case Command.channelAdmin:
      case Command.channelHistory:
        return this.command(ws, conn, channelAddress((frame as { channel: string }).channel), frame as ClientCommand['frame'], r);
      case Command.channelPost: return this.post(ws, conn, frame as FrameOf<'channel.post'>, r);
      case Command.edit:
      case Command.delete:
      case Command.react:
      case Command.unreact:
      case Command.forward:
        return this.lifecycle(ws, conn, frame as ClientCommand['frame'], r);
      case Command.channelJoin: return this.channels.join(ws, conn, frame as FrameOf<'channel.join'>, r);
      case Command.channelLeave: return this.channels.leave(ws, conn, (frame as FrameOf<'channel.leave'>).channel, r);
      case Command.channelTrending: return this.command(ws, conn, TRENDING_ADDRESS, frame as ClientCommand['frame'], r);
      case Command.inviteCreate:
      case Command.inviteList:
      case Command.inviteRevoke:
      case Command.inviteJoin:
        return this.invite(ws, conn, f.t, frame as Record<string, unknown>, r);
    }
  }

  /** invite.* (src/invites/invite-desk.ts); a refused guess counts as a strike like other limits. */
  private invite(ws: Socket, conn: Conn, t: string, frame: Record<string, unknown>, r: number | undefined): void {
    const f = frame as { thread?: string; channel?: string; expires?: number; uses?: number; code: string };
    if (t === Command.inviteCreate || t === Command.inviteList) {
      const problem = checkInviteTarget(f);
      if (problem) return this.badFrame(ws, conn, r, `${t}: ${problem}`);
    }
    if (!this.takeAskSlot(ws, conn, r)) return;
    const who = { user: conn.user, ip: conn.ip, host: conn.host };
    const id = conn.id;
    const started = performance.now();
    const done = (result: string) => this.metrics.commands.record(t, result, (performance.now() - started) / 1000);
    (t === Command.inviteCreate ? this.invites.create(who, f) : t === Command.inviteList ? this.invites.list(who, f)
      : t === Command.inviteRevoke ? this.invites.revoke(who, f.code) : this.invites.join(who, f.code)).then(
      (result) => {
        conn.inflight--;
        done('ok');
        if (r !== undefined && this.sockets.has(id)) this.send(ws, { t: ServerFrame.ok, r, ...result });
      },
      (err: unknown) => {
        conn.inflight--;
        const e = err instanceof ProtocolError ? err : new ProtocolError(ErrorCode.internal, 'internal error', { cause: err });
        done(e.code);
        if (e.code === ErrorCode.internal) this.log.error({ err }, 'invite command failed');
        if (!this.sockets.has(id)) return;
        this.error(ws, r, e.code, e.message, e.retry);
        if (e.code === ErrorCode.rate_limited && conn.budget && this.limits.strike(conn.budget, e.retry ?? 0)) this.close(ws, CloseCode.rateLimited, 'rate limited: kept going after being told to wait');
      },
    );
  }

  /** One string per distinct Host header (a few in practice); beyond the bound, each socket keeps its own. */
  private internHost(host: string): string {
    const known = this.hosts.get(host);
    if (known !== undefined) return known;
    if (this.hosts.size < 64) this.hosts.set(host, host);
    return host;
  }

  private takeTypingToken(conn: Conn): boolean {
    const now = Date.now();
    conn.typingTokens = Math.min(TYPING_BURST, conn.typingTokens + (now - conn.typingAt) / TYPING_REFILL_MS);
    conn.typingAt = now;
    if (conn.typingTokens < 1) return false;
    conn.typingTokens -= 1;
    return true;
  }

  /** user.find (docs/protocol.md §4): the account behind a username, from the accounts table. */
  private findUser(ws: Socket, username: string, r: number | undefined): void {
    const found = this.accounts.find(username);
    if (!found) return this.error(ws, r, ErrorCode.not_found, 'no such user');
    if (r !== undefined) this.send(ws, { t: ServerFrame.ok, r, ...found });
  }

  /** users.get (docs/protocol.md §4): names for ids (a group's members, a message's sender), from the accounts table. */
  private getUsers(ws: Socket, users: string[], r: number | undefined): void {
    if (r !== undefined) this.send(ws, { t: ServerFrame.ok, r, users: this.accounts.lookup(users) });
  }

  /** Current presence of each user, then presence events on change until unsub or disconnect. */
  private presenceSub(ws: Socket, conn: Conn, users: string[], r: number | undefined): void {
    const watching = (conn.watching ??= new Set());
    const fresh = [...new Set(users)].filter((u) => !watching.has(u));
    if (watching.size + fresh.length > MAX_PRESENCE_SUBS) {
      return this.error(ws, r, ErrorCode.too_large, `a socket may watch at most ${MAX_PRESENCE_SUBS} users`);
    }
    const missing = fresh.find((u) => !this.storage.db.users.get(u));
    if (missing) return this.error(ws, r, ErrorCode.not_found, `no such user ${missing}`);
    if (!this.takeAskSlot(ws, conn, r)) return;
    for (const u of fresh) watching.add(u);
    // Each user actor registers the watcher and answers its state in the same turn, so no
    // change can fall between the answer and the first event.
    const id = conn.id;
    Promise.all(
      [...new Set(users)].map((u) => this.cluster.ask<PresenceState>(userAddress(u), { op: 'watch', gateway: this.cluster.router.gatewayPeer, conn: id, viewer: conn.user })),
    ).then(
      (states) => {
        conn.inflight--;
        if (r === undefined || !this.sockets.has(id)) return;
        this.send(ws, { t: ServerFrame.ok, r, presence: states.map((p) => ({ user: p.user, online: p.online, last: wireTime(p.last) })) });
      },
      (err: ProtocolError) => {
        conn.inflight--;
        if (this.sockets.has(id)) this.error(ws, r, err.code, err.message);
      },
    );
  }

  private presenceUnsub(ws: Socket, conn: Conn, users: string[], r: number | undefined): void {
    for (const u of users) {
      if (conn.watching?.delete(u)) this.cluster.tell(userAddress(u), { op: 'unwatch', gateway: this.cluster.router.gatewayPeer, conn: conn.id });
    }
    if (r !== undefined) this.send(ws, { t: ServerFrame.ok, r });
  }

  /** Has this device an attached socket here now? */
  isOnline(user: string, device: string): boolean {
    return this.onlineDevices.has(deviceKey(user, device));
  }

  private async hello(ws: Socket, conn: Conn, frame: FrameOf<'hello'>, r: number | undefined): Promise<void> {
    if (conn.phase !== Phase.awaitingHello) return this.badFrame(ws, conn, r, 'hello was already sent');
    const problem = checkHello(frame);
    if (problem) return this.badFrame(ws, conn, r, `hello: ${problem}`);
    conn.phase = Phase.authenticating;
    this.awaitingHello.delete(ws);
    let app: AppSession | undefined;
    if (frame.jwt !== undefined) {
      app = await this.signInWithJwt(ws, conn, frame.jwt);
      if (!app) return;
      conn.user = app.user;
      conn.device = app.device;
    } else {
      // In a cluster a miss waits for the directory once: the login may have been on another node.
      const session = this.accounts.authenticate(frame.token!) ?? (this.accounts.directory ? await this.accounts.authenticateFresh(frame.token!) : undefined);
      if (isClosed(conn)) return;
      if (!session) {
        this.close(ws, CloseCode.notAuthenticated, 'invalid or revoked token');
        return;
      }
      conn.user = session.user;
      conn.device = session.device;
    }
    let attached: AttachResult;
    try {
      attached = await this.cluster.ask<AttachResult>(userAddress(conn.user), {
        op: 'attach', device: conn.device, gateway: this.cluster.router.gatewayPeer, conn: conn.id, ...(app ? { appDevice: app.deviceName } : {}),
      });
    } catch (err) {
      // A timed-out attach may still run later (asks are not cancelled): undo it, in order.
      this.cluster.tell(userAddress(conn.user), { op: 'detach', device: conn.device, gateway: this.cluster.router.gatewayPeer, conn: conn.id });
      if (isClosed(conn)) return;
      // Banned through the server API: told why (forbidden), then closed with 4004.
      if (err instanceof ProtocolError && err.code === ErrorCode.forbidden) {
        this.error(ws, r, ErrorCode.forbidden, err.message);
        return this.close(ws, CloseCode.banned, err.message);
      }
      const code = err instanceof ProtocolError && err.code === ErrorCode.unauthorized ? CloseCode.notAuthenticated : CloseCode.goingAway;
      if (code === CloseCode.goingAway) this.log.error({ err }, 'attach failed');
      this.close(ws, code, code === CloseCode.notAuthenticated ? 'invalid or revoked token' : 'try again later');
      return;
    }
    if (isClosed(conn)) {
      // Closed while we waited: the close handler could not detach what was not attached yet.
      this.cluster.tell(userAddress(conn.user), { op: 'detach', device: conn.device, gateway: this.cluster.router.gatewayPeer, conn: conn.id });
      return;
    }
    // A cursor from another lineage of the logs means nothing here: start over from the oldest
    // entry. So does one above the head: the device saw events these logs never had (a restore
    // from an older backup keeps the epoch, but not those events).
    const reset = (frame.epoch !== undefined && frame.epoch !== this.epoch) || (frame.since !== undefined && frame.since > attached.head);
    conn.sentU = reset ? attached.first - 1 : (frame.since ?? Math.min(attached.cursor, attached.head));
    conn.phase = Phase.syncing;
    if (app) this.watchToken(conn, app.exp);
    const online = deviceKey(conn.user, conn.device);
    this.onlineDevices.set(online, (this.onlineDevices.get(online) ?? 0) + 1);
    const welcome: Record<string, unknown> = {
      t: ServerFrame.welcome, user: conn.user, device: conn.device, u: attached.head, heartbeat: this.config.heartbeatSeconds,
      epoch: this.epoch, first: attached.first,
    };
    if (reset) welcome.reset = true;
    if (r !== undefined) welcome.r = r;
    this.send(ws, welcome);
    this.catchUp(ws, conn);
  }

  /** hello {jwt}: the user and device of a valid application token, else the socket is closed (4001; 1001 when the JWKS is down). */
  private async signInWithJwt(ws: Socket, conn: Conn, jwt: string): Promise<AppSession | undefined> {
    try {
      const app = await this.jwt.signIn(jwt);
      return isClosed(conn) ? undefined : app;
    } catch (err) {
      if (isClosed(conn)) return undefined;
      if (err instanceof ProtocolError && err.code === ErrorCode.unauthorized) this.close(ws, CloseCode.notAuthenticated, err.message.slice(0, 120));
      else {
        if (!(err instanceof ProtocolError)) this.log.error({ err }, 'jwt sign-in failed');
        else this.log.warn({ msg: err.message }, 'jwt sign-in unavailable');
        this.close(ws, CloseCode.goingAway, 'try again later');
      }
      return undefined;
    }
  }

  /** Files a JWT socket for its refresh frame: min(AUTH_REFRESH_GRACE, half the remaining lifetime) before exp. */
  private watchToken(conn: Conn, exp: number): void {
    const now = Date.now();
    const lead = Math.min(this.config.authRefreshGraceMs, Math.max(0, (exp - now) / 2));
    const refreshAt = Math.max(now, exp - lead);
    if (conn.token) this.tokenDeadlines.remove(conn, conn.token.slot);
    conn.token = { exp, refreshAt, slot: this.tokenDeadlines.add(conn, refreshAt) };
  }

  /** Due JWT sockets: a `refresh` frame, then, at exp + grace without a new token, close 4001. */
  private sweepTokens(): void {
    this.tokenDeadlines.takeDue(Date.now(), (conn) => {
      const ws = this.sockets.get(conn.id);
      const token = conn.token;
      if (!ws || !token || isClosed(conn)) return;
      if (token.refreshAt !== 0) {
        token.refreshAt = 0;
        this.send(ws, { t: ServerFrame.refresh, exp: wireTime(token.exp) });
        token.slot = this.tokenDeadlines.add(conn, token.exp + TOKEN_CLOSE_GRACE_MS);
        return;
      }
      this.close(ws, CloseCode.notAuthenticated, 'token expired');
    });
  }

  /** refresh {jwt}: a new token of the same user and device moves the socket's expiry (ok {exp}); else unauthorized. */
  private async refresh(ws: Socket, conn: Conn, jwt: string, r: number | undefined): Promise<void> {
    if (!conn.token) return this.error(ws, r, ErrorCode.bad_frame, 'refresh: this socket was not opened with a jwt');
    if (!this.takeAskSlot(ws, conn, r)) return;
    const id = conn.id;
    let claims;
    try {
      claims = await this.jwt.sameSession(jwt, conn.user, conn.device);
    } catch (err) {
      conn.inflight--;
      if (!this.sockets.has(id)) return;
      if (!(err instanceof ProtocolError)) this.log.error({ err }, 'jwt refresh failed');
      if (err instanceof ProtocolError) this.error(ws, r, err.code, err.message);
      else this.error(ws, r, ErrorCode.internal, 'internal error');
      return;
    }
    conn.inflight--;
    if (!this.sockets.has(id) || isClosed(conn)) return;
    if (!claims) return this.error(ws, r, ErrorCode.unauthorized, 'refresh: the token is for another user or device');
    if (claims.exp > conn.token!.exp) this.watchToken(conn, claims.exp);
    if (r !== undefined) this.send(ws, { t: ServerFrame.ok, r, exp: wireTime(conn.token!.exp) });
  }

  /**
   * Asks the user actor (it owns the log) for the entries after sentU and writes them, again and
   * again, until the log's end (the first time: the replay ends with `synced`) or until the send
   * buffer fills (the drain event resumes). Live pushes wait meanwhile and are deduplicated by u.
   */
  private catchUp(ws: Socket, conn: Conn): void {
    if (conn.replaying) return; // the answer on its way continues from sentU
    conn.replaying = true;
    this.cluster.askWith<ReplayResult>(userAddress(conn.user), { op: 'replay', after: conn.sentU }, (err, page) => {
      conn.replaying = false;
      if (isClosed(conn)) return;
      if (err) {
        this.log.warn({ err, user: conn.user }, 'replay failed');
        this.close(ws, CloseCode.goingAway, 'try again later');
        return;
      }
      this.writeReplay(ws, conn, page!);
    });
  }

  private writeReplay(ws: Socket, conn: Conn, { frames, from, head }: ReplayResult): void {
    this.flushQueued(ws); // keep order: what this batch queued for it goes first
    // Retention deleted the entries after sentU: the log goes on at `from` (welcome.first told the client).
    if (from - 1 > conn.sentU) conn.sentU = Math.min(from - 1, head);
    let full = false;
    ws.cork(() => {
      for (let i = 0; i < frames.length; i++) {
        if (ws.getBufferedAmount() > this.config.slowConsumerBytes) {
          full = true;
          return;
        }
        this.writeNow(ws, frames[i]);
        conn.sentU = from + i;
      }
    });
    if (isClosed(conn)) return;
    if (full) {
      // The rest waits for the drain event.
      conn.lagging = true;
      this.metrics.counts.slowConsumerPauses++;
      return;
    }
    if (conn.sentU < head && frames.length > 0) return this.catchUp(ws, conn);
    conn.lagging = false;
    if (conn.phase === Phase.syncing) {
      conn.phase = Phase.live;
      this.send(ws, { t: ServerFrame.synced, u: conn.sentU });
    }
  }

  private sendMessage(ws: Socket, conn: Conn, frame: FrameOf<'send'>, r: number | undefined): void {
    const problem = checkSend(frame);
    if (problem) return this.badFrame(ws, conn, r, `send: ${problem}`);
    if (bodyTooLarge(frame.body)) return this.error(ws, r, ErrorCode.too_large, 'body is larger than 16 KiB');
    if (frame.media !== undefined && !this.attachMedia(ws, conn, frame, r)) return;
    const thread = frame.thread ?? directThreadId(conn.user, frame.to!);
    if (thread.length > 40) return this.error(ws, r, ErrorCode.not_found, 'no such user');
    if (conn.budget && !this.userMaySend(ws, conn, r)) return;
    const go = () => this.command(ws, conn, threadAddress(thread), frame as ClientCommand['frame'], r);
    if (this.sendHook) return this.checked(ws, conn, frame, r, { user: conn.user, thread }, go);
    go();
  }

  /**
   * The pre-send hook's verdict on a send or channel.post (src/webhooks/send-hook.ts), then `go`
   * with the body it may have rewritten; a refused message never reaches its actor.
   */
  private checked(ws: Socket, conn: Conn, frame: { body?: string; media?: unknown }, r: number | undefined, req: SendHookRequest, go: () => void): void {
    if (frame.body !== undefined) req.body = frame.body;
    if (frame.media !== undefined) req.media = frame.media as SendHookRequest['media'];
    const id = conn.id;
    this.sendHook!.check(conn, req, (v) => {
      if (!this.sockets.has(id)) return;
      if (v.kind === 'reject') return this.error(ws, r, ErrorCode.forbidden, v.reason);
      if (v.kind === 'unavailable') return this.error(ws, r, ErrorCode.unavailable, v.reason, v.retry);
      if (v.kind === 'rewrite') frame.body = v.body;
      go();
    });
  }

  /**
   * Replaces a frame's media id with the media object its message will carry (docs/protocol.md
   * §8.4); false after answering not_found for a media that is not the sender's or not uploaded.
   */
  private attachMedia(ws: Socket, conn: Conn, frame: { media?: unknown }, r: number | undefined): boolean {
    try {
      frame.media = this.media.attachable(conn.user, frame.media as string);
      return true;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.error(ws, r, err.code, err.message);
      return false;
    }
  }

  private post(ws: Socket, conn: Conn, frame: FrameOf<'channel.post'>, r: number | undefined): void {
    const problem = checkChannelPost(frame);
    if (problem) return this.badFrame(ws, conn, r, `channel.post: ${problem}`);
    if (bodyTooLarge(frame.body)) return this.error(ws, r, ErrorCode.too_large, 'body is larger than 16 KiB');
    if (frame.media !== undefined && !this.attachMedia(ws, conn, frame, r)) return;
    const wait = this.posts.take(conn.user);
    if (wait > 0) return this.error(ws, r, ErrorCode.rate_limited, `at most ${this.config.channelPostsPerSecond} channel posts a second`, wait);
    if (conn.budget && !this.userMaySend(ws, conn, r)) return;
    // Open channels take posts from joined users: the gateway is who knows what a socket joined.
    const go = () => this.command(ws, conn, channelAddress(frame.channel), frame as ClientCommand['frame'], r, this.channels.follows(conn, frame.channel));
    if (this.sendHook) return this.checked(ws, conn, frame, r, { user: conn.user, channel: frame.channel }, go);
    go();
  }

  /** edit, delete, react, unreact, forward (docs/protocol.md "Message lifecycle"): checks a schema cannot say, then the thread. */
  private lifecycle(ws: Socket, conn: Conn, frame: ClientCommand['frame'], r: number | undefined): void {
    if (frame.t === Command.forward) {
      const f = frame as unknown as FrameOf<'forward'>;
      const problem = checkForward(f);
      if (problem) return this.badFrame(ws, conn, r, `forward: ${problem}`);
      const thread = f.to.thread ?? directThreadId(conn.user, f.to.to!);
      if (thread.length > 40) return this.error(ws, r, ErrorCode.not_found, 'no such user');
      if (conn.budget && !this.userMaySend(ws, conn, r)) return;
      return this.command(ws, conn, threadAddress(thread), frame, r);
    }
    if (frame.t === Command.edit && bodyTooLarge(frame.body as string)) return this.error(ws, r, ErrorCode.too_large, 'body is larger than 16 KiB');
    const problem = frame.t === Command.react ? checkEmoji(frame.emoji as string) : null;
    if (problem) return this.badFrame(ws, conn, r, `react: ${problem}`);
    const go = () => this.command(ws, conn, threadAddress(frame.thread as string), frame, r, undefined, this.config.editWindowMs);
    // An edit is new words: the pre-send hook sees it like a send.
    if (frame.t === Command.edit && this.sendHook) return this.checked(ws, conn, frame as { body?: string }, r, { user: conn.user, thread: frame.thread as string }, go);
    go();
  }

  /** Routes a command to its actor; the actor's encoded answer goes to the socket unchanged. */
  private command(ws: Socket, conn: Conn, address: string, frame: ClientCommand['frame'], r: number | undefined, joined?: boolean, editWindowMs?: number): void {
    if (!this.takeAskSlot(ws, conn, r)) return;
    // Without r the field is left out, not sent as nil: no answer is owed on success (docs/protocol.md §2).
    const caller: ClientCommand['caller'] = r === undefined ? { user: conn.user, device: conn.device } : { user: conn.user, device: conn.device, r };
    const msg: ClientCommand = joined === undefined ? { op: 'cmd', caller, frame } : { op: 'cmd', caller, frame, joined };
    if (editWindowMs !== undefined) msg.editWindowMs = editWindowMs;
    const id = conn.id;
    const started = performance.now();
    this.cluster.askWith<Uint8Array | null>(address, msg, (err, answer) => {
      conn.inflight--;
      this.metrics.commands.record(frame.t, err ? err.code : answer ? (answerErrorCode(answer) ?? 'ok') : 'ok', (performance.now() - started) / 1000);
      if (!this.sockets.has(id)) return;
      if (err) {
        if (err.code === ErrorCode.internal) this.log.error({ err }, 'command failed');
        this.error(ws, r, err.code, err.message, err.retry);
      } else if (answer) this.write(ws, answer);
    });
  }

  /** RATE_LIMITS (src/limits/edge-limits.ts): the socket's command budget, and costly commands per user. */
  private withinLimits(ws: Socket, conn: Conn, t: string, r: number | undefined): boolean {
    const over = this.limits.socketCommand(conn.budget!, t === Command.send || t === Command.channelPost);
    if (over) return this.limited(ws, conn, r, over.limit, over.wait, over.limit === 'socket_sends' ? `at most ${this.config.rlSocketSends} sends a second on a socket` : `at most ${this.config.rlSocketCommands} commands a second on a socket`);
    if (COSTLY_COMMANDS.has(t)) {
      const wait = this.limits.userCostlyCommand(conn.user);
      if (wait > 0) return this.limited(ws, conn, r, 'user_costly', wait, `too many ${t} commands; retry later`);
    }
    return true;
  }

  private userMaySend(ws: Socket, conn: Conn, r: number | undefined): boolean {
    const wait = this.limits.userSend(conn.user);
    return wait === 0 || this.limited(ws, conn, r, 'user_sends', wait, 'too many messages from this user; retry later');
  }

  /** Answers rate_limited with retry; a socket that keeps going within its retry windows gets 4008. Always false. */
  private limited(ws: Socket, conn: Conn, r: number | undefined, limit: LimitName, wait: number, msg: string): false {
    this.limits.refused(limit);
    this.error(ws, r, ErrorCode.rate_limited, msg, wait);
    if (this.limits.strike(conn.budget!, wait)) this.close(ws, CloseCode.rateLimited, 'rate limited: kept going after being told to wait');
    return false;
  }

  /** Bounds what one socket can have waiting on actors; beyond it the client is told to wait. */
  private takeAskSlot(ws: Socket, conn: Conn, r: number | undefined): boolean {
    if (conn.inflight >= this.config.maxAsksPerSocket) {
      this.error(ws, r, ErrorCode.rate_limited, `more than ${this.config.maxAsksPerSocket} commands in flight`, INFLIGHT_RETRY_MS);
      return false;
    }
    conn.inflight++;
    return true;
  }

  /**
   * Bytes buffered for sockets that do not read are bounded across the process: past
   * MAX_BUFFERED_BYTES the largest buffers are cut off (4009); their devices replay on reconnect.
   */
  private boundBufferedBytes(): void {
    let total = 0;
    const big: [number, Socket][] = [];
    for (const ws of this.sockets.values()) {
      const n = ws.getBufferedAmount();
      total += n;
      if (n > this.config.slowConsumerBytes / 2) big.push([n, ws]);
    }
    if (total <= this.config.maxBufferedBytes) return;
    big.sort((a, b) => b[0] - a[0]);
    for (const [n, ws] of big) {
      if (total <= this.config.maxBufferedBytes) break;
      this.log.warn({ buffered: n, total }, 'closing a slow consumer: process-wide send buffers over the limit');
      this.close(ws, CloseCode.slowConsumer, 'slow consumer');
      total -= n;
    }
  }

  private onClose(ws: Socket): void {
    const conn = ws.getUserData();
    const attached = conn.phase === Phase.syncing || conn.phase === Phase.live;
    conn.phase = Phase.closed;
    this.sockets.delete(conn.id);
    this.awaitingHello.delete(ws);
    if (conn.token) this.tokenDeadlines.remove(conn, conn.token.slot);
    this.metrics.counts.connections--;
    if (conn.budget) this.limits.wsClosed(conn.ip);
    if (attached) {
      this.cluster.tell(userAddress(conn.user), { op: 'detach', device: conn.device, gateway: this.cluster.router.gatewayPeer, conn: conn.id });
      const online = deviceKey(conn.user, conn.device);
      const n = (this.onlineDevices.get(online) ?? 1) - 1;
      if (n > 0) this.onlineDevices.set(online, n);
      else this.onlineDevices.delete(online);
    }
    this.channels.closed(ws, conn);
    // Leave no watcher behind.
    if (conn.watching) {
      for (const u of conn.watching) this.cluster.tell(userAddress(u), { op: 'unwatch', gateway: this.cluster.router.gatewayPeer, conn: conn.id });
      conn.watching = null;
    }
  }

  private closeLateHellos(): void {
    const now = Date.now();
    for (const ws of this.awaitingHello) {
      if (ws.getUserData().helloDeadline <= now) this.close(ws, CloseCode.notAuthenticated, 'no hello in time');
    }
  }

  // ---- writing ----

  private badFrame(ws: Socket, conn: Conn, r: number | undefined, why: string): void {
    this.error(ws, r, ErrorCode.bad_frame, why);
    if (++conn.badFrames >= MAX_BAD_FRAMES) this.close(ws, CloseCode.protocolError, 'too many bad frames');
  }

  private error(ws: Socket, r: number | undefined, code: string, msg: string, retry?: number): void {
    const frame: Record<string, unknown> = { t: ServerFrame.err, code, msg };
    if (r !== undefined) frame.r = r;
    if (retry !== undefined) frame.retry = retry;
    this.send(ws, frame);
  }

  private send(ws: Socket, frame: object): void {
    this.write(ws, encodeFrame(frame));
  }

  private write(ws: Socket, bytes: Uint8Array): void {
    if (this.batching) this.queue(ws, bytes, 0);
    else this.writeNow(ws, bytes);
  }

  private queue(ws: Socket, bytes: Uint8Array, u: number): void {
    const q = this.queued.get(ws);
    if (q) {
      q.bytes.push(bytes);
      q.u.push(u);
    } else this.queued.set(ws, { bytes: [bytes], u: [u] });
  }

  private writeNow(ws: Socket, bytes: Uint8Array): void {
    if (ws.getUserData().phase === Phase.closed) return;
    ws.send(bytes, true);
    this.metrics.counts.framesOut++;
    // Pushes pause at slowConsumerBytes; what still piles up is answers to a client that keeps
    // asking without reading. Past 4× the pause point it is cut off (it replays on reconnect).
    if (ws.getBufferedAmount() > this.config.slowConsumerBytes * 4) this.close(ws, CloseCode.slowConsumer, 'slow consumer');
  }

  /** Sends kick {code, reason} and closes. */
  private close(ws: Socket, code: number, reason: string): void {
    const conn = ws.getUserData();
    if (conn.phase === Phase.closed) return;
    this.flushQueued(ws); // what was meant for it before the kick still goes first
    ws.send(encodeFrame({ t: ServerFrame.kick, code, reason }), true);
    ws.end(code, reason);
  }
}

/** Commands that cost a read of many records, limited per user (RL_COSTLY_PER_USER). */
const COSTLY_COMMANDS: ReadonlySet<string> = new Set([Command.presenceSub, Command.history, Command.inbox, Command.userFind, Command.usersGet, Command.search]);

const deviceKey = (user: string, device: string) => `${user}\u0000${device}`;
