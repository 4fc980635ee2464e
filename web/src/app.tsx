// The app's shell: sign-in until there is a session; then the header, the connection banner, the
// inbox beside the routed view (location hash), and the notices that say what went wrong.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { AuthView } from './auth-view.js';
import { ChannelView, ChannelsView } from './channel-views.js';
import { ChatStore } from './chat-store.js';
import { ConversationView, NewChatView, ToUserView } from './conversation-view.js';
import { GroupInfoView, NewGroupView } from './group-views.js';
import { InboxView } from './inbox-view.js';
import { ContactsView, DevicesView } from './people-views.js';
import { SearchView } from './search-view.js';
import { SettingsView } from './settings-view.js';
import { onNotificationOpen } from './desktop-notifications.js';
import { loadSession, type Session } from './session.js';
import { go, useRoute, useStore } from './use-store.js';

export function App() {
  const [session, setSession] = useState<Session | undefined>(() => loadSession());
  const [notice, setNotice] = useState('');
  if (!session) return <AuthView onSignedIn={(s) => { setNotice(''); setSession(s); }} notice={notice} />;
  return <SignedIn key={session.token} session={session} onEnded={(why) => { setNotice(why); setSession(undefined); }} />;
}

function SignedIn(props: { session: Session; onEnded: (why: string) => void }) {
  const store = useMemo(() => new ChatStore(props.session), [props.session]);
  useStore(store);
  useEffect(() => {
    void store.start();
    return () => store.endSession('');
  }, [store]);
  useEffect(() => {
    if (store.ended !== undefined) props.onEnded(store.ended);
  }, [store.ended]);
  // A clicked notification (the service worker) shows its conversation here.
  useEffect(() => onNotificationOpen((thread) => go('t', thread)), []);
  const route = useRoute();

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">Parley</a>
        <nav aria-label="Main">
          <a href="#/new">New chat</a>
          <a href="#/group/new">New group</a>
          <a href="#/search">Search</a>
          <a href="#/channels">Channels</a>
          <a href="#/contacts">Contacts</a>
          <a href="#/devices">Devices</a>
          <a href="#/settings">Settings</a>
        </nav>
        <span class="me" aria-label="Signed in as">{props.session.username}</span>
        <button type="button" onClick={() => void store.logout()}>Sign out</button>
      </header>
      <ConnectionBanner store={store} />
      <div class="panes">
        <InboxView store={store} current={route[0] === 't' ? route[1] : undefined} />
        <main class="view" id="view">
          <Routed store={store} route={route} />
        </main>
      </div>
      <Notices store={store} />
    </div>
  );
}

function Routed({ store, route }: { store: ChatStore; route: string[] }) {
  const [a, b, c] = route;
  if (a === 't' && b && c === 'info') return <GroupInfoView key={b} store={store} thread={b} />;
  if (a === 't' && b) return <ConversationView key={b} store={store} thread={b} />;
  if (a === 'to' && b) return <ToUserView key={b} store={store} user={b} />;
  if (a === 'new') return <NewChatView store={store} />;
  if (a === 'group' && b === 'new') return <NewGroupView store={store} />;
  if (a === 'search') return <SearchView store={store} />;
  if (a === 'channels') return <ChannelsView store={store} />;
  if (a === 'c' && b) return <ChannelView key={b} store={store} channel={b} />;
  if (a === 'contacts') return <ContactsView store={store} />;
  if (a === 'devices') return <DevicesView store={store} />;
  if (a === 'settings') return <SettingsView store={store} />;
  return (
    <section class="empty" aria-label="Welcome">
      <p>Pick a conversation, or <a href="#/new">start a new chat</a>.</p>
    </section>
  );
}

function ConnectionBanner({ store }: { store: ChatStore }) {
  const text = !store.online
    ? 'You are offline. Messages you send wait and go out when the connection is back.'
    : store.conn === 'reconnecting'
      ? 'Connection lost — reconnecting… Messages you send wait and go out when it is back.'
      : store.conn === 'connecting'
        ? 'Connecting…'
        : store.conn === 'closed'
          ? 'Disconnected.'
          : '';
  return (
    <div class={`banner${text ? ' shown' : ''}`} role="status" aria-live="polite" data-conn={store.online ? store.conn : 'offline'}>
      {text}
    </div>
  );
}

function Notices({ store }: { store: ChatStore }) {
  return (
    <div class="notices" role="alert" aria-live="assertive">
      {store.notices.map((n) => (
        <p key={n.id} class="notice error">
          <span>{n.text}</span>
          <button type="button" aria-label="Dismiss" onClick={() => store.dismiss(n.id)}>×</button>
        </p>
      ))}
    </div>
  );
}

export function goHome(): void {
  go();
}
