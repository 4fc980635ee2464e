// Contacts (with presence) and blocks; this account's devices, each revocable.
import { useEffect, useState } from 'preact/hooks';
import { listSessions, revokeSession } from '../../client/http.js';
import type { SessionRow } from '../../client/types.js';
import type { ChatStore } from './chat-store.js';
import { fullTime, lastSeen } from './format.js';
import { apiBase } from './session.js';
import { go, useStore } from './use-store.js';

export function ContactsView({ store }: { store: ChatStore }) {
  useStore(store);
  useEffect(() => {
    void store.loadContacts();
  }, []);
  const [username, setUsername] = useState('');
  const [error, setError] = useState('');
  const find = async (what: 'contacts.add' | 'block') => {
    setError('');
    let user: string;
    try {
      user = (await store.findUser(username)).user;
    } catch {
      setError(`No user named “${username.trim()}”.`);
      return;
    }
    const ok = await store.attempt(what === 'block' ? 'Blocking' : 'Adding the contact', () => store.client.request(what, { user }));
    if (ok !== undefined) setUsername('');
    await store.loadContacts();
  };
  const chat = (user: string) => {
    const row = store.directWith(user);
    if (row) go('t', row.thread);
    else go('to', user);
  };
  return (
    <section class="form-page" aria-labelledby="contacts-title">
      <h2 id="contacts-title">Contacts</h2>
      <form onSubmit={(e) => { e.preventDefault(); void find('contacts.add'); }}>
        <label>
          Username
          <input name="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <button type="submit">Add contact</button>
        <button type="button" onClick={() => void find('block')}>Block</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {store.contacts.length === 0 ? <p class="hint">No contacts yet.</p> : (
        <ul class="people" aria-label="Your contacts">
          {store.contacts.map((c) => (
            <li key={c.user} data-user={c.user}>
              <span>{c.name}</span> <span class="presence">{lastSeen(c)}</span>
              <button type="button" onClick={() => chat(c.user)}>Chat</button>
              <button type="button" onClick={() => void store.attempt('Removing the contact', async () => {
                await store.client.request('contacts.remove', { user: c.user });
                await store.loadContacts();
              })}>Remove {c.name}</button>
            </li>
          ))}
        </ul>
      )}
      <h3 id="blocked-title">Blocked</h3>
      {store.blocks.length === 0 ? <p class="hint">Nobody is blocked.</p> : (
        <ul class="people" aria-labelledby="blocked-title">
          {store.blocks.map((u) => (
            <li key={u} data-user={u}>
              <span>{store.nameOf(u)}</span>
              <button type="button" onClick={() => void store.attempt('Unblocking', async () => {
                await store.client.request('unblock', { user: u });
                await store.loadContacts();
              })}>Unblock {store.nameOf(u)}</button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function DevicesView({ store }: { store: ChatStore }) {
  const [devices, setDevices] = useState<SessionRow[] | undefined>();
  const load = async () => {
    const res = await store.attempt('Loading the devices', () => listSessions(apiBase(), store.session.token));
    if (res) setDevices(res.devices);
  };
  useEffect(() => {
    void load();
  }, []);
  return (
    <section class="form-page" aria-labelledby="devices-title">
      <h2 id="devices-title">Devices</h2>
      {!devices ? <p class="hint">Loading…</p> : (
        <ul class="people" aria-labelledby="devices-title">
          {devices.map((d) => {
            const current = d.device === store.session.device;
            return (
              <li key={d.device} data-device={d.device}>
                <span>{d.name}{current ? ' (this device)' : ''}</span>
                <span class="presence">signed in {fullTime(d.created)}{d.lastSeen ? `, last used ${fullTime(d.lastSeen)}` : ''}</span>
                {current ? (
                  <button type="button" onClick={() => void store.logout()}>Sign out</button>
                ) : (
                  <button type="button" onClick={() => void (async () => {
                    const ok = await store.attempt('Signing the device out', () => revokeSession(apiBase(), store.session.token, d.device).then(() => true));
                    if (ok) await load();
                  })()}>Sign out {d.name}</button>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
