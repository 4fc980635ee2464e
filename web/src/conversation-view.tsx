// A conversation: its history (older pages load on scrolling up), live messages with ticks,
// typing and presence in the header, and the composer (sent through the SDK's outbox).
import { Component } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Media, Msg, ThreadRow } from '../../client/types.js';
import { describeError } from './describe-error.js';
import type { ChatStore, Tick, Unsent } from './chat-store.js';
import { fullTime, lastSeen, shortTime } from './format.js';
import { ESTIMATED_ROW_PX, rowWindow, WINDOW_FROM } from './message-window.js';
import { go, useStore } from './use-store.js';

const TICK_TEXT: Record<Tick, [string, string]> = {
  pending: ['○', 'sending'],
  failed: ['!', 'not sent'],
  sent: ['✓', 'sent'],
  delivered: ['✓✓', 'delivered'],
  read: ['✓✓', 'read'],
};

export function ConversationView({ store, thread }: { store: ChatStore; thread: string }) {
  useStore(store);
  useEffect(() => {
    void store.openThread(thread);
    return () => store.closeThread(thread);
  }, [thread]);
  // Reading resumes when the tab comes back to the front.
  useEffect(() => {
    const on = () => {
      if (document.visibilityState !== 'visible') return;
      const newest = store.loaded.get(thread)?.list.at(-1);
      const row = store.threads.get(thread);
      if (row && newest && row.unread > 0) void store.markRead(thread, newest.seq);
    };
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, [thread]);

  const row = store.threads.get(thread);
  const loaded = store.loaded.get(thread);
  if (!row) return <section class="conversation" aria-busy="true"><p class="hint">{store.inboxLoaded ? 'Loading the conversation…' : 'Loading…'}</p></section>;
  return (
    <section class="conversation" aria-labelledby="conv-title">
      <ConversationHeader store={store} row={row} />
      <MessageList store={store} row={row} messages={loaded?.list ?? []} more={loaded?.more ?? true} loading={loaded?.loading ?? true} unsent={store.unsentIn(thread)} />
      <TypingLine store={store} thread={thread} />
      {(row as { member?: boolean }).member === false ? <p class="hint">You are no longer a member of this group.</p> : (
        <Composer store={store} onSend={(body) => store.send({ thread }, body)} onTyping={() => store.typed(thread)} onFile={(f) => void store.sendFile({ thread }, f, f.name)} />
      )}
    </section>
  );
}

function ConversationHeader({ store, row }: { store: ChatStore; row: ThreadRow }) {
  const other = row.kind === 'direct' ? store.otherOf(row) : undefined;
  const seen = other ? lastSeen(store.presence.get(other)) : `${row.members.length} member${row.members.length === 1 ? '' : 's'}`;
  return (
    <header class="conv-head">
      <div>
        <h2 id="conv-title">{store.titleOf(row)}</h2>
        <p class="presence" aria-live="polite" data-online={other ? String(store.presence.get(other)?.online ?? false) : undefined}>{seen}</p>
      </div>
      <div class="actions">
        {row.kind === 'group' && <a class="button" href={`#/t/${encodeURIComponent(row.thread)}/info`}>Group info</a>}
        {other && <PersonActions store={store} user={other} />}
        <button type="button" aria-pressed={row.muted} onClick={() => void store.attempt('Muting', async () => {
          await store.client.request('thread.set', { thread: row.thread, muted: !row.muted });
          await store.refreshRow(row.thread);
        })}>{row.muted ? 'Unmute' : 'Mute'}</button>
      </div>
    </header>
  );
}

/** Add to contacts (so they see my presence) and block, for a 1:1 chat. */
export function PersonActions({ store, user }: { store: ChatStore; user: string }) {
  useEffect(() => {
    void store.loadContacts();
  }, [user]);
  const contact = store.isContact(user);
  const blocked = store.blocks.includes(user);
  return (
    <>
      <button type="button" onClick={() => void store.attempt(contact ? 'Removing the contact' : 'Adding the contact', async () => {
        await store.client.request(contact ? 'contacts.remove' : 'contacts.add', { user });
        await store.loadContacts();
      })}>{contact ? 'Remove contact' : 'Add to contacts'}</button>
      <button type="button" onClick={() => void store.attempt(blocked ? 'Unblocking' : 'Blocking', async () => {
        await store.client.request(blocked ? 'unblock' : 'block', { user });
        await store.loadContacts();
      })}>{blocked ? 'Unblock' : 'Block'}</button>
    </>
  );
}

function MessageList(props: { store: ChatStore; row: ThreadRow; messages: Msg[]; more: boolean; loading: boolean; unsent: Unsent[] }) {
  const { store, row, messages } = props;
  const ref = useRef<HTMLDivElement>(null);
  const anchor = useRef({ first: 0, height: 0, atBottom: true });
  /** seq → measured height of its row (with the gap after it), for the spacers of a long thread */
  const heights = useRef(new Map<number, number>());
  const [view, setView] = useState({ top: 0, height: 800 });
  const notes = store.notes.get(row.thread) ?? [];

  const heightOf = (i: number) => heights.current.get(messages[i]!.seq) ?? ESTIMATED_ROW_PX;
  // Where the viewport will be once the layout effect below has run: at the bottom, or moved down
  // by the rows just loaded above (so this render already has the rows the reader will see).
  const a = anchor.current;
  let top = view.top;
  if (!a.atBottom && a.first !== 0 && messages.length > 0 && messages[0]!.seq < a.first) {
    for (let i = 0; i < messages.length && messages[i]!.seq < a.first; i++) top += heightOf(i);
  }
  const win = rowWindow(messages.length, heightOf, a.atBottom ? totalHeight(messages.length, heightOf) - view.height : top, view.height);

  // Keep the view where the reader is: at the bottom as messages arrive, in place as older ones
  // load above or rows above change from their estimated to their measured height.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    // Every rendered row is measured (also in a short thread, so that the first windowed render
    // knows the rows it turns into spacers). Only a windowed list had rows at their assumed height
    // (in a spacer) that are now real: their difference above the viewport is made up.
    const windowed = messages.length >= WINDOW_FROM;
    let shift = 0;
    const gap = rowGap(el);
    for (const li of el.querySelectorAll<HTMLLIElement>('li.msg[data-seq]')) {
      const seq = Number(li.dataset.seq);
      const measured = li.offsetHeight + gap;
      const assumed = heights.current.get(seq) ?? ESTIMATED_ROW_PX;
      if (measured === assumed) continue;
      heights.current.set(seq, measured);
      if (windowed && li.offsetTop + li.offsetHeight <= el.scrollTop) shift += measured - assumed;
    }
    const first = messages[0]?.seq ?? 0;
    const an = anchor.current;
    if (an.atBottom) el.scrollTop = el.scrollHeight;
    else if (an.first !== 0 && first < an.first) el.scrollTop += el.scrollHeight - an.height;
    else if (shift !== 0) el.scrollTop += shift;
    an.first = first;
    an.height = el.scrollHeight;
    if (windowed && (Math.abs(view.top - el.scrollTop) > 1 || view.height !== el.clientHeight)) setView({ top: el.scrollTop, height: el.clientHeight });
  });

  const onScroll = () => {
    const el = ref.current!;
    anchor.current.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    anchor.current.height = el.scrollHeight;
    if (messages.length >= WINDOW_FROM) setView({ top: el.scrollTop, height: el.clientHeight });
    if (el.scrollTop < 80 && props.more && !props.loading) void store.loadOlder(row.thread);
  };

  return (
    <div class="messages" ref={ref} onScroll={onScroll} role="log" aria-label="Messages" aria-busy={props.loading} tabIndex={0} data-count={messages.length}><ol>
      {props.loading && <li class="hint">Loading older messages…</li>}
      {!props.loading && props.more && <li class="hint"><button type="button" class="link" onClick={() => void store.loadOlder(row.thread)}>Load older messages</button></li>}
      {!props.more && messages.length === 0 && props.unsent.length === 0 && <li class="hint">No messages yet. Say hello!</li>}
      {win.before > 0 && <li class="spacer" aria-hidden="true" style={{ height: `${win.before}px` }} />}
      {messages.slice(win.start, win.end).map((m) => {
        const mine = m.from === store.session.user;
        return <MessageItem key={m.seq} store={store} m={m} mine={mine} group={row.kind === 'group'} tick={mine ? store.tickOf(row, m) : undefined} from={mine ? '' : store.nameOf(m.from)} />;
      })}
      {win.after > 0 && <li class="spacer" aria-hidden="true" style={{ height: `${win.after}px` }} />}
      {notes.map((n) => <li key={n.key} class="note">{n.text}</li>)}
      {props.unsent.map((u) => <UnsentItem key={u.cid} store={store} u={u} />)}
    </ol></div>
  );
}

