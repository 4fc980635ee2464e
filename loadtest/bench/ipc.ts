// Control messages between bench.ts (parent) and bench/generator.ts (forked children).
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

/** Closed loop: every sender keeps `window` sends unanswered. */
export interface ClosedLoad {
  kind: 'closed';
  window: number;
}

/**
 * Open loop: this generator's senders issue `rate` sends/s in total, round robin, the j-th at
 * startAt + (j + phase) / rate (absolute times: a slow server does not slow the arrivals). A send
 * due while its sender already has `maxInflight` unanswered is dropped and counted.
 */
export interface OpenLoad {
  kind: 'open';
  rate: number;
  /** fraction of one interval by which this generator's schedule is shifted (spreads generators) */
  phase: number;
  maxInflight: number;
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
  | {
      type: 'go';
      /** epoch ms (performance.timeOrigin + now(), comparable across processes) the window starts */
      startAt: number;
      seconds: number;
      load: ClosedLoad | OpenLoad;
      drainTimeoutMs: number;
      requestTimeoutMs: number;
    }
  /** Idle phase (Parley): one raw socket per token, hello → synced, then a ping every 20 s. */
  | { type: 'idle-connect'; url: string; tokens: string[]; concurrency: number; timeoutMs: number }
  | { type: 'close'; timeoutMs: number };

export interface GenStats {
  clients: number;
  pairs: number;
  /** first send to stop, ms */
  windowMs: number;
  /** open loop: sends that were due (issued + dropped) */
  sendsOffered: number;
  sendsIssued: number;
  /** open loop: sends not issued because their sender had maxInflight unanswered */
  sendsDropped: number;
  sendsAcked: number;
  sendsAckedInWindow: number;
  sendErrors: Record<string, number>;
  /** partner messages received within the measured window / in total (window + drain) */
  recvInWindow: number;
  /** the same per 100 ms of the window (from its start) */
  recvPer100ms: number[];
  recvTotal: number;
  /** send (stamped in the body; open loop: the scheduled time) → receive by the partner, ms */
  latency: HistWire;
  /** send → server ack, ms */
  ackLatency: HistWire;
  /** open loop: actual issue time − scheduled time, ms (how far the generator fell behind) */
  scheduleLag: HistWire;
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

export interface IdleStats {
  sockets: number;
  synced: number;
  failed: number;
  connectMs: number;
  /** sockets closed by the server after they were synced */
  dropped: number;
  errorSamples: string[];
}

export type FromGen =
  | { type: 'connected'; clients: number; ms: number }
  | { type: 'warm'; ms: number }
  | { type: 'stats'; stats: GenStats }
  | { type: 'idle-synced'; stats: IdleStats }
  | { type: 'idle-stats'; stats: IdleStats }
  | { type: 'closed'; ms: number }
  | { type: 'fatal'; error: string };
