// The trending actor: one per process (`trending:all`, placed by the ring like any actor), fed by
// every channel actor with one `activity` tell per channel per batch, answering channel.trending
// from TrendingCounts' maintained top lists in O(k). Its counts live in memory only: trending is
// about the last hour or day, and a restart starts the windows empty (docs/architecture.md).
import { Command, ErrorCode } from '../protocol/codes.js';
import { ProtocolError, fail } from '../protocol/errors.js';
import type { Actor } from './actor.js';
import type { ActorMessage } from './envelope.js';
import type { ChannelActivity, ClientCommand } from './messages.js';
import { TrendingCounts, type TrendingRow, type TrendingWindow } from './trending-counts.js';

export const TRENDING_ADDRESS = 'trending:all';

export class TrendingActor implements Actor {
  private readonly counts = new TrendingCounts();

  /** Never dropped while it counts anything (the counts are not stored). */
  canPassivate(): boolean {
    return this.counts.size === 0;
  }

  receive(message: ActorMessage): unknown {
    const msg = message as ChannelActivity | ClientCommand;
    if (msg.op === 'activity') {
      const a = msg as ChannelActivity;
      this.counts.add(a.channel, a.name, a.title, { posts: a.posts, joins: a.joins }, Date.now());
      return undefined;
    }
    if (msg.op === 'cmd' && (msg as ClientCommand).frame.t === Command.channelTrending) {
      const { frame } = msg as ClientCommand;
      return { channels: this.top(frame.window as TrendingWindow, (frame.limit as number | undefined) ?? 10) };
    }
    throw new ProtocolError(ErrorCode.bad_frame, `trending actor: unknown op ${msg.op}`);
  }

  private top(window: TrendingWindow, limit: number): TrendingRow[] {
    if (window !== '1h' && window !== '24h') fail(ErrorCode.bad_frame, 'window must be 1h or 24h');
    return this.counts.top(window, limit, Date.now());
  }
}
