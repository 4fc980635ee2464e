// Invite links at the edge (docs/protocol.md "Invite links"): the gateway's side of invite.create,
// invite.revoke, invite.list, invite.join and GET /i/:code. The records live with the actor that
// owns each invite's target (actors/invite-book.ts); here a code is looked up in the `invites`
// table only to find that actor, and every lookup is counted against RL_INVITE_GUESS until it
// turns out to name a live invite.
import type { ShardCluster } from '../../actors/cluster.js';
import type { InviteCreated, InviteInfo, InviteJoined, InviteOp, InviteView } from '../../actors/messages.js';
import { channelAddress, threadAddress } from '../../actors/router.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { INVITE_CODE_PATTERN } from '../../protocol/validate.js';
import { wireTime } from '../../protocol/wire.js';
import type { InviteRecord, StorageEnv } from '../../storage/env.js';
import type { Config } from '../config.js';
import type { EdgeLimits } from '../limits/edge-limits.js';

const CODE_RE = new RegExp(INVITE_CODE_PATTERN);

/** Who asks: the signed-in user (absent for GET /i/:code), their address, and the Host they came to. */
export interface InviteAsker { user?: string; ip: string; host: string }

export class InviteDesk {
  constructor(
    private readonly config: Config,
    private readonly cluster: ShardCluster,
    private readonly storage: StorageEnv,
    private readonly limits: EdgeLimits,
  ) {}

  /** The link of a code: PUBLIC_URL (as for media URLs), else the Host the request came to. */
  url(code: string, host: string): string {
    return `${this.config.publicUrl || `http://${host || '127.0.0.1'}`}/i/${code}`;
  }

  async create(who: InviteAsker, f: { thread?: string; channel?: string; expires?: number; uses?: number }): Promise<object> {
    const op: InviteOp = { op: 'invite', action: 'create', caller: { user: who.user!, device: '' } };
    if (f.expires !== undefined) op.expires = f.expires;
    if (f.uses !== undefined) op.uses = f.uses;
    const made = await this.cluster.ask<InviteCreated>(addressOf(f), op);
    return { ...made, url: this.url(made.code, who.host), expires: wireTime(made.expires) };
  }

  async list(who: InviteAsker, f: { thread?: string; channel?: string }): Promise<object> {
    const { invites } = await this.cluster.ask<{ invites: InviteView[] }>(addressOf(f), { op: 'invite', action: 'list', caller: { user: who.user!, device: '' } });
    return { invites: invites.map((i) => ({ ...i, url: this.url(i.code, who.host), created: wireTime(i.created), expires: wireTime(i.expires) })) };
  }

  async revoke(who: InviteAsker, code: string): Promise<object> {
    await this.lookup(who, code, 'revoke');
    return {};
  }

  /** groups: the caller is a member once this resolves; channels: the client goes on with channel.join. */
  async join(who: InviteAsker, code: string): Promise<object> {
    const { kind, target, title, already } = await this.lookup<InviteJoined>(who, code, 'join');
    return kind === 'group' ? { kind, thread: target, title, already } : { kind, channel: target, title, already };
  }

  /** GET /i/:code: what the invite is for (plain numbers: JSON). */
  async info(who: InviteAsker, code: string): Promise<InviteInfo> {
    return this.lookup<InviteInfo>(who, code, 'info');
  }

  /**
   * Asks the actor owning the code's target. Counted as a failed guess unless the actor answers:
   * unknown codes never reach an actor; expired, revoked and used-up ones come back not_found.
   */
  private async lookup<T>(who: InviteAsker, code: string, action: InviteOp['action']): Promise<T> {
    this.limits.inviteLookup(who.ip, who.user);
    const record: InviteRecord | undefined = CODE_RE.test(code) ? this.storage.db.invites.get(code) : undefined;
    if (!record) throw new ProtocolError(ErrorCode.not_found, 'no such invite, or it expired or was used up');
    const op: InviteOp = { op: 'invite', action, code };
    if (who.user !== undefined) op.caller = { user: who.user, device: '' };
    const answer = await this.cluster.ask<T>(record.kind === 'group' ? threadAddress(record.target) : channelAddress(record.target), op);
    this.limits.inviteFound(who.ip, who.user);
    return answer;
  }
}

function addressOf(f: { thread?: string; channel?: string }): string {
  return f.thread !== undefined ? threadAddress(f.thread) : channelAddress(f.channel!);
}
