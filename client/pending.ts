// Pending: one request the client owes an answer to, from the call until its ok/err/timeout.

export type Timer = ReturnType<typeof setTimeout>;

export type PendingKind = 'req' | 'send' | 'ping';

export interface Pending {
  /** Issue order; requests written after a reconnection go out in this order. */
  seq: number;
  kind: PendingKind;
  t: string;
  /** The frame's fields without t/r (undefined values removed: they would become nil on the wire). */
  fields: Record<string, unknown>;
  /** Request number of the current write; undefined while not written. */
  r?: number;
  written: boolean;
  done: boolean;
  /** send: per-write answer timeout; other kinds: overall timeout from the call. */
  timer?: Timer;
  /** send: waiting before a resend after a retryable err. */
  retryTimer?: Timer;
  /** send: resends after retryable errors, drives their backoff. */
  attempts: number;
  cid?: string;
  promise: Promise<any>;
  resolve(value: any): void;
  reject(err: Error): void;
}

export function newPending(seq: number, kind: PendingKind, t: string, fields: Record<string, unknown>): Pending {
  let resolve!: (v: any) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<any>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { seq, kind, t, fields, written: false, done: false, attempts: 0, promise, resolve, reject };
}

/** Copies fields, dropping undefined values and the reserved t/r keys. */
export function cleanFields(fields?: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && k !== 't' && k !== 'r') out[k] = v;
  }
  return out;
}
