// HTTP plumbing on uWebSockets.js: bounded JSON bodies, JSON answers, protocol errors mapped to
// statuses, and abort safety (uWS responses must not be touched after the client went away).
import { ErrorCode, HttpStatusOf } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { Checker } from '../../protocol/validate.js';
import type { UWS } from './uws.js';

export const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 204: '204 No Content', 206: '206 Partial Content', 302: '302 Found', 304: '304 Not Modified', 400: '400 Bad Request', 401: '401 Unauthorized',
  403: '403 Forbidden', 404: '404 Not Found', 405: '405 Method Not Allowed', 409: '409 Conflict', 413: '413 Payload Too Large', 416: '416 Range Not Satisfiable', 426: '426 Upgrade Required',
  429: '429 Too Many Requests', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};

/** A response wrapper that remembers whether the client aborted. */
export class Reply {
  aborted = false;
  private abortListeners: (() => void)[] | null = null;
  /** Told the status of the answer once it is written (metrics). */
  onAnswer: ((status: number) => void) | null = null;
  /** @param watchAbort false when the caller registers the response's one onAborted handler itself */
  constructor(readonly res: UWS.HttpResponse, watchAbort = true) {
    if (watchAbort) {
      res.onAborted(() => {
        this.aborted = true;
        for (const fn of this.abortListeners ?? []) fn();
      });
    }
  }

  /** Runs `fn` when the client goes away before the answer was sent. */
  onAbort(fn: () => void): void {
    (this.abortListeners ??= []).push(fn);
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.write(status, JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
  }

  text(status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
    this.write(status, body, { 'Content-Type': contentType });
  }

  empty(status: number, headers: Record<string, string> = {}): void {
    this.write(status, undefined, headers);
  }

  error(code: ErrorCode | string, message: string, retry?: number): void {
    const status = HttpStatusOf[code as ErrorCode] ?? 500;
    const headers: Record<string, string> = retry !== undefined ? { 'Retry-After': String(Math.ceil(retry / 1000)) } : {};
    this.json(status, retry !== undefined ? { error: code, message, retry } : { error: code, message }, headers);
  }

  private write(status: number, body: string | undefined, headers: Record<string, string>): void {
    if (this.aborted) return;
    this.onAnswer?.(status);
    this.res.cork(() => {
      this.res.writeStatus(STATUS_TEXT[status] ?? String(status));
      for (const name in headers) this.res.writeHeader(name, headers[name]);
      this.res.end(body);
    });
  }
}

/** Reads the whole body, refusing more than `limit` bytes (by header and by count) with too_large. */
export function readBody(reply: Reply, contentLength: string, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (contentLength !== '' && Number(contentLength) > limit) {
      reject(new ProtocolError(ErrorCode.too_large, `body larger than ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    reply.res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > limit) {
        done = true;
        reject(new ProtocolError(ErrorCode.too_large, `body larger than ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        done = true;
        resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      }
    });
  });
}

/** Parses and validates a JSON body; bad_frame with the first problem on failure. */
export function parseJson<T>(raw: Buffer, check: Checker): T {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ProtocolError(ErrorCode.bad_frame, 'body is not valid JSON');
  }
  const problem = check(value);
  if (problem) throw new ProtocolError(ErrorCode.bad_frame, problem);
  return value as T;
}

export function bearerToken(authorization: string): string | null {
  const m = /^Bearer ([A-Za-z0-9_-]{1,512})$/.exec(authorization);
  return m ? m[1] : null;
}

/** A path segment as the client meant it (`c%3Aab` is `c:ab`); '' when it does not decode. */
export function decodedSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return '';
  }
}
