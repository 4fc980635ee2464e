// What a push notification carries to a device (docs/protocol.md §8.5): the same fields for
// every provider (APNs' `parley` dictionary, FCM's data, the Web Push JSON the service worker
// reads). `preview` only with PUSH_PREVIEW=on.

export interface DevicePushPayload {
  /** `<device>:<u>`: the idempotency key; the same id twice is the same notification */
  id: string;
  u: number;
  thread: string;
  /** the sender's user id and display name */
  from: string;
  name: string;
  /** the thread's unread count for this user when the notification was made */
  unread: number;
  preview?: string;
}
