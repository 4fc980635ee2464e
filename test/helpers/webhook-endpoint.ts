// A real local HTTP endpoint standing in for the operator's push gateway: records every request
// (body parsed, signature checked against the secret) and answers as the test says, by default 200.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Teardown { teardown(fn: () => unknown): void }

export interface WebhookCall { body: any; signatureOk: boolean; idempotencyKey: string | undefined }
/** Answers one request; may hold it (return a promise) to keep a delivery in flight. */
export type WebhookAnswer = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface WebhookEndpoint {
  url: string;
  calls: WebhookCall[];
  /** Answers for the next requests, in order; afterwards 200. */
  answers: WebhookAnswer[];
  /** Resolves when a call matching `pred` has arrived (including earlier ones). */
  until(pred: (c: WebhookCall) => boolean, timeoutMs?: number): Promise<WebhookCall>;
}

export async function startWebhook(t: Teardown, secret: string, port = 0): Promise<WebhookEndpoint> {
  const calls: WebhookCall[] = [];
  const answers: WebhookAnswer[] = [];
  const waiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const want = `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
      let body: unknown = null;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = raw.toString('utf8');
      }
      calls.push({ body, signatureOk: req.headers['x-parley-signature'] === want, idempotencyKey: req.headers['idempotency-key'] as string | undefined });
      for (const w of waiters.splice(0)) w();
      const answer = answers.shift();
      if (answer) void answer(req, res);
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const until = (pred: (c: WebhookCall) => boolean, timeoutMs = 30_000) => new Promise<WebhookCall>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('webhook call not received in time')), timeoutMs);
    const check = () => {
      const hit = calls.find(pred);
      if (hit) {
        clearTimeout(timer);
        resolve(hit);
      } else waiters.push(check);
    };
    check();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`, calls, answers, until };
}
