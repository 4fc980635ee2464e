// ParleyError: the one error type the SDK throws, for err frames, HTTP errors and client-side failures.
import { ErrorCode, HttpStatusOf } from '../protocol/codes.js';

/** Client-side codes that never appear on the wire (the server has no notion of our timers). */
export const ClientErrorCode = {
  timeout: 'timeout',
  /** the persistence adapter failed to read or write (the client goes on; the batch is retried) */
  persistence: 'persistence',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class ParleyError extends Error {
  /** An ErrorCode from docs/protocol.md §2, or a ClientErrorCode. */
  code: string;
  // `declare`: no own property at all when absent (cleaner logs, deepEqual-friendly).
  /** HTTP status, for errors from the HTTP API. */
  declare status?: number;
  /** Milliseconds until a retry is allowed (rate_limited). */
  declare retry?: number;

  constructor(code: string, message?: string, status?: number, retry?: number) {
    super(message || code);
    this.name = 'ParleyError';
    this.code = code;
    if (status !== undefined) this.status = status;
    if (retry !== undefined) this.retry = retry;
  }
}

/** Builds the error of an `err` frame ({code, msg, retry?}). */
export function errorFromFrame(frame: Record<string, unknown>): ParleyError {
  const code = typeof frame.code === 'string' ? frame.code : ErrorCode.internal;
  const msg = typeof frame.msg === 'string' ? frame.msg : code;
  const retry = typeof frame.retry === 'number' ? frame.retry : undefined;
  return new ParleyError(code, msg, undefined, retry);
}

/** The error code an HTTP status stands for, when the body does not say. */
export function codeForStatus(status: number): string {
  for (const [code, s] of Object.entries(HttpStatusOf)) if (s === status) return code;
  return status >= 500 ? ErrorCode.internal : ErrorCode.bad_frame;
}
