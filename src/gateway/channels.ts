// Channel fan-out at the gateway (docs/protocol.md §8.3): which of our sockets follow which
// channel, joins with replay, and live posts. A channel actor sends this gateway one publish per
// batch of posts; each post goes to the channel's uWS topic, so the per-socket cost is uWS's own.
// A socket is subscribed to the topic only once it has every post up to the seq the actor
// answered: publishes and answers from one actor arrive in order, so nothing falls between.
import type { Logger } from 'pino';
import type { ShardCluster } from '../../actors/cluster.js';
import type { Follow, FollowResult } from '../../actors/messages.js';
import { channelAddress } from '../../actors/router.js';
import { ErrorCode, ServerFrame } from '../../protocol/codes.js';
import type { ProtocolError } from '../../protocol/errors.js';
import { MAX_CHANNELS_PER_SOCKET, type FrameOf } from '../../protocol/validate.js';
import { decodeFrame } from '../../protocol/wire.js';
import type { Metrics } from '../metrics.js';
import { EventStream } from './event-stream.js';
import type { UWS } from './uws.js';

const enum State { joining, catchingUp, live }

/** One socket's following of one channel. */
export interface Following {
  state: State;
  /** newest seq written to the socket (replay), or known to be in its buffer (live) */
  sentSeq: number;
  /** the actor counted it (its follow was answered): a leave must uncount it */
  counted: boolean;
  /** left while its follow was on the way: uncount when the answer comes */
  left: boolean;
  /** the join's request number, answered once the socket is live */
  r: number | undefined;
  reset: boolean;
}

/** What the channel hub needs of a socket's state (kept in the gateway's per-socket record). */
export interface ChannelMember {
  id: number;
  user: string;
  /** channels this socket follows; null until it joins any */
  channels: Map<string, Following> | null;
}

type Socket = UWS.WebSocket<ChannelMember>;

/** The gateway's writing primitives the hub uses. */
export interface SocketWriter {
  isOpen(ws: Socket): boolean;
  send(ws: Socket, frame: object): void;
  writeNow(ws: Socket, bytes: Uint8Array): void;
  error(ws: Socket, r: number | undefined, code: string, msg: string, retry?: number): void;
  /** A command slot for this socket (false: refused, already answered rate_limited); release with `done`. */
  takeAskSlot(ws: Socket, r: number | undefined): boolean;
  releaseAskSlot(ws: Socket): void;
  close(ws: Socket, code: number, reason: string): void;
}

/** A channel some of our sockets follow. */
interface LocalChannel {
  topic: string;
  /** newest seq published here, or answered to a follow (whichever is newer) */
  lastSeq: number;
  sockets: Set<Socket>;
  /** Server-Sent Events viewers (live and catching up) */
  viewers: Set<EventStream>;
}

