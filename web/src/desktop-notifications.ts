// Desktop notifications through Web Push (docs/protocol.md "Push"). The service worker
// (web/src/service-worker.ts) shows them. Turning them on asks the browser's permission, subscribes
// with the server's VAPID key and registers the subscription for this device (POST /v1/push); the
// server then notifies while this device has no open socket. Off, and signing out, unregister it
// (DELETE /v1/push) and unsubscribe, so nothing more arrives for an account that left the browser.
import { ParleyError } from '../../client/errors.js';
import { registerPush, unregisterPush, vapidKey } from '../../client/http.js';
import { describeError } from './describe-error.js';
import { apiBase, type Session } from './session.js';

/** unsupported: no service worker or Push API here; unconfigured: the server has no Web Push. */
export type PushState = 'checking' | 'unsupported' | 'unconfigured' | 'blocked' | 'off' | 'on' | 'working';

/** Marks that this device registered a subscription (the browser's subscription alone may be another account's). */
const flagKey = (device: string) => `parley.push.${device}`;

let registered: Promise<ServiceWorkerRegistration | undefined> | undefined;

/** Registers /sw.js (scope /) once per page; undefined where service workers do not exist or it failed. */
export function registerServiceWorker(): Promise<ServiceWorkerRegistration | undefined> {
  if (!('serviceWorker' in navigator)) return Promise.resolve(undefined);
  return (registered ??= navigator.serviceWorker.register('/sw.js').catch((err: unknown) => {
    // The app works without it: no offline start, no notifications.
    console.warn(`Parley: the service worker was not registered: ${(err as Error)?.message ?? err}`);
    return undefined;
  }));
}

/** The registration once its worker is active, or undefined without one. */
async function activeRegistration(): Promise<ServiceWorkerRegistration | undefined> {
  if (!(await registerServiceWorker())) return undefined;
  return navigator.serviceWorker.ready;
}

/** Calls `open(thread)` when a notification was clicked (the worker posts {t: 'open', thread}). */
export function onNotificationOpen(open: (thread: string) => void): () => void {
  if (!('serviceWorker' in navigator)) return () => undefined;
  const on = (e: MessageEvent) => {
    const d = e.data as { t?: string; thread?: unknown } | null;
    if (d?.t === 'open' && typeof d.thread === 'string') open(d.thread);
  };
  navigator.serviceWorker.addEventListener('message', on);
  return () => navigator.serviceWorker.removeEventListener('message', on);
}

function supported(): boolean {
  return 'serviceWorker' in navigator && typeof PushManager !== 'undefined' && typeof Notification !== 'undefined';
}

function keyBytes(base64url: string): Uint8Array<ArrayBuffer> {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

export class DesktopNotifications {
  state: PushState = 'checking';
  /** Why the last attempt failed, in words (shown beside the toggle). */
  problem = '';
  /** the server's VAPID public key, once asked */
  private key?: string;

  constructor(private readonly session: Session, private readonly changed: () => void) {}

  private set(state: PushState, problem = ''): void {
    this.state = state;
    this.problem = problem;
    this.changed();
  }

  /** Finds the state; when on, registers the subscription again (the browser may have renewed it). */
  async init(): Promise<void> {
    if (!supported()) return this.set('unsupported');
    const sub = localStorage.getItem(flagKey(this.session.device)) ? await this.subscription() : null;
    // The settings may have found out meanwhile that the server has no Web Push.
    if (this.state === 'unconfigured') return;
    if (Notification.permission === 'denied') return this.set('blocked');
    if (!sub || Notification.permission !== 'granted') return this.set('off');
    this.set('on');
    try {
      await registerPush(apiBase(), this.session.token, { provider: 'webpush', token: JSON.stringify(sub) });
    } catch (err) {
      this.set('on', describeError(err, 'Renewing desktop notifications'));
    }
  }

  private async subscription(): Promise<PushSubscription | null> {
    const reg = await activeRegistration();
    return reg ? reg.pushManager.getSubscription() : null;
  }

  /**
   * The server's VAPID key, asked when the settings are shown (not at every start: a server
   * without Web Push answers 404). Known before the switch is clicked, so that asking for the
   * permission is the first thing the click does (browsers want it right in the gesture).
   */
  async prepare(): Promise<void> {
    if (this.key !== undefined || !supported()) return;
    try {
      this.key = await vapidKey(apiBase());
    } catch (err) {
      if (err instanceof ParleyError && err.code === 'not_found') this.set('unconfigured');
      // Otherwise (offline): asked again when the switch is clicked.
    }
  }

  /** Permission, subscription, registration; the state says how far it got. */
  async enable(): Promise<void> {
    if (!supported()) return this.set('unsupported');
    this.set('working');
    const permission = this.key !== undefined ? await Notification.requestPermission() : undefined;
    let key: string;
    try {
      key = this.key ??= await vapidKey(apiBase());
    } catch (err) {
      if (err instanceof ParleyError && err.code === 'not_found') return this.set('unconfigured');
      return this.set('off', describeError(err, 'Asking the server for its push key'));
    }
    return this.subscribe(key, permission ?? (await Notification.requestPermission()));
  }

  private async subscribe(key: string, permission: NotificationPermission): Promise<void> {
    if (permission !== 'granted') {
      return this.set(permission === 'denied' ? 'blocked' : 'off', permission === 'denied' ? '' : 'Notifications were not allowed: the browser asked and got no answer.');
    }
    const reg = await activeRegistration();
    if (!reg) return this.set('unsupported', 'The service worker that shows notifications could not be installed.');
    const wanted = keyBytes(key);
    let sub: PushSubscription | null;
    try {
      sub = await reg.pushManager.getSubscription();
      // A subscription made for another server key (or another server) would never be delivered.
      if (sub && !sameKey(sub.options.applicationServerKey, wanted)) {
        await sub.unsubscribe();
        sub = null;
      }
      sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted });
    } catch (err) {
      return this.set('off', `The browser's push service refused the subscription: ${(err as Error)?.message ?? err}.`);
    }
    try {
      await registerPush(apiBase(), this.session.token, { provider: 'webpush', token: JSON.stringify(sub) });
    } catch (err) {
      await sub.unsubscribe().catch(() => false);
      return this.set('off', describeError(err, 'Registering for desktop notifications'));
    }
    localStorage.setItem(flagKey(this.session.device), '1');
    this.set('on');
  }

  /** Off: the server forgets this device's registration, the browser its subscription. */
  async disable(): Promise<void> {
    this.set('working');
    try {
      await unregisterPush(apiBase(), this.session.token);
    } catch (err) {
      return this.set('on', describeError(err, 'Turning desktop notifications off'));
    }
    await this.forget();
    this.set('off');
  }

  /**
   * Signing out (the server also drops the registration with the session): unregisters while the
   * token still works, then unsubscribes. `signedOut`: the token is already dead (revoked elsewhere).
   */
  async signOut(signedOut = false): Promise<void> {
    if (!supported() || !localStorage.getItem(flagKey(this.session.device))) return;
    if (!signedOut) await unregisterPush(apiBase(), this.session.token).catch(() => undefined);
    await this.forget();
  }

  private async forget(): Promise<void> {
    localStorage.removeItem(flagKey(this.session.device));
    const sub = await this.subscription().catch(() => null);
    await sub?.unsubscribe().catch(() => false);
  }
}
