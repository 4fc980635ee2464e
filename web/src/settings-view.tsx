// This device's settings: desktop notifications (Web Push through the service worker).
import { useEffect } from 'preact/hooks';
import type { ChatStore } from './chat-store.js';
import type { PushState } from './desktop-notifications.js';
import { useStore } from './use-store.js';

const STATE_TEXT: Record<PushState, string> = {
  checking: 'Checking…',
  unsupported: 'This browser cannot show notifications from Parley (it has no service workers or Push API).',
  unconfigured: 'This server does not send desktop notifications (Web Push is not configured on it).',
  blocked: "Notifications are blocked for this site: allow them in the browser's site settings, then turn this on.",
  off: 'Off: nothing is shown while Parley is closed.',
  on: 'On: while Parley is closed, new messages show as notifications on this device.',
  working: 'Working…',
};

export function SettingsView({ store }: { store: ChatStore }) {
  useStore(store);
  const push = store.push;
  useEffect(() => {
    void push.prepare();
  }, []);
  const on = push.state === 'on';
  const usable = push.state === 'on' || push.state === 'off' || push.state === 'blocked';
  return (
    <section class="form-page" aria-labelledby="settings-title">
      <h2 id="settings-title">Settings</h2>
      <label class="switch">
        <input
          type="checkbox"
          role="switch"
          checked={on}
          disabled={!usable}
          aria-describedby="push-state"
          onChange={() => void (on ? push.disable() : push.enable())}
        />
        Desktop notifications
      </label>
      <p id="push-state" class="hint left" aria-live="polite">{STATE_TEXT[push.state]}</p>
      {push.problem && <p class="error" role="alert">{push.problem}</p>}
    </section>
  );
}