export class ChannelHub {
  private readonly channels = new Map<string, LocalChannel>();
  /** Channels published to since the last lag check. */
  private readonly published = new Set<LocalChannel>();
  private lagCheck: NodeJS.Timeout | null = null;
  private app: UWS.TemplatedApp | null = null;
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    private readonly cluster: ShardCluster,
    private readonly writer: SocketWriter,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly epoch: string,
    private readonly slowConsumerBytes: number,
    keepAliveMs: number,
  ) {
    this.keepAlive = setInterval(() => {
      for (const local of this.channels.values()) for (const v of local.viewers) v.keepAlive();
    }, keepAliveMs);
    this.keepAlive.unref();
  }

  /** The uWS app whose topics carry live posts. */
  attach(app: UWS.TemplatedApp): void {
    this.app = app;
  }

  join(ws: Socket, conn: ChannelMember, frame: FrameOf<'channel.join'>, r: number | undefined): void {
    const channels = (conn.channels ??= new Map());
    const existing = channels.get(frame.channel);
    if (existing) {
      if (r !== undefined) this.writer.send(ws, { t: ServerFrame.ok, r, seq: existing.sentSeq, epoch: this.epoch });
      return;
    }
    if (channels.size >= MAX_CHANNELS_PER_SOCKET) {
      return this.writer.error(ws, r, ErrorCode.too_large, `a socket may join at most ${MAX_CHANNELS_PER_SOCKET} channels`);
    }
    if (!this.writer.takeAskSlot(ws, r)) return;
    // A cursor from another lineage of the logs means nothing here: join as if without one.
    const otherEpoch = frame.epoch !== undefined && frame.epoch !== this.epoch;
    const since = otherEpoch ? undefined : frame.since;
    const f: Following = { state: State.joining, sentSeq: since ?? 0, counted: false, left: false, r, reset: otherEpoch };
    channels.set(frame.channel, f);
    const channel = frame.channel;
    this.cluster.askWith<FollowResult>(channelAddress(channel), followOf(this.cluster.router.gatewayPeer, since), (err, answer) => {
      this.writer.releaseAskSlot(ws);
      if (err) return this.joinFailed(ws, conn, channel, f, err);
      f.counted = true;
      if (f.left || !this.writer.isOpen(ws)) return this.uncount(channel);
      const local = this.local(channel);
      local.sockets.add(ws);
      if (answer!.head > local.lastSeq) local.lastSeq = answer!.head;
      if (since === undefined || answer!.reset) {
        f.reset ||= answer!.reset === true;
        f.sentSeq = answer!.head;
        return this.goLive(ws, channel, local, f);
      }
      f.state = State.catchingUp;
      this.writeReplay(ws, conn, channel, f, answer!);
    });
  }

  leave(ws: Socket, conn: ChannelMember, channel: string, r: number | undefined): void {
    const f = conn.channels?.get(channel);
    if (f) this.unfollow(ws, conn, channel, f);
    if (r !== undefined) this.writer.send(ws, { t: ServerFrame.ok, r });
  }

  /** Does this socket follow the channel (for open channels, whose joined users may post)? */
  follows(conn: ChannelMember, channel: string): boolean {
    return conn.channels?.has(channel) === true;
  }

  /** The socket closed: every channel it followed forgets it. */
  closed(ws: Socket, conn: ChannelMember): void {
    if (!conn.channels) return;
    for (const [channel, f] of conn.channels) this.unfollow(ws, conn, channel, f);
    conn.channels = null;
  }

  /** The socket's send buffer drained: catch up the channels it fell behind in. */
  drained(ws: Socket, conn: ChannelMember): void {
    if (!conn.channels) return;
    for (const [channel, f] of conn.channels) {
      if (f.state === State.catchingUp && !f.left) this.nextPage(ws, conn, channel, f);
    }
  }

  /** A channel actor's posts of one batch, for our subscribers. */
  publish(channel: string, firstSeq: number, frames: Uint8Array[]): void {
    const local = this.channels.get(channel);
    if (!local || !this.app) return;
    const last = firstSeq + frames.length - 1;
    if (last <= local.lastSeq) return; // already known from a follow answer's replay
    if (firstSeq > local.lastSeq + 1 && local.lastSeq > 0) this.log.warn({ channel, lastSeq: local.lastSeq, firstSeq }, 'channel publish out of sequence');
    const from = Math.max(0, local.lastSeq + 1 - firstSeq);
    for (let i = from; i < frames.length; i++) this.app.publish(local.topic, frames[i], true);
    // uWS's own count of the topic's sockets (lagging ones left the topic and are caught up from the log).
    this.metrics.counts.channelDeliveries += (frames.length - from) * this.app.numSubscribers(local.topic);
    if (local.viewers.size > 0) {
      // Encoded as SSE once per batch, written to every live viewer.
      let text = '';
      for (let i = Math.max(0, local.lastSeq + 1 - firstSeq); i < frames.length; i++) text += sseEvent(frames[i]);
      for (const v of local.viewers) {
        if (!v.live) continue;
        v.write(text);
        v.sentSeq = last;
        this.metrics.counts.sseEventsOut += frames.length;
      }
    }
    local.lastSeq = last;
    this.metrics.counts.channelPublishes += frames.length;
    this.published.add(local);
    this.lagCheck ??= setTimeout(this.checkLag, LAG_CHECK_MS);
  }

  /** Shard `shard` restarted: its channel actors forgot us. Their sockets reconnect and join again. */
  shardRestarted(shard: number, closeCode: number): void {
    for (const [channel, local] of [...this.channels]) {
      if (this.cluster.router.peerOf(channelAddress(channel)) !== shard) continue;
      for (const ws of [...local.sockets]) this.writer.close(ws, closeCode, 'service restart, reconnect');
      for (const v of [...local.viewers]) v.end();
      this.channels.delete(channel);
    }
  }

  /**
   * A Server-Sent Events viewer of `channel` from after `since` (or from now): 404 for a channel
   * that does not exist; otherwise the replay, then live posts, like a joining socket.
   */
  openStream(res: UWS.HttpResponse, channel: string, since: number | undefined, onError: (err: ProtocolError) => void): void {
    const stream = new EventStream(res, this.slowConsumerBytes, (s, overflowed) => {
      if (overflowed) this.metrics.counts.sseDisconnects++;
      const local = this.channels.get(channel);
      if (local?.viewers.delete(s)) {
        this.metrics.counts.sseViewers--;
        this.forgetIfEmpty(channel, local);
      }
      if (counted) this.uncount(channel);
    });
    let counted = false;
    this.cluster.askWith<FollowResult>(channelAddress(channel), followOf(this.cluster.router.gatewayPeer, since), (err, answer) => {
      if (err) {
        if (err.code === ErrorCode.unavailable) this.uncount(channel);
        if (!stream.gone) onError(err);
        return;
      }
      if (stream.gone) return this.uncount(channel);
      counted = true;
      const local = this.local(channel);
      local.viewers.add(stream);
      this.metrics.counts.sseViewers++;
      if (answer!.head > local.lastSeq) local.lastSeq = answer!.head;
      stream.begin();
      stream.sentSeq = since === undefined || answer!.reset ? answer!.head : since;
      this.streamReplay(channel, stream, answer!);
    });
  }

  private streamReplay(channel: string, stream: EventStream, { head, frames, from }: FollowResult): void {
    if (stream.gone) return;
    // Retention deleted the posts after since: the page starts at the oldest one kept.
    if (from !== undefined && from - 1 > stream.sentSeq) stream.sentSeq = from - 1;
    if (frames.length > 0) {
      let text = '';
      for (const frame of frames) text += sseEvent(frame);
      stream.write(text);
      stream.sentSeq += frames.length;
      this.metrics.counts.sseEventsOut += frames.length;
    }
    if (stream.sentSeq >= head) {
      stream.live = true;
      return;
    }
    if (frames.length === 0) return stream.end();
    this.cluster.askWith<FollowResult>(channelAddress(channel), { op: 'page', after: stream.sentSeq }, (err, answer) => {
      if (err) return stream.end();
      this.streamReplay(channel, stream, answer!);
    });
  }

  stop(): void {
    clearInterval(this.keepAlive);
    for (const local of this.channels.values()) for (const v of [...local.viewers]) v.end();
    if (this.lagCheck) clearTimeout(this.lagCheck);
    this.lagCheck = null;
  }

  // ---- internals ----

  private local(channel: string): LocalChannel {
    let local = this.channels.get(channel);
    if (!local) {
      local = { topic: topicOf(channel), lastSeq: 0, sockets: new Set(), viewers: new Set() };
      this.channels.set(channel, local);
    }
    return local;
  }

  private joinFailed(ws: Socket, conn: ChannelMember, channel: string, f: Following, err: ProtocolError): void {
    // A timed-out follow may still run later (asks are not cancelled): undo it, in order.
    if (err.code === ErrorCode.unavailable) this.uncount(channel);
    if (conn.channels?.get(channel) === f) conn.channels.delete(channel);
    if (!f.left && this.writer.isOpen(ws)) this.writer.error(ws, f.r, err.code, err.message, err.retry);
  }

  private unfollow(ws: Socket, conn: ChannelMember, channel: string, f: Following): void {
    conn.channels?.delete(channel);
    f.left = true;
    if (!f.counted) return; // its follow answer uncounts it
    f.counted = false;
    const local = this.channels.get(channel);
    if (local) {
      local.sockets.delete(ws);
      if (f.state === State.live && this.writer.isOpen(ws)) ws.unsubscribe(local.topic);
      this.forgetIfEmpty(channel, local);
    }
    this.uncount(channel);
  }

  private forgetIfEmpty(channel: string, local: LocalChannel): void {
    if (local.sockets.size === 0 && local.viewers.size === 0) this.channels.delete(channel);
  }

  private uncount(channel: string): void {
    this.cluster.tell(channelAddress(channel), { op: 'unfollow', gateway: this.cluster.router.gatewayPeer, n: 1 });
  }

  /** Writes a replay page; continues with the next page, waits for drain, or goes live. */
  private writeReplay(ws: Socket, conn: ChannelMember, channel: string, f: Following, { head, frames, from }: FollowResult): void {
    if (f.left || !this.writer.isOpen(ws)) return;
    // Retention deleted the posts after since: the page starts at the oldest one kept.
    if (from !== undefined && from - 1 > f.sentSeq) f.sentSeq = from - 1;
    let full = false;
    ws.cork(() => {
      for (const frame of frames) {
        if (ws.getBufferedAmount() > this.slowConsumerBytes) {
          full = true;
          return;
        }
        this.writer.writeNow(ws, frame);
        f.sentSeq++;
      }
    });
    if (full || !this.writer.isOpen(ws)) return; // the drain event goes on
    if (f.sentSeq >= head) return this.goLive(ws, channel, this.local(channel), f);
    if (frames.length === 0) {
      // The actor had posts up to head but gave none: never loop on it; the client rejoins with since.
      this.log.error({ channel, sentSeq: f.sentSeq, head }, 'channel replay page came back empty');
      return this.writer.close(ws, 1001, 'try again later');
    }
    this.nextPage(ws, conn, channel, f);
  }

  private nextPage(ws: Socket, conn: ChannelMember, channel: string, f: Following): void {
    this.cluster.askWith<FollowResult>(channelAddress(channel), { op: 'page', after: f.sentSeq }, (err, answer) => {
      if (f.left || !this.writer.isOpen(ws)) return;
      if (err) {
        this.log.warn({ err, channel }, 'channel catch-up failed');
        return this.writer.close(ws, 1001, 'try again later');
      }
      this.writeReplay(ws, conn, channel, f, answer!);
    });
  }

  /** Subscribes the socket to the topic: it has every post up to the newest published here. */
  private goLive(ws: Socket, channel: string, local: LocalChannel, f: Following): void {
    f.state = State.live;
    ws.subscribe(local.topic);
    if (f.r !== undefined) {
      const ok: Record<string, unknown> = { t: ServerFrame.ok, r: f.r, seq: f.sentSeq, epoch: this.epoch };
      if (f.reset) ok.reset = true;
      this.writer.send(ws, ok);
      f.r = undefined;
    }
  }

  /**
   * Sockets whose send buffer passed the slow-consumer limit leave the live topic: they have every
   * post up to the channel's lastSeq in their buffer, and are caught up from the log on drain.
   */
  private readonly checkLag = (): void => {
    this.lagCheck = null;
    for (const local of this.published) {
      for (const ws of local.sockets) {
        if (ws.getBufferedAmount() <= this.slowConsumerBytes) continue;
        const conn = ws.getUserData();
        for (const [channel, f] of conn.channels ?? []) {
          if (f.state !== State.live) continue;
          const other = this.channels.get(channel);
          if (!other) continue;
          ws.unsubscribe(other.topic);
          f.state = State.catchingUp;
          f.sentSeq = other.lastSeq;
          this.metrics.counts.channelLagPauses++;
        }
      }
    }
    this.published.clear();
  };
}

/** How long after a publish the subscribers' send buffers are looked at. */
const LAG_CHECK_MS = 50;

const followOf = (gateway: number, since: number | undefined): Follow =>
  since === undefined ? { op: 'follow', gateway } : { op: 'follow', gateway, since };

/** A post as one SSE event: its seq as the id, the cmsg fields without `t` as JSON. */
function sseEvent(frame: Uint8Array): string {
  const { t: _t, ...post } = decodeFrame(frame) as { t: string; seq: number };
  return `id: ${post.seq}\ndata: ${JSON.stringify(post)}\n\n`;
}

/** The uWS topic of a channel (ids have no `/`, `+` or `#`, uWS's topic syntax). */
const topicOf = (channel: string): string => `c/${channel}`;
