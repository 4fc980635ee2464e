// Envelopes: the units batched between threads. Arrays, not objects, because thousands of them
// are packed per tick; the first element is the kind.

export const Kind = {
  /** fire and forget to an actor: [Kind.tell, to, msg] */
  tell: 0,
  /**
   * request to an actor: [Kind.ask, to, msg, replyTo (the asker's PeerId), id]; answered by
   * exactly one reply, from the transport itself when it cannot deliver the ask (actors/transport.ts)
   */
  ask: 1,
  /** answer to an ask: [Kind.reply, id, value, errorCode?, errorMessage?] */
  reply: 2,
  /** encoded frame for gateway sockets: [Kind.push, conns, bytes, u] (u = 0: ephemeral event) */
  push: 3,
  /** close a gateway socket: [Kind.kick, conn, closeCode, reason] */
  kick: 4,
  /** one message to many actors of the receiving thread: [Kind.tellMany, to[], msg] (fan-out) */
  tellMany: 5,
  /**
   * a channel's new posts for the gateway's subscribers: [Kind.publish, channel, firstSeq, frames]
   * (frames[i] is the encoded cmsg of seq firstSeq + i; one envelope per channel per batch)
   */
  publish: 6,
} as const;

export type TellEnvelope = [typeof Kind.tell, string, ActorMessage];
export type AskEnvelope = [typeof Kind.ask, string, ActorMessage, number, number];
export type ReplyEnvelope = [typeof Kind.reply, number, unknown, string?, string?];
export type PushEnvelope = [typeof Kind.push, number | number[], Uint8Array, number];
export type KickEnvelope = [typeof Kind.kick, number, number, string];
export type TellManyEnvelope = [typeof Kind.tellMany, string[], ActorMessage];
export type PublishEnvelope = [typeof Kind.publish, string, number, Uint8Array[]];
export type Envelope = TellEnvelope | AskEnvelope | ReplyEnvelope | PushEnvelope | KickEnvelope | TellManyEnvelope | PublishEnvelope;

/** Every actor message is a plain object with an `op`; see actors/messages.ts. */
export interface ActorMessage {
  op: string;
  [field: string]: unknown;
}
