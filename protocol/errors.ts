// Errors with a stable protocol code (docs/protocol.md §2): raised by actors and the edge alike; the
// client sees the code and a short message, the log sees the cause.
import type { ErrorCode } from './codes.js';

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly code: ErrorCode | string,
    message: string,
    options?: { cause?: unknown; retry?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retry = options?.retry;
  }
  readonly retry?: number;
}

export const fail = (code: ErrorCode, message: string): never => {
  throw new ProtocolError(code, message);
};
