// Control messages between core-bench.ts (parent) and core-bench-worker.ts (generator children).
// Small JSON over the fork() IPC channel: setup data, start/stop, and the stats at the end.
import type { HistWire } from './k6/histogram.js';

export interface Account {
  username: string;
  user: string;
  token: string;
}

export type ToWorker =
  | { type: 'tp-connect'; url: string; pairs: Array<[Account, Account]>; concurrency: number; timeoutMs: number }
  | { type: 'tp-warmup'; timeoutMs: number }
  | { type: 'tp-go'; seconds: number; window: number; drainTimeoutMs: number }
  | { type: 'idle-connect'; url: string; tokens: string[]; concurrency: number; timeoutMs: number; pingEveryMs: number }
  | { type: 'close'; timeoutMs: number };

export interface TpStats {
  clients: number;
  pairs: number;
  /** actual measurement window in ms (first send to stop) */
  windowMs: number;
  sendsIssued: number;
  sendsAcked: number;
  sendsAckedInWindow: number;
  sendErrors: Record<string, number>;
  /** msg events from the partner, received within the window / in total (window + drain) */
  recvInWindow: number;
  recvTotal: number;
  latency: HistWire;
  ackLatency: HistWire;
  /** thread seqs received twice by the same member */
  duplicates: number;
  /** thread seqs received after a higher seq (out of order) */
  outOfOrder: number;
  /** at the end: seqs of the thread (1..last acked) a member never received */
  missing: number;
  /** partner messages acked to the sender but never received by the recipient */
  missingFromPartner: number;
  /** pairs whose members did not reach the thread's last seq before the drain timeout */
  pairsIncomplete: number;
  /** sends still unanswered when the drain timed out */
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
  pingsSent: number;
  pongs: number;
  errorSamples: string[];
}

export type FromWorker =
  | { type: 'tp-connected'; clients: number; ms: number }
  | { type: 'tp-warm'; ms: number }
  | { type: 'tp-stats'; stats: TpStats }
  | { type: 'idle-synced'; stats: IdleStats }
  | { type: 'idle-stats'; stats: IdleStats }
  | { type: 'closed'; ms: number }
  | { type: 'fatal'; error: string };
