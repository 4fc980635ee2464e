// Channels: find one by name or create one; a channel's page follows it live while open
// (channel.join; left again when the page closes) and lets whoever may post, post.
import { useEffect, useState } from 'preact/hooks';
import type { ChannelInfo, ChannelMode } from '../../client/types.js';
import type { ChatStore } from './chat-store.js';
import { Composer } from './conversation-view.js';
import { describeError } from './describe-error.js';
import { fullTime, shortTime } from './format.js';
import { go, useStore } from './use-store.js';

export function ChannelsView({ store }: { store: ChatStore }) {
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const [create, setCreate] = useState({ name: '', title: '', mode: 'broadcast' as ChannelMode });
  const find = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const info = await store.client.channelGet({ name: name.trim().toLowerCase().replace(/^#/, '') });
      go('c', info.channel);
    } catch (err) {
      setError(describeError(err, 'Finding the channel').replace('not found', `no channel named “${name.trim()}”`));
    }
  };
  const make = async (e: Event) => {
    e.preventDefault();
    const res = await store.attempt('Creating the channel', () => store.client.channelCreate({ name: create.name.trim().toLowerCase(), title: create.title.trim(), mode: create.mode }));
    if (res) go('c', res.channel);
  };
  return (
    <section class="form-page" aria-labelledby="channels-title">
      <h2 id="channels-title">Channels</h2>
      <form onSubmit={find} aria-label="Find a channel">
        <label>
          Channel name
          <input name="channel" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit">Find channel</button>
      </form>
      <h3>Create a channel</h3>
      <form onSubmit={make} aria-label="Create a channel">
        <label>
          Handle (3–32 of a–z, 0–9, _ and .)
          <input name="name" required pattern="[a-z0-9_.]{3,32}" value={create.name} onInput={(e) => setCreate({ ...create, name: e.currentTarget.value })} />
        </label>
        <label>
          Title
          <input name="title" required maxLength={100} value={create.title} onInput={(e) => setCreate({ ...create, title: e.currentTarget.value })} />
        </label>
        <label>
          Who may post
          <select name="mode" value={create.mode} onChange={(e) => setCreate({ ...create, mode: e.currentTarget.value as ChannelMode })}>
            <option value="broadcast">Only me and admins (broadcast)</option>
            <option value="open">Everyone who joined (open)</option>
          </select>
        </label>
        <button type="submit">Create channel</button>
      </form>
    </section>
  );
}

export function ChannelView({ store, channel }: { store: ChatStore; channel: string }) {
  useStore(store);
  const [info, setInfo] = useState<ChannelInfo | undefined>();
  const [joined, setJoined] = useState(false);
  const [more, setMore] = useState(false);
  useEffect(() => {
    let gone = false;
    void (async () => {
      const got = await store.attempt('Loading the channel', () => store.client.channelGet({ channel }));
      if (!got || gone) return;
      setInfo(got);
      const page = await store.attempt('Loading the posts', () => store.client.channelHistory({ channel, limit: 50 }));
      if (page && !gone) {
        store.addPosts(channel, page.messages.map((p) => ({ ...p, t: 'cmsg' as const })));
        setMore(page.more);
      }
      // Follow live from the newest post shown: nothing between history and live is lost.
      const newest = store.channelPosts.get(channel)?.at(-1)?.seq ?? got.seq;
      const j = await store.attempt('Joining the channel', () => store.client.channelJoin(newest > 0 ? { channel, since: newest } : { channel }));
      if (j && !gone) setJoined(true);
    })();
    return () => {
      gone = true;
      if (store.client.channels.has(channel)) store.client.channelLeave({ channel }).catch(() => undefined);
    };
  }, [channel]);

  if (!info) return <section class="form-page" aria-busy="true"><p class="hint">Loading the channel…</p></section>;
  const me = store.session.user;
  const mayPost = info.mode === 'open' || info.owner === me || info.admins.includes(me);
  const posts = store.channelPosts.get(channel) ?? [];
  const older = async () => {
    const page = await store.attempt('Loading older posts', () => store.client.channelHistory({ channel, before: posts[0]?.seq, limit: 50 }));
    if (page) {
      store.addPosts(channel, page.messages.map((p) => ({ ...p, t: 'cmsg' as const })));
      setMore(page.more);
    }
  };
  return (
    <section class="conversation" aria-labelledby="conv-title">
      <header class="conv-head">
        <div>
          <h2 id="conv-title">{info.title}</h2>
          <p class="presence">#{info.name} · {info.mode === 'open' ? 'open to comments' : 'broadcast'}{joined ? ' · following live' : ''}</p>
        </div>
      </header>
      <div class="messages" role="log" aria-label="Posts"><ol>
        {more && <li class="hint"><button type="button" class="link" onClick={() => void older()}>Load older posts</button></li>}
        {posts.length === 0 && <li class="hint">No posts yet.</li>}
        {posts.map((p) => (
          <li key={p.seq} class={`msg ${p.from === me ? 'mine' : 'theirs'}`} data-seq={p.seq}>
            <span class="from">{store.nameOf(p.from)}</span>
            <span class="body">{p.body}</span>
            <span class="meta"><time dateTime={new Date(p.ts).toISOString()} title={fullTime(p.ts)}>{shortTime(p.ts)}</time></span>
          </li>
        ))}
      </ol></div>
      {mayPost ? (
        <Composer store={store} label="Post" onSend={(body) => store.attempt('Posting', () => store.client.channelPost({ channel, body }))} />
      ) : (
        <p class="hint">Only the channel's owner and admins post here.</p>
      )}
    </section>
  );
}
