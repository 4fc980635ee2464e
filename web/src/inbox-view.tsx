// The inbox: threads newest first with their last message and unread badge, paged.
import type { ThreadRow } from '../../client/types.js';
import type { ChatStore } from './chat-store.js';
import { shortTime } from './format.js';

export function InboxView({ store, current }: { store: ChatStore; current?: string }) {
  const rows = store.inbox();
  return (
    <nav class="inbox" aria-label="Conversations">
      <h2 class="visually-hidden">Conversations</h2>
      {store.inboxLoaded && rows.length === 0 && <p class="hint">No conversations yet. <a href="#/new">Start one</a>.</p>}
      <ul>
        {rows.map((row) => <InboxRow key={row.thread} store={store} row={row} current={row.thread === current} />)}
      </ul>
      {store.inboxCursor && (
        <button type="button" class="more" disabled={store.inboxLoading} onClick={() => void store.loadInbox(false)}>
          {store.inboxLoading ? 'Loading…' : 'Older conversations'}
        </button>
      )}
    </nav>
  );
}

function InboxRow({ store, row, current }: { store: ChatStore; row: ThreadRow; current: boolean }) {
  const title = store.titleOf(row);
  const last = row.last;
  const preview = last ? `${last.from === store.session.user ? 'You: ' : row.kind === 'group' ? `${store.nameOf(last.from)}: ` : ''}${last.deleted ? 'Message deleted' : last.body ?? (last.media ? `File: ${last.media.name ?? last.media.mime}` : '')}` : row.kind === 'group' ? 'New group' : '';
  const typing = store.typingIn(row.thread).length > 0;
  return (
    <li class={`row${current ? ' current' : ''}${row.unread ? ' unread' : ''}`} data-thread={row.thread}>
      <a href={`#/t/${encodeURIComponent(row.thread)}`} aria-current={current ? 'page' : undefined}>
        <span class="title">{title}{row.muted && <span class="muted"> · muted</span>}</span>
        <span class="when">{row.updated ? shortTime(row.updated) : ''}</span>
        <span class="preview">{typing ? 'typing…' : preview}</span>
        {row.unread > 0 && <span class="badge" aria-label={`${row.unread} unread`}>{row.unread}</span>}
      </a>
    </li>
  );
}
