// The user actor: the user's event log (u), the cursors of the user's devices, and the user's
// online sockets. Every durable event for the user is appended here, then pushed live.
import { CloseCode, ErrorCode, ServerFrame } from '../src/protocol/codes.js';
import { encodeFrame, wireTime } from '../src/protocol/wire.js';
import type { InboxRow } from '../storage/env.js';
import { userLogHead } from '../storage/user-log.js';
import type { Actor, ActorContext } from './actor.js';
import type { ActorMessage } from './envelope.js';
import { ProtocolError } from '../src/protocol/errors.js';
import type { Ack, Attach, AttachResult, Deliver, Detach, Revoke, UserActorMessage } from './messages.js';
import { threadAddress } from './router.js';

interface Socket { gateway: number; conn: number; device: string }

export class UserActor implements Actor {
  private head: number;
  private readonly sockets: Socket[] = [];
  private readonly inbox = new Map<string, InboxRow>();
  private readonly cursors = new Map<string, number>();

  constructor(private readonly user: string, private readonly ctx: ActorContext) {
    this.head = userLogHead(ctx.storage, user);
  }

  canPassivate(): boolean {
    return this.sockets.length === 0;
  }

  receive(message: ActorMessage): unknown {
    const msg = message as UserActorMessage;
    switch (msg.op) {
      case 'deliver': return this.deliver(msg);
      case 'attach': return this.attach(msg);
      case 'detach': return this.detach(msg);
      case 'ack': return this.ack(msg);
      case 'revoke': return this.revoke(msg);
      default: throw new ProtocolError(ErrorCode.bad_frame, `user actor: unknown op ${msg.op}`);
    }
  }

  /** Appends a thread message to the log once (by thread + seq) and pushes it to online devices. */
  private deliver({ thread, msg }: Deliver): void {
    const row = this.inboxRow(thread);
    if (msg.seq <= row.lastSeq) {
      // A re-delivery after a restart: already in the log, only confirm again.
      this.ctx.tell(threadAddress(thread), { op: 'delivered', user: this.user, seq: msg.seq });
      return;
    }
    const u = ++this.head;
    const frame: Record<string, unknown> = {
      t: ServerFrame.msg, u, thread, seq: msg.seq, id: msg.id, from: msg.from, device: msg.device, ts: wireTime(msg.ts),
    };
    if (msg.body !== undefined) frame.body = msg.body;
    if (msg.media !== undefined) frame.media = msg.media;
    if (msg.reply !== undefined) frame.reply = msg.reply;
    if (msg.cid !== undefined && msg.from === this.user) frame.cid = msg.cid;
    const bytes = encodeFrame(frame);
    this.ctx.put(this.ctx.storage.db.userLog, [this.user, u], bytes as Buffer);
    const updated: InboxRow = { ...row, lastSeq: msg.seq, updated: msg.ts };
    this.inbox.set(thread, updated);
    this.ctx.put(this.ctx.storage.db.inbox, [this.user, thread], updated);
    this.pushToAll(bytes, u);
    this.ctx.tell(threadAddress(thread), { op: 'delivered', user: this.user, seq: msg.seq });
  }

  private attach({ device, gateway, conn }: Attach): AttachResult {
    if (!this.ctx.storage.db.devices.get([this.user, device])) {
      throw new ProtocolError(ErrorCode.unauthorized, 'session revoked');
    }
    this.sockets.push({ gateway, conn, device });
    return { head: this.head, cursor: this.cursorOf(device) };
  }

  private detach({ gateway, conn, device }: Detach): void {
    const i = this.sockets.findIndex((s) => s.gateway === gateway && s.conn === conn);
    if (i < 0) return;
    this.sockets.splice(i, 1);
    this.saveCursor(device, this.cursorOf(device));
  }

  private ack({ device, u }: Ack): void {
    // A device cannot have stored what does not exist yet.
    const upTo = Math.min(u, this.head);
    if (upTo > this.cursorOf(device)) this.saveCursor(device, upTo);
  }

  private revoke({ device }: Revoke): void {
    for (const s of this.sockets) {
      if (s.device === device) this.ctx.kick(s.gateway, s.conn, CloseCode.revoked, 'session revoked');
    }
    this.cursors.delete(device);
    this.ctx.remove(this.ctx.storage.db.cursors, [this.user, device]);
  }

  private pushToAll(bytes: Uint8Array, u: number): void {
    const n = this.sockets.length;
    if (n === 0) return;
    if (n === 1) {
      this.ctx.push(this.sockets[0].gateway, this.sockets[0].conn, bytes, u);
      return;
    }
    // One push per gateway, listing its sockets: the bytes cross the thread boundary once.
    const byGateway = new Map<number, number[]>();
    for (const s of this.sockets) {
      const list = byGateway.get(s.gateway);
      if (list) list.push(s.conn);
      else byGateway.set(s.gateway, [s.conn]);
    }
    for (const [gateway, conns] of byGateway) this.ctx.push(gateway, conns, bytes, u);
  }

  private inboxRow(thread: string): InboxRow {
    let row = this.inbox.get(thread);
    if (!row) {
      row = this.ctx.storage.db.inbox.get([this.user, thread]) ?? { thread, lastSeq: 0, updated: 0 };
      this.inbox.set(thread, row);
    }
    return row;
  }

  private cursorOf(device: string): number {
    let u = this.cursors.get(device);
    if (u === undefined) {
      u = this.ctx.storage.db.cursors.get([this.user, device])?.u ?? 0;
      this.cursors.set(device, u);
    }
    return u;
  }

  private saveCursor(device: string, u: number): void {
    this.cursors.set(device, u);
    this.ctx.put(this.ctx.storage.db.cursors, [this.user, device], { u, lastSeen: Date.now() });
  }
}
