// Search (docs/protocol.md "Search"): the person's messages holding every word typed, newest
// first across their conversations, the matched words marked; more pages on demand.
import { useState } from 'preact/hooks';
import type { SearchHit } from '../../client/commands.js';
import type { ChatStore } from './chat-store.js';
import { shortTime } from './format.js';

export function SearchView({ store }: { store: ChatStore }) {
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<SearchHit[] | undefined>();
  const [cursor, setCursor] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const run = async (before?: string) => {
    setBusy(true);
    const page = await store.attempt('Searching', () => store.client.search({ q: q.trim(), ...(before ? { before } : {}) }));
    setBusy(false);
    if (!page) return;
    setHits((shown) => (before ? [...(shown ?? []), ...page.messages] : page.messages));
    setCursor(page.more ? page.cursor : undefined);
  };
  return (
    <section class="form-page search" aria-labelledby="search-title">
      <h2 id="search-title">Search messages</h2>
      <form role="search" onSubmit={(e) => { e.preventDefault(); void run(); }}>
        <label>
          Words to find
          <input name="q" type="search" required maxLength={256} value={q} onInput={(e) => setQ(e.currentTarget.value)} autoFocus />
        </label>
        <button type="submit" disabled={busy}>Search</button>
      </form>
      {hits && hits.length === 0 && <p class="hint" role="status">No messages hold all of these words.</p>}
      {hits && hits.length > 0 && (
        <ul class="results" aria-label="Messages found">
          {hits.map((m) => (
            <li key={`${m.thread}:${m.seq}`} class="result" data-thread={m.thread} data-seq={m.seq}>
              <a href={`#/t/${encodeURIComponent(m.thread)}`}>
                <span class="title">{threadTitle(store, m.thread)}</span>
                <span class="when">{shortTime(m.ts)}</span>
                <span class="preview">{m.from === store.session.user ? 'You: ' : `${store.nameOf(m.from)}: `}<Marked body={m.body ?? ''} highlights={m.highlights} /></span>
              </a>
            </li>
          ))}
        </ul>
      )}
      {cursor && <button type="button" class="more" disabled={busy} onClick={() => void run(cursor)}>{busy ? 'Searching…' : 'More results'}</button>}
    </section>
  );
}

function threadTitle(store: ChatStore, thread: string): string {
  const row = store.threads.get(thread);
  return row ? store.titleOf(row) : 'Conversation';
}

/** The body with each matched word in <mark> (the server's [start, end) offsets). */
function Marked({ body, highlights }: { body: string; highlights: [number, number][] }) {
  const parts: (string | preact.JSX.Element)[] = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start < at) continue;
    parts.push(body.slice(at, start), <mark key={start}>{body.slice(start, end)}</mark>);
    at = end;
  }
  parts.push(body.slice(at));
  return <>{parts}</>;
}
