// An operator's webhook receiver for tests: a real local HTTP endpoint that checks each POST's
// signature, answers with the status the test chooses, and — as a real receiver of at-least-once
// delivery does — keeps the events of the POSTs it accepted (2xx), deduped by id, first arrival first.
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Teardown { teardown(fn: () => unknown): void }

export interface ReceivedEvent { id: number; type: string; ts: number; [k: string]: any }
export interface ReceivedPost { events: ReceivedEvent[]; signatureOk: boolean; status: number }

export interface EventReceiver {
  url: string;
  posts: ReceivedPost[];
  /** The status for the n-th POST (0-based); default 200. */
  status: (n: number) => number;
  /** Unique events of the accepted POSTs, in first-arrival order. */
  events(): ReceivedEvent[];
  /** Every POST carried a valid signature and a JSON {events: [...]} body. */
  allSigned(): boolean;
  /** Resolves once `pred` holds for events() (checked after every POST; the timeout is a safety net). */
  until(pred: (events: ReceivedEvent[]) => boolean, timeoutMs?: number): Promise<ReceivedEvent[]>;
}

export async function startEventReceiver(t: Teardown, secret: string): Promise<EventReceiver> {
  const waiters: (() => void)[] = [];
  const rx: EventReceiver = {
    url: '',
    posts: [],
    status: () => 200,
    events() {
      const seen = new Set<number>();
      const out: ReceivedEvent[] = [];
      for (const post of rx.posts) {
        if (post.status < 200 || post.status > 299) continue;
        for (const e of post.events) {
          if (seen.has(e.id)) continue;
          seen.add(e.id);
          out.push(e);
        }
      }
      return out;
    },
    allSigned: () => rx.posts.every((p) => p.signatureOk),
    until: (pred, timeoutMs = 60_000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`webhook events not received in time (${rx.events().length} so far)`)), timeoutMs);
      const check = () => {
        const events = rx.events();
        if (pred(events)) {
          clearTimeout(timer);
          resolve(events);
        } else waiters.push(check);
      };
      check();
    }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const signatureOk = req.headers['x-parley-signature'] === `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
      let events: ReceivedEvent[] = [];
      try {
        events = (JSON.parse(raw.toString('utf8')) as { events: ReceivedEvent[] }).events;
      } catch {
        // recorded with no events; allSigned() stays honest about the signature only
      }
      const status = rx.status(rx.posts.length);
      rx.posts.push({ events: Array.isArray(events) ? events : [], signatureOk: signatureOk && Array.isArray(events), status });
      res.writeHead(status).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  rx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/parley-events`;
  return rx;
}

/** The message.created events of `thread`, in arrival order, as their seqs. */
export function messageSeqs(events: ReceivedEvent[], thread: string): number[] {
  return events.filter((e) => e.type === 'message.created' && e.thread === thread).map((e) => e.message.seq);
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
