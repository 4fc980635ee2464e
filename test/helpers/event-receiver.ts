// An operator's webhook receiver for tests: a real local HTTP endpoint (test/helpers/webhook-endpoint.ts)
// plus what a real receiver does with at-least-once delivery — dedupe by event id, keeping the first
// arrival — and waiting until the events a test expects are in.
import { startWebhook, type WebhookEndpoint } from './webhook-endpoint.js';

interface Teardown { teardown(fn: () => unknown): void }

export interface ReceivedEvent { id: number; type: string; ts: number; [k: string]: any }

export interface EventReceiver {
  endpoint: WebhookEndpoint;
  url: string;
  /** Unique events in first-arrival order (repeats after a retry or restart dropped). */
  events(): ReceivedEvent[];
  /** Every POST carried a valid signature and a JSON {events: [...]} body. */
  allSigned(): boolean;
  /** Resolves once `pred` holds for the unique events (checked after every POST). */
  until(pred: (events: ReceivedEvent[]) => boolean, timeoutMs?: number): Promise<ReceivedEvent[]>;
}

export async function startEventReceiver(t: Teardown, secret: string, port = 0): Promise<EventReceiver> {
  const endpoint = await startWebhook(t, secret, port);
  const events = (): ReceivedEvent[] => {
    const seen = new Set<number>();
    const out: ReceivedEvent[] = [];
    for (const call of endpoint.calls) {
      for (const e of (call.body?.events ?? []) as ReceivedEvent[]) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        out.push(e);
      }
    }
    return out;
  };
  return {
    endpoint,
    url: endpoint.url.replace(/\/push$/, '/events'),
    events,
    allSigned: () => endpoint.calls.every((c) => c.signatureOk && Array.isArray(c.body?.events)),
    until: async (pred, timeoutMs = 60_000) => {
      await endpoint.until(() => pred(events()), timeoutMs);
      return events();
    },
  };
}

/** The message.created events of `thread`, in arrival order, as their seqs. */
export function messageSeqs(events: ReceivedEvent[], thread: string): number[] {
  return events.filter((e) => e.type === 'message.created' && e.thread === thread).map((e) => e.message.seq);
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