function totalHeight(count: number, heightOf: (i: number) => number): number {
  let y = 0;
  for (let i = 0; i < count; i++) y += heightOf(i);
  return y;
}

/** The list's gap between rows (px): part of each row's share of the height. */
function rowGap(el: HTMLElement): number {
  const ol = el.firstElementChild as HTMLElement | null;
  return ol ? parseFloat(getComputedStyle(ol).rowGap) || 0 : 0;
}

interface MessageItemProps { store: ChatStore; m: Msg; mine: boolean; group: boolean; tick?: Tick; from: string }

/**
 * One message. Re-rendered only when its own props change: a thread of thousands of messages
 * re-renders only what changed (a new page, a tick), not every bubble.
 */
class MessageItem extends Component<MessageItemProps> {
  override shouldComponentUpdate(next: MessageItemProps): boolean {
    const p = this.props;
    return next.m !== p.m || next.tick !== p.tick || next.from !== p.from || next.group !== p.group;
  }

  override render({ store, m, mine, group, tick, from }: MessageItemProps) {
    return (
      <li class={`msg ${mine ? 'mine' : 'theirs'}`} data-seq={m.seq} data-tick={tick}>
        {!mine && group && <span class="from">{from}</span>}
        <span class="body">{m.deleted ? <em>Message deleted</em> : m.body}</span>
        {m.media && !m.deleted && <Attachment store={store} media={m.media} />}
        <span class="meta">
          <time dateTime={new Date(m.ts).toISOString()} title={fullTime(m.ts)}>{shortTime(m.ts)}</time>
          {m.edited && <span> · edited</span>}
          {tick && <span class={`tick ${tick}`} aria-label={TICK_TEXT[tick][1]} title={TICK_TEXT[tick][1]}>{TICK_TEXT[tick][0]}</span>}
        </span>
      </li>
    );
  }
}

