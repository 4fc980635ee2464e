// A push provider (docs/protocol.md "Push"): where a notification for an offline device goes.
// One interface, four implementations (webhook, webpush, apns, fcm), one contract suite run
// against each with a real local endpoint (test/push-provider-contract.test.ts).
//
// The contract:
// - `checkToken` says whether a registration token has this provider's shape (null = fine, else
//   the problem, answered 400 by POST /v1/push). It never calls out.
// - `send` delivers one notification and resolves with what the dispatcher should do next; it
//   never throws for a provider's answer or a network failure (those are outcomes), and it gives
//   up when `signal` aborts (a timeout: outcome `retry`).
//   - `ok`: accepted by the provider.
//   - `retry`: try again later (5xx, timeouts, network errors); `afterMs` when the provider said
//     how long (429 Retry-After).
//   - `gone`: the registration is dead for good (Web Push 404/410, APNs Unregistered /
//     BadDeviceToken, FCM UNREGISTERED): the dispatcher deletes it.
//   - `failed`: this notification was refused for good but the registration stays (e.g. a 400 for
//     the payload): dropped, counted.
// - The notification's `id` (`<device>:<u>`) is sent as the provider's idempotency or collapse key
//   where it has one, so a provider can drop a repeat after a retry (webhook Idempotency-Key, APNs
//   apns-id); every provider also carries it in the payload, for the app to drop a repeat.
// - `send` is only given tokens that passed `checkToken`. A `preview` too long for the service's
//   payload limit is shortened (cut on a character, "…") rather than refused.
// - `close` frees every socket (the process can exit); a send still in flight resolves `retry`;
//   `send` is not called after it.

import { PUSH_PROVIDER_NAMES } from '../../protocol/validate.js';
import type { DevicePushPayload } from '../../protocol/push-payload.js';

export const PUSH_PROVIDERS = PUSH_PROVIDER_NAMES;
export type PushProviderName = (typeof PUSH_PROVIDERS)[number];

/** What a notification says, and to whom (docs/protocol.md §8.5). */
export interface PushNotification extends DevicePushPayload {
  user: string;
  device: string;
}

export type PushOutcome =
  | { kind: 'ok' }
  | { kind: 'retry'; reason: string; afterMs?: number }
  | { kind: 'gone'; reason: string }
  | { kind: 'failed'; reason: string };

export interface PushProvider {
  readonly name: PushProviderName;
  checkToken(token: string): string | null;
  send(token: string, n: PushNotification, signal: AbortSignal): Promise<PushOutcome>;
  close(): Promise<void>;
}

/** Registration tokens are at most this long, whatever the provider (docs/protocol.md §8.5). */
export const MAX_PUSH_TOKEN_BYTES = 4096;
