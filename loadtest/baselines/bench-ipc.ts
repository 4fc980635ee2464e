// Control messages between bench.ts (parent) and baselines/bench-generator.ts (forked children).
// Small JSON over the fork() IPC channel.
import type { HistWire } from '../k6/histogram.js';

export type TargetKind = 'parley' | 'socketio' | 'uws';

/** How the Parley generator speaks: raw `ws` + the wire codec (default), or the client SDK. */
export type ParleyClientKind = 'raw' | 'sdk';

export interface BenchUser {
  /** the id the server knows the user by (Parley: the server-made user id) */
  user: string;
  /** a readable name, used in bodies and error samples */
  name: string;
  /** Parley session token */
  token?: string;
}

export type ToGen =
  | {
      type: 'connect';
      target: TargetKind;
      parleyClient: ParleyClientKind;
      /** Parley: ws://…/v1/ws; Socket.IO: http://…; uWS: ws://… */
      url: string;
      pairs: Array<[BenchUser, BenchUser]>;
      concurrency: number;
      timeoutMs: number;
    }
  | { type: 'warmup'; timeoutMs: number }
  | { type: 'go'; seconds: number; window: number; drainTimeoutMs: number; requestTimeoutMs: number }
  | { type: 'close'; timeoutMs: number };

export interface GenStats {
  clients: number;
  pairs: number;
  /** first send to stop, ms */
  windowMs: number;
  sendsIssued: number;
  sendsAcked: number;
  sendsAckedInWindow: number;
  sendErrors: Record<string, number>;
  /** partner messages received within the measured window / in total (window + drain) */
  recvInWindow: number;
  recvTotal: number;
  /** send (stamped in the body) → receive by the partner, ms */
  latency: HistWire;
  /** send → server ack, ms */
  ackLatency: HistWire;
  /** a partner message (by its per-sender number) received a second time */
  duplicates: number;
  /** a partner message received after a later one of the same sender */
  outOfOrder: number;
  /** messages acked to their sender that the partner never received (after the drain) */
  lost: number;
  /** messages received that their sender never saw acked (send error/timeout, delivered anyway) */
  receivedUnacked: number;
  /** bodies that did not parse or came from someone other than the partner */
  strayMessages: number;
  /** pairs whose two members had not received everything acked when the drain ended */
  pairsIncomplete: number;
  /** sends still unanswered when the drain ended */
  inflightAtEnd: number;
  drainMs: number;
  unexpectedCloses: number;
  clientErrors: number;
  errorSamples: string[];
}

export type FromGen =
  | { type: 'connected'; clients: number; ms: number }
  | { type: 'warm'; ms: number }
  | { type: 'stats'; stats: GenStats }
  | { type: 'closed'; ms: number }
  | { type: 'fatal'; error: string };