function UnsentItem({ store, u }: { store: ChatStore; u: Unsent }) {
  const tick: Tick = u.error ? 'failed' : 'pending';
  return (
    <li class="msg mine unsent" data-tick={tick}>
      {u.body && <span class="body">{u.body}</span>}
      {u.file && (
        <span class="attachment">
          {u.file.name}{' '}
          {!u.error && <progress max={1} value={u.file.progress} aria-label={`Uploading ${u.file.name}`}>{Math.round(u.file.progress * 100)}%</progress>}
        </span>
      )}
      <span class="meta">
        <time dateTime={new Date(u.ts).toISOString()}>{shortTime(u.ts)}</time>
        <span class={`tick ${tick}`} aria-label={TICK_TEXT[tick][1]} title={TICK_TEXT[tick][1]}>{TICK_TEXT[tick][0]}</span>
      </span>
      {u.waiting && !u.error && <span class="waiting" role="status">{u.waiting}</span>}
      {u.error && (
        <span class="error" role="alert">
          {u.error} <button type="button" onClick={() => store.retry(u.cid)}>Retry</button>
          <button type="button" onClick={() => store.discard(u.cid)}>Discard</button>
        </span>
      )}
    </li>
  );
}

/** An image is shown (fetched through the SDK, as an object URL); any other file offers a download. */
function Attachment({ store, media }: { store: ChatStore; media: Media }) {
  const [url, setUrl] = useState<string | undefined>();
  const [error, setError] = useState('');
  const image = /^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(media.mime);
  const name = media.name ?? (image ? 'image' : 'file');
  useEffect(() => {
    if (!image) return;
    let gone = false;
    store.mediaUrl(media.id).then((u) => { if (!gone) setUrl(u); }, (err) => { if (!gone) setError(describeError(err, 'Loading the image')); });
    return () => { gone = true; };
  }, [media.id]);
  const download = async () => {
    try {
      const href = await store.mediaUrl(media.id);
      const a = document.createElement('a');
      a.href = href;
      a.download = name;
      a.click();
    } catch (err) {
      store.notify(describeError(err, `Downloading ${name}`));
    }
  };
  return (
    <span class="attachment" data-media={media.id}>
      {image && url && <img src={url} alt={name} class="preview-image" />}
      {image && !url && !error && <span class="hint">Loading image…</span>}
      {error && <span class="error" role="alert">{error}</span>}
      <span class="file">
        {!image && <>File: {name} ({sizeText(media.size)}) </>}
        <button type="button" class="link" onClick={() => void download()}>Download{image ? ` ${name}` : ''}</button>
      </span>
    </span>
  );
}

