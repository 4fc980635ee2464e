// The pre-send hook (docs/protocol.md "Pre-send hook"): before a `send` or `channel.post` goes to
// its actor, the gateway POSTs {user, thread | channel, body?, media?} to SEND_HOOK_URL (signed like
// webhooks) and the operator answers 200 with {action: "accept"}, {action: "reject", reason} or
// {action: "rewrite", body}. A timeout (SEND_HOOK_TIMEOUT_MS), a non-200 or an answer that does not
// parse follows SEND_HOOK_FAIL: closed refuses the message (unavailable, retry), open stores it as
// sent. One socket's messages are checked one after the other (they are stored in the order sent);
// calls in flight or waiting are bounded across the gateway (SEND_HOOK_CONCURRENCY).
import type { Logger } from 'pino';
import type { MediaObject } from '../../storage/env.js';
import { bodyTooLarge } from '../../protocol/validate.js';
import type { Metrics } from '../metrics.js';
import { HttpClient } from '../push/push-http.js';
import { WebhookProvider } from '../push/webhook-provider.js';

export interface SendHookOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  fail: 'open' | 'closed';
  concurrency: number;
}

export interface SendHookRequest {
  user: string;
  thread?: string;
  channel?: string;
  body?: string;
  media?: MediaObject;
}

/** What the gateway does with the message. */
export type SendVerdict =
  | { kind: 'accept' }
  | { kind: 'rewrite'; body: string }
  | { kind: 'reject'; reason: string }
  /** the hook failed with SEND_HOOK_FAIL=closed, or too many calls are waiting */
  | { kind: 'unavailable'; reason: string; retry: number };

/** How long a sender refused for a failed hook is told to wait before retrying. */
export const HOOK_RETRY_MS = 1000;
const MAX_REASON_CHARS = 200;
const DEFAULT_REASON = 'this message was not accepted';

/** The hook's answer as a verdict, or a string saying what is wrong with it (→ SEND_HOOK_FAIL). */
export function readHookAnswer(status: number, text: string, hasMedia: boolean): Exclude<SendVerdict, { kind: 'unavailable' }> | string {
  if (status !== 200) return `hook answered ${status}`;
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    return 'hook answer is not JSON';
  }
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) return 'hook answer is not a JSON object';
  const { action, reason, body } = answer as { action?: unknown; reason?: unknown; body?: unknown };
  switch (action) {
    case 'accept': return { kind: 'accept' };
    case 'reject':
      if (reason !== undefined && typeof reason !== 'string') return 'reject: reason must be a string';
      return { kind: 'reject', reason: reason ? reason.slice(0, MAX_REASON_CHARS) : DEFAULT_REASON };
    case 'rewrite':
      if (typeof body !== 'string') return 'rewrite: body must be a string';
      if (bodyTooLarge(body)) return 'rewrite: body is larger than 16 KiB';
      if (body === '' && !hasMedia) return 'rewrite: body must not be empty (the message has no media)';
      return { kind: 'rewrite', body };
    default: return 'hook answer has no known action (accept, reject, rewrite)';
  }
}

export class SendHook {
  private readonly http: HttpClient;
  private readonly url: URL;
  /** calls in flight or waiting behind an earlier message of their socket */
  private pending = 0;
  /** per socket: the last check queued, so the next waits for it */
  private readonly chains = new WeakMap<object, Promise<void>>();

  constructor(private readonly opts: SendHookOptions, private readonly metrics: Metrics, private readonly log: Logger) {
    this.url = new URL(opts.url);
    this.http = new HttpClient(Math.min(opts.concurrency, 256));
  }

  /**
   * Checks one message of socket `socket` (any object identifying it), after its earlier ones;
   * `done` gets the verdict. Never throws; `done` is called exactly once.
   */
  check(socket: object, req: SendHookRequest, done: (v: SendVerdict) => void): void {
    if (this.pending >= this.opts.concurrency) {
      this.metrics.sendHookCalls.inc({ outcome: 'busy' });
      return done({ kind: 'unavailable', reason: 'too many messages waiting for their check; retry later', retry: HOOK_RETRY_MS });
    }
    this.pending++;
    const previous = this.chains.get(socket) ?? Promise.resolve();
    const mine = previous.then(() => this.ask(req)).then((v) => {
      this.pending--;
      done(v);
    });
    this.chains.set(socket, mine);
  }

  private async ask(req: SendHookRequest): Promise<SendVerdict> {
    const body = Buffer.from(JSON.stringify(req));
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    let problem: string;
    let outcome: 'error' | 'timeout' = 'error';
    try {
      const answer = await this.http.request(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'parley-send-hook', 'x-parley-signature': WebhookProvider.sign(this.opts.secret, body) },
        body,
        signal,
      });
      const verdict = readHookAnswer(answer.status, answer.body, req.media !== undefined);
      if (typeof verdict !== 'string') {
        this.metrics.sendHookCalls.inc({ outcome: verdict.kind });
        return verdict;
      }
      problem = verdict;
    } catch (err) {
      if (signal.aborted) {
        outcome = 'timeout';
        problem = `hook did not answer within ${this.opts.timeoutMs} ms`;
      } else problem = `hook unreachable: ${(err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err)}`;
    }
    this.metrics.sendHookCalls.inc({ outcome });
    this.log.warn({ problem, fail: this.opts.fail }, 'pre-send hook failed');
    if (this.opts.fail === 'open') return { kind: 'accept' };
    return { kind: 'unavailable', reason: 'the message could not be checked; retry later', retry: HOOK_RETRY_MS };
  }

  close(): void {
    this.http.close();
  }
}
