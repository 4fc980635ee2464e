// Groups: create one (title and members by username); its info page: members, add, remove
// (admins), rename, leave.
import { useEffect, useState } from 'preact/hooks';
import type { ChatStore } from './chat-store.js';
import { go, useStore } from './use-store.js';

/** "ann, bob carl" → usernames, each looked up; the first unknown one is reported by name. */
async function usersOf(store: ChatStore, list: string): Promise<string[]> {
  const names = list.split(/[\s,]+/).map((s) => s.trim().replace(/^@/, '')).filter(Boolean);
  const users: string[] = [];
  for (const n of names) {
    try {
      users.push((await store.findUser(n)).user);
    } catch {
      throw new Error(`No user named “${n}”.`);
    }
  }
  return users;
}

export function NewGroupView({ store }: { store: ChatStore }) {
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      const users = await usersOf(store, members);
      const res = await store.attempt('Creating the group', () =>
        store.client.request<{ thread: string }>('group.create', { title: title.trim(), members: users, cid: crypto.getRandomValues(new Uint32Array(2)).join('') }));
      if (res) {
        await store.refreshRow(res.thread);
        go('t', res.thread);
      }
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="form-page" aria-labelledby="new-group-title">
      <h2 id="new-group-title">New group</h2>
      <form onSubmit={submit}>
        <label>
          Group name
          <input name="title" required maxLength={100} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <label>
          Members (usernames, separated by commas or spaces)
          <input name="members" value={members} onInput={(e) => setMembers(e.currentTarget.value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Create group</button>
      </form>
    </section>
  );
}

export function GroupInfoView({ store, thread }: { store: ChatStore; thread: string }) {
  useStore(store);
  useEffect(() => {
    void store.refreshRow(thread);
  }, [thread]);
  const row = store.threads.get(thread);
  const [add, setAdd] = useState('');
  const [title, setTitle] = useState('');
  const [error, setError] = useState('');
  if (!row) return <section class="form-page"><p class="hint">Loading…</p></section>;
  const me = store.session.user;
  const admin = row.admins?.includes(me) ?? false;
  const member = (row as { member?: boolean }).member !== false;

  const addMembers = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const users = await usersOf(store, add);
      if (users.length === 0) return;
      const ok = await store.attempt('Adding members', () => store.client.request('group.add', { thread, users }));
      if (ok !== undefined) setAdd('');
      await store.refreshRow(thread);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const rename = async (e: Event) => {
    e.preventDefault();
    if (!title.trim()) return;
    const ok = await store.attempt('Renaming the group', () => store.client.request('group.title', { thread, title: title.trim() }));
    if (ok !== undefined) setTitle('');
    await store.refreshRow(thread);
  };

  return (
    <section class="form-page" aria-labelledby="group-title">
      <p><a href={`#/t/${encodeURIComponent(thread)}`}>← Back to the conversation</a></p>
      <h2 id="group-title">{store.titleOf(row)}</h2>
      <h3 id="members-title">Members ({row.members.length})</h3>
      <ul class="members" aria-labelledby="members-title">
        {row.members.map((u) => (
          <li key={u} data-user={u}>
            <span>{u === me ? `${store.nameOf(u)} (you)` : store.nameOf(u)}</span>
            {row.admins?.includes(u) && <span class="tag">admin</span>}
            {admin && u !== me && member && (
              <button type="button" onClick={() => void store.attempt('Removing the member', async () => {
                await store.client.request('group.remove', { thread, users: [u] });
                await store.refreshRow(thread);
              })}>Remove {store.nameOf(u)}</button>
            )}
          </li>
        ))}
      </ul>
      {member && admin && (
        <form onSubmit={addMembers}>
          <label>
            Add members (usernames)
            <input name="add" value={add} onInput={(e) => setAdd(e.currentTarget.value)} />
          </label>
          <button type="submit">Add</button>
        </form>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {member && (
        <form onSubmit={rename}>
          <label>
            New group name
            <input name="title" maxLength={100} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
          </label>
          <button type="submit">Rename</button>
        </form>
      )}
      {member && (
        <button type="button" class="danger" onClick={() => void store.attempt('Leaving the group', async () => {
          await store.client.request('group.leave', { thread });
          await store.refreshRow(thread);
          go();
        })}>Leave group</button>
      )}
    </section>
  );
}