function sizeText(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function TypingLine({ store, thread }: { store: ChatStore; thread: string }) {
  const who = store.typingIn(thread).map((u) => store.nameOf(u));
  return (
    <p class="typing" aria-live="polite">
      {who.length === 0 ? '' : `${who.join(', ')} ${who.length === 1 ? 'is' : 'are'} typing…`}
    </p>
  );
}

export function Composer(props: { store: ChatStore; onSend: (body: string) => Promise<unknown>; onTyping?: () => void; label?: string; onFile?: (file: File) => void }) {
  const [text, setText] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const submit = (e?: Event) => {
    e?.preventDefault();
    const body = text.trim();
    if (!body) return;
    if (new TextEncoder().encode(body).byteLength > 16_384) {
      props.store.notify('The message is too large: at most 16 KiB of text.');
      return;
    }
    setText('');
    void props.onSend(body);
    input.current?.focus();
  };
  return (
    <form class="composer" onSubmit={submit}>
      <label class="visually-hidden" for="composer-text">{props.label ?? 'Message'}</label>
      <textarea
        id="composer-text"
        ref={input}
        rows={1}
        placeholder="Write a message"
        value={text}
        onInput={(e) => {
          setText(e.currentTarget.value);
          props.onTyping?.();
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submit(e);
        }}
      />
      {props.onFile && (
        <>
          <input type="file" ref={picker} class="visually-hidden" tabIndex={-1} aria-hidden="true" onChange={(e) => {
            const files = e.currentTarget.files;
            for (const f of files ? Array.from(files) : []) props.onFile!(f);
            e.currentTarget.value = '';
          }} />
          <button type="button" title="Attach a file" onClick={() => picker.current?.click()}>Attach</button>
        </>
      )}
      <button type="submit">Send</button>
    </form>
  );
}

/** Starts a 1:1 chat by username: opens the existing thread, or a page whose first message creates it. */
export function NewChatView({ store }: { store: ChatStore }) {
  const [username, setUsername] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    const found = await store.attempt('Finding the user', () => store.findUser(username)).catch(() => undefined);
    if (!found) {
      setError(`No user named “${username.trim()}”.`);
      return;
    }
    const row = store.directWith(found.user);
    if (row) go('t', row.thread);
    else go('to', found.user);
  };
  return (
    <section class="form-page" aria-labelledby="new-chat-title">
      <h2 id="new-chat-title">New chat</h2>
      <form onSubmit={submit}>
        <label>
          Username
          <input name="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} autoFocus />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit">Start chat</button>
      </form>
    </section>
  );
}

/** A 1:1 chat that does not exist yet: its first message creates the thread. */
export function ToUserView({ store, user }: { store: ChatStore; user: string }) {
  useStore(store);
  const row = store.directWith(user);
  useEffect(() => {
    if (row) go('t', row.thread);
  }, [row?.thread]);
  const waiting = [...store.unsent.values()].filter((u) => u.to === user);
  return (
    <section class="conversation" aria-labelledby="conv-title">
      <header class="conv-head"><div><h2 id="conv-title">{store.nameOf(user)}</h2><p class="presence">New chat</p></div></header>
      <div class="messages" role="log" aria-label="Messages"><ol>
        {waiting.length === 0 && <li class="hint">Write the first message.</li>}
        {waiting.map((u) => <UnsentItem key={u.cid} store={store} u={u} />)}
      </ol></div>
      <Composer store={store} onSend={async (body) => {
        const thread = await store.send({ to: user }, body);
        if (thread) go('t', thread);
      }} onFile={async (f) => {
        const thread = await store.sendFile({ to: user }, f, f.name);
        if (thread) go('t', thread);
      }} />
    </section>
  );
}
