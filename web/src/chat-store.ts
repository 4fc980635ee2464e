// The app's state for one signed-in device: the SDK client and what the views show (inbox rows,
// loaded history, unsent messages, receipts, typing, presence, names, notices). Views subscribe
// and re-render on `changed()`; every server event is folded in here, in one place.
import { ParleyClient } from '../../client/client.js';
import { ParleyError } from '../../client/errors.js';
import { logout } from '../../client/http.js';
import { IndexedDbPersistence } from '../../client/indexeddb-persistence.js';
import type { CmsgEvent, ContactRow, Msg, MsgEvent, ReceiptEvent, ThreadEvent, ThreadRow } from '../../client/types.js';
import { describeError } from './describe-error.js';
import { DesktopNotifications } from './desktop-notifications.js';
import { HistoryCache, type CachedScreen, type Watermarks } from './history-cache.js';
import { apiBase, forgetSession, wsUrl, type Session } from './session.js';

export type Conn = 'connecting' | 'live' | 'reconnecting' | 'closed';
export type Tick = 'pending' | 'failed' | 'sent' | 'delivered' | 'read';

/** A message the server has not answered yet (or refused). */
export interface Unsent {
  cid: string; thread?: string; to?: string; body: string; ts: number; error?: string;
  /** why it waits and for how long, while the SDK sends it again by itself (rate limited, …) */
  waiting?: string;
  /** an attachment being uploaded: its name and the share of bytes the server has (0..1) */
  file?: { name: string; progress: number; blob: Blob };
}
export interface Loaded { list: Msg[]; more: boolean; loading: boolean }
export interface Notice { id: number; text: string }
export interface Presence { online: boolean; last: number }
export interface ThreadNote { key: string; text: string; ts: number }

const HISTORY_PAGE = 50;
/** Upload chunk: small enough that the progress bar moves on a slow link. */
const UPLOAD_CHUNK = 256 * 1024;
const INBOX_PAGE = 30;
const TYPING_SHOWN_MS = 4_000;
const TYPING_SENT_EVERY_MS = 3_000;

export class ChatStore {
  readonly client: ParleyClient;
  conn: Conn = 'connecting';
  online = navigator.onLine;
  threads = new Map<string, ThreadRow>();
  inboxCursor?: string;
  inboxLoaded = false;
  inboxLoading = false;
  loaded = new Map<string, Loaded>();
  unsent = new Map<string, Unsent>();
  /** thread → user → watermarks from receipts */
  receipts = new Map<string, Map<string, { delivered: number; read: number }>>();
  typing = new Map<string, Map<string, number>>();
  presence = new Map<string, Presence>();
  names = new Map<string, string>();
  notes = new Map<string, ThreadNote[]>();
  contacts: ContactRow[] = [];
  blocks: string[] = [];
  notices: Notice[] = [];
  /** The thread on screen: its new messages are read at once. */
  open?: string;
  /** channel id → posts shown (live and history) */
  channelPosts = new Map<string, CmsgEvent[]>();
  /** Set when the session ended for good (revoked, expired): the app goes back to sign-in. */
  ended?: string;
  /** Desktop notifications of this device (Web Push). */
  readonly push: DesktopNotifications;

  private readonly listeners = new Set<() => void>();
  private readonly cache: HistoryCache;
  private readonly persistence?: IndexedDbPersistence;
  /** Resolves once what the cache held is on screen (threads opened before wait for it). */
  private readonly cacheReady: Promise<void>;
  /** Threads whose shown page came from the cache: their newest page is fetched on opening. */
  private readonly stale = new Set<string>();
  private cacheApplied = false;
  private readonly mediaUrls = new Map<string, Promise<string>>();
  private readonly watched = new Set<string>();
  private typingSent = new Map<string, number>();
  private noticeId = 0;
  private scheduled = false;

  constructor(readonly session: Session) {
    this.names.set(session.user, session.username);
    this.cache = new HistoryCache(session.user);
    this.push = new DesktopNotifications(session, () => this.changed());
    this.cacheReady = this.cache.load().then((screen) => this.applyCached(screen));
    // The SDK keeps this device's cursor (and its own cache of recent messages) in IndexedDB: a
    // reload sends hello {since} and only the events after it are replayed.
    this.persistence = typeof indexedDB === 'undefined' ? undefined : new IndexedDbPersistence({ name: `parley-${session.user}` });
    this.client = new ParleyClient({ url: wsUrl(), token: session.token, persistence: this.persistence });
    const c = this.client;
    c.on('reset', () => {
      // The server's logs are not the ones the cache saw: drop every copy and start over.
      void this.cache.clear();
      this.threads.clear();
      this.loaded.clear();
      this.stale.clear();
      this.receipts.clear();
      void this.loadInbox();
    });
    c.on('msg', (m) => this.onMsg(m));
    c.on('receipt', (r) => this.onReceipt(r));
    c.on('thread', (e) => this.onThreadEvent(e));
    c.on('typing', (e) => {
      if (e.user === session.user) return;
      let m = this.typing.get(e.thread);
      if (!m) this.typing.set(e.thread, (m = new Map()));
      m.set(e.user, Date.now() + TYPING_SHOWN_MS);
      setTimeout(() => this.changed(), TYPING_SHOWN_MS + 50);
      this.changed();
    });
    c.on('presence', (p) => {
      this.presence.set(p.user, { online: p.online, last: p.last });
      this.changed();
    });
    c.on('cmsg', (p) => this.addPosts(p.channel, [p]));
    c.on('close', (info) => {
      this.conn = info.willReconnect ? 'reconnecting' : 'closed';
      if (!info.willReconnect && (info.code === 4001 || info.code === 4003 || info.code === 4004)) {
        this.endSession(info.code === 4003 ? 'This device was signed out.' : info.code === 4004 ? `This account is banned${info.reason ? `: ${info.reason}` : ''}.` : 'Your session has expired. Please sign in again.');
      }
      this.changed();
    });
    c.on('synced', () => {
      const wasDown = this.conn === 'reconnecting';
      this.conn = 'live';
      // Presence subscriptions live on a socket: a new socket needs them again.
      if (this.watched.size > 0) void this.subscribePresence([...this.watched]);
      if (wasDown) void this.refreshAfterReconnect();
      this.changed();
    });
    c.on('error', (err) => this.notify(describeError(err)));
    c.on('sendRetry', (e) => {
      const u = this.unsent.get(e.cid);
      if (!u) return;
      const s = Math.max(1, Math.ceil(e.delay / 1000));
      const why = e.error.code === 'rate_limited' ? 'Too many messages at once' : 'The server could not take it';
      this.unsent.set(e.cid, { ...u, waiting: `${why} — sending again in ${s} s.` });
      this.changed();
    });
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOnline);
  }

  private readonly onOnline = () => {
    this.online = navigator.onLine;
    this.changed();
  };

  // ---- subscription ----

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Re-renders once per frame however many events arrived (a burst of thousands of events is
   * one render, not thousands). A hidden tab gets no animation frames: a timer stands in.
   */
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    let done = false;
    const flush = () => {
      if (done) return;
      done = true;
      this.scheduled = false;
      for (const fn of this.listeners) fn();
      // Not before the cached screen is applied: a snapshot without it would overwrite it.
      if (this.ended === undefined && this.cacheApplied) this.cache.saveSoon(() => this.snapshot());
    };
    requestAnimationFrame(flush);
    setTimeout(flush, 100);
  }

  private snapshot(): CachedScreen {
    const messages: Record<string, Msg[]> = {};
    for (const [thread, l] of this.loaded) if (l.list.length > 0) messages[thread] = l.list;
    const receipts = [...this.receipts].map(([thread, marks]) => [thread, [...marks]] as [string, [string, Watermarks][]]);
    return { threads: [...this.threads.values()], messages, names: [...this.names], receipts };
  }

  /** What the last session showed, where the network has not answered yet. */
  private applyCached(screen: CachedScreen | undefined): void {
    this.cacheApplied = true;
    if (!screen || this.ended !== undefined) return;
    for (const row of screen.threads) if (!this.threads.has(row.thread)) this.threads.set(row.thread, row);
    for (const [thread, list] of Object.entries(screen.messages)) {
      if (this.loaded.has(thread)) continue;
      this.loaded.set(thread, { list, more: true, loading: false });
      this.stale.add(thread);
    }
    for (const [user, name] of screen.names) if (!this.names.has(user)) this.names.set(user, name);
    // Receipts that arrived meanwhile are newer or equal: watermarks only grow, so keep the larger.
    for (const [thread, marks] of screen.receipts ?? []) {
      for (const [user, w] of marks) this.raiseMarks(thread, user, w.delivered, w.read);
    }
    this.changed();
  }

  notify(text: string): void {
    this.notices = [...this.notices.slice(-4), { id: ++this.noticeId, text }];
    this.changed();
  }

  dismiss(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.changed();
  }

  /** Runs an action, showing its failure in words; answers undefined when it failed. */
  async attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.notify(describeError(err, what));
      return undefined;
    }
  }

  // ---- life ----

  async start(): Promise<void> {
    void this.push.init();
    await this.cacheReady;
    try {
      await this.client.connect();
    } catch (err) {
      if (err instanceof ParleyError && err.code === 'unauthorized') this.endSession('Your session has ended. Please sign in again.');
      else this.notify(describeError(err, 'Connecting'));
      return;
    }
    await this.loadInbox();
  }

  async logout(): Promise<void> {
    // While the token still works: no more notifications for this device.
    await this.push.signOut();
    try {
      await logout(apiBase(), this.session.token);
    } catch (err) {
      // Signed out here anyway; the device stays listed until revoked elsewhere.
      if (!(err instanceof ParleyError && err.code === 'unauthorized')) this.notify(describeError(err, 'Signing out on the server'));
    }
    this.endSession('');
  }

  endSession(why: string): void {
    if (this.ended !== undefined) return;
    this.ended = why;
    forgetSession();
    // Signed out (here or from elsewhere): nothing of the account stays in this browser.
    void this.cache.clear();
    void this.push.signOut(true);
    const persistence = this.persistence;
    void this.client.close().then(() => persistence?.destroy()).catch(() => undefined);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOnline);
    this.changed();
  }

  private async refreshAfterReconnect(): Promise<void> {
    // Rows changed while away arrived as events; counts (unread) are refreshed from the server.
    await this.loadInbox(true);
  }

  // ---- names ----

  nameOf(user: string): string {
    const name = this.names.get(user);
    if (name !== undefined) return name;
    if (user !== '' && !this.namesAsked.has(user)) {
      this.nameless.add(user);
      if (this.nameless.size === 1) setTimeout(() => void this.lookUpNames(), 0);
    }
    return `user ${user.slice(-6)}`;
  }

  /** Ids shown without a name since the last lookup, and those asked for already (once each). */
  private readonly nameless = new Set<string>();
  private readonly namesAsked = new Set<string>();

  /** One users.get for every id shown without a name (a group's members, senders). */
  private async lookUpNames(): Promise<void> {
    const ids = [...this.nameless];
    this.nameless.clear();
    for (const id of ids) this.namesAsked.add(id);
    try {
      for (const u of await this.client.usersGet(ids)) this.learnName(u.user, 'deleted' in u ? 'Deleted account' : u.name || u.username || undefined);
    } catch {
      for (const id of ids) this.namesAsked.delete(id); // offline: asked again when shown again
    }
  }

  learnName(user: string, name: string | undefined): void {
    if (name && this.names.get(user) !== name) {
      this.names.set(user, name);
      this.changed();
    }
  }

  /** The other person of a 1:1 thread. */
  otherOf(row: ThreadRow): string | undefined {
    return row.members.find((m) => m !== this.session.user);
  }

  titleOf(row: ThreadRow): string {
    return row.nickname || row.title || (row.kind === 'direct' ? this.nameOf(this.otherOf(row) ?? '') : 'Group');
  }

  // ---- inbox ----

  /** Newest first, as the server orders it. */
  inbox(): ThreadRow[] {
    return [...this.threads.values()].sort((a, b) => b.updated - a.updated);
  }

  async loadInbox(fresh = true): Promise<void> {
    if (this.inboxLoading) return;
    this.inboxLoading = true;
    this.changed();
    try {
      const page = await this.client.request<{ threads: ThreadRow[]; cursor?: string }>('inbox', { limit: INBOX_PAGE, before: fresh ? undefined : this.inboxCursor });
      for (const row of page.threads) this.putRow(row);
      this.inboxCursor = page.cursor;
      this.inboxLoaded = true;
    } catch (err) {
      this.notify(describeError(err, 'Loading the inbox'));
    } finally {
      this.inboxLoading = false;
      this.changed();
    }
  }

  private putRow(row: ThreadRow): void {
    this.threads.set(row.thread, row);
    if (row.kind === 'direct') {
      const other = this.otherOf(row);
      if (other && row.title) this.learnName(other, row.title);
    }
  }

  async refreshRow(thread: string): Promise<ThreadRow | undefined> {
    try {
      const row = await this.client.request<ThreadRow>('thread.get', { thread });
      this.putRow(row);
      this.changed();
      return row;
    } catch (err) {
      if (err instanceof ParleyError && err.code === 'not_found') return undefined;
      this.notify(describeError(err, 'Loading a conversation'));
      return undefined;
    }
  }

  // ---- events ----

  private onMsg(m: MsgEvent): void {
    if (m.cid) this.unsent.delete(m.cid);
    const l = this.loaded.get(m.thread);
    if (l) insertBySeq(l.list, m);
    const row = this.threads.get(m.thread);
    if (row) {
      if (!row.last || row.last.seq <= m.seq) row.last = m;
      row.updated = Math.max(row.updated, m.ts);
      if (m.from !== this.session.user && m.seq > row.readSeq) {
        if (this.open === m.thread && document.visibilityState === 'visible') void this.markRead(m.thread, m.seq);
        else row.unread++;
      }
      this.threads.set(m.thread, { ...row });
    } else {
      void this.refreshRow(m.thread);
    }
    this.typing.get(m.thread)?.delete(m.from);
    this.changed();
  }

  private onReceipt(r: ReceiptEvent): void {
    if (r.user === this.session.user) {
      // Read on another device of mine: the unread count follows.
      const row = this.threads.get(r.thread);
      if (row && r.read !== undefined && r.read > row.readSeq) {
        void this.refreshRow(r.thread);
      }
      return;
    }
    this.raiseMarks(r.thread, r.user, r.delivered ?? 0, r.read ?? 0);
    this.changed();
  }

  /** A member's watermarks in a thread move up to these (reading implies delivery; neither goes back). */
  private raiseMarks(thread: string, user: string, delivered: number, read: number): void {
    let m = this.receipts.get(thread);
    if (!m) this.receipts.set(thread, (m = new Map()));
    const w = m.get(user) ?? { delivered: 0, read: 0 };
    m.set(user, { delivered: Math.max(w.delivered, delivered, read), read: Math.max(w.read, read) });
  }

  private onThreadEvent(e: ThreadEvent): void {
    const who = this.nameOf(e.by);
    const users = (e.users ?? []).map((u) => this.nameOf(u)).join(', ');
    const text =
      e.event === 'created' ? `${who} created the group${e.title ? ` “${e.title}”` : ''}`
      : e.event === 'added' ? `${who} added ${users}`
      : e.event === 'removed' ? `${who} removed ${users}`
      : e.event === 'left' ? `${who} left`
      : `${who} renamed the group to “${e.title ?? ''}”`;
    const notes = this.notes.get(e.thread) ?? [];
    this.notes.set(e.thread, [...notes, { key: `u${e.u}`, text, ts: Date.now() }]);
    void this.refreshRow(e.thread);
  }

  // ---- a conversation ----

  async openThread(thread: string): Promise<void> {
    this.open = thread;
    await this.cacheReady;
    if (!this.threads.has(thread)) await this.refreshRow(thread);
    if (!this.loaded.has(thread)) await this.loadOlder(thread);
    else if (this.stale.has(thread)) await this.loadNewest(thread);
    if (this.open !== thread) return;
    const row = this.threads.get(thread);
    const other = row?.kind === 'direct' ? this.otherOf(row) : undefined;
    if (other) void this.watch([other]);
    const newest = this.loaded.get(thread)?.list.at(-1);
    if (row && newest && (row.unread > 0 || row.readSeq < newest.seq)) void this.markRead(thread, newest.seq);
  }

  closeThread(thread: string): void {
    if (this.open === thread) this.open = undefined;
  }

  /** The first page (newest), or the page before the oldest loaded. */
  async loadOlder(thread: string): Promise<void> {
    let l = this.loaded.get(thread);
    if (l?.loading || (l && !l.more)) return;
    if (!l) this.loaded.set(thread, (l = { list: [], more: true, loading: false }));
    l.loading = true;
    this.changed();
    try {
      const before = l.list[0]?.seq;
      const page = await this.client.history({ thread, before, limit: HISTORY_PAGE });
      for (const m of page.messages) insertBySeq(l.list, m);
      l.more = page.more;
    } catch (err) {
      l.more = false;
      this.notify(describeError(err, 'Loading the history'));
    } finally {
      l.loading = false;
      this.changed();
    }
  }

  /** Replaces a cached page by the server's newest page. */
  private async loadNewest(thread: string): Promise<void> {
    const l = this.loaded.get(thread);
    if (!l || l.loading) return;
    l.loading = true;
    this.changed();
    try {
      const page = await this.client.history({ thread, limit: HISTORY_PAGE });
      const list: Msg[] = [];
      for (const m of page.messages) insertBySeq(list, m);
      // Live messages that arrived meanwhile are newer than the page: keep them.
      const newest = list.at(-1)?.seq ?? 0;
      for (const m of l.list) if (m.seq > newest) insertBySeq(list, m);
      this.loaded.set(thread, { list, more: page.more, loading: false });
      this.stale.delete(thread);
    } catch (err) {
      l.loading = false;
      this.notify(describeError(err, 'Loading the newest messages'));
    } finally {
      this.changed();
    }
  }

  async markRead(thread: string, seq: number): Promise<void> {
    const row = this.threads.get(thread);
    if (row) {
      row.unread = 0;
      row.readSeq = Math.max(row.readSeq, seq);
      this.changed();
    }
    await this.attempt('Marking as read', () => this.client.request('read', { thread, seq }));
  }

  /** Through the SDK's outbox: shown at once as pending, resent with the same cid until answered. */
  async send(target: { thread: string } | { to: string }, body: string): Promise<string | undefined> {
    const cid = randomCid();
    // The next keystroke after a send starts a new message: announce typing again at once.
    if ('thread' in target) this.typingSent.delete(target.thread);
    const u: Unsent = { cid, body, ts: Date.now(), ...target };
    this.unsent.set(cid, u);
    this.changed();
    try {
      const res = await this.client.send({ ...target, body, cid });
      this.unsent.delete(cid);
      // The msg event normally comes first; if not, the answer alone places the message.
      const l = this.loaded.get(res.thread);
      if (l && !l.list.some((m) => m.seq === res.seq)) insertBySeq(l.list, { thread: res.thread, seq: res.seq, id: res.id, from: this.session.user, device: this.session.device, body, ts: res.ts });
      if (!this.threads.has(res.thread)) void this.refreshRow(res.thread);
      this.changed();
      return res.thread;
    } catch (err) {
      u.error = describeError(err, 'Sending');
      this.unsent.set(cid, { ...u });
      this.changed();
      return undefined;
    }
  }

  retry(cid: string): void {
    const u = this.unsent.get(cid);
    if (!u) return;
    this.unsent.delete(cid);
    const target = u.thread ? { thread: u.thread } : { to: u.to! };
    if (u.file) void this.sendFile(target, u.file.blob, u.file.name);
    else void this.send(target, u.body);
  }

  /** Uploads a file (progress shown on its pending bubble), then sends it through the outbox. */
  async sendFile(target: { thread: string } | { to: string }, blob: Blob, name: string): Promise<string | undefined> {
    const cid = randomCid();
    const u: Unsent = { cid, body: '', ts: Date.now(), ...target, file: { name, progress: 0, blob } };
    this.unsent.set(cid, u);
    this.changed();
    try {
      const media = await this.client.upload(blob, {
        mime: blob.type || 'application/octet-stream',
        name: name.slice(0, 200),
        chunkBytes: UPLOAD_CHUNK,
        onProgress: (sent, total) => {
          const cur = this.unsent.get(cid);
          if (cur?.file) this.unsent.set(cid, { ...cur, file: { ...cur.file, progress: total ? sent / total : 1 } });
          this.changed();
        },
      });
      const res = await this.client.send({ ...target, media, cid });
      this.unsent.delete(cid);
      if (!this.threads.has(res.thread)) void this.refreshRow(res.thread);
      this.changed();
      return res.thread;
    } catch (err) {
      const cur = this.unsent.get(cid) ?? u;
      this.unsent.set(cid, { ...cur, error: describeError(err, `Sending ${name}`) });
      this.changed();
      return undefined;
    }
  }

  /** A media's bytes as an object URL, fetched once per media and kept for the page's life. */
  mediaUrl(media: string): Promise<string> {
    let url = this.mediaUrls.get(media);
    if (!url) {
      url = this.client.download(media).then((d) => URL.createObjectURL(new Blob([d.data as Uint8Array<ArrayBuffer>], { type: d.mime })));
      url.catch(() => this.mediaUrls.delete(media));
      this.mediaUrls.set(media, url);
    }
    return url;
  }

  discard(cid: string): void {
    this.unsent.delete(cid);
    this.changed();
  }

  unsentIn(thread: string): Unsent[] {
    return [...this.unsent.values()].filter((u) => u.thread === thread);
  }

  /** pending → sent → delivered → read: by the other members' receipt watermarks (all of them, in a group). */
  tickOf(row: ThreadRow | undefined, m: Msg): Tick {
    const others = row ? row.members.filter((u) => u !== this.session.user) : [];
    if (others.length === 0) return 'sent';
    const marks = this.receipts.get(m.thread);
    const all = (k: 'delivered' | 'read') => others.every((u) => (marks?.get(u)?.[k] ?? 0) >= m.seq);
    return all('read') ? 'read' : all('delivered') ? 'delivered' : 'sent';
  }

  /** Tells the others I am typing, at most once per few seconds. */
  typed(thread: string): void {
    const now = Date.now();
    if (now - (this.typingSent.get(thread) ?? 0) < TYPING_SENT_EVERY_MS) return;
    this.typingSent.set(thread, now);
    // A typing indicator that does not arrive is harmless: failures are not worth a notice.
    this.client.request('typing', { thread }).catch(() => undefined);
  }

  typingIn(thread: string): string[] {
    const m = this.typing.get(thread);
    if (!m) return [];
    const now = Date.now();
    return [...m].filter(([, until]) => until > now).map(([u]) => u);
  }

  async watch(users: string[]): Promise<void> {
    const fresh = users.filter((u) => !this.watched.has(u));
    if (fresh.length === 0) return;
    for (const u of fresh) this.watched.add(u);
    await this.subscribePresence(fresh);
  }

  private async subscribePresence(users: string[]): Promise<void> {
    try {
      const res = await this.client.request<{ presence: { user: string; online: boolean; last: number }[] }>('presence.sub', { users });
      for (const p of res.presence) this.presence.set(p.user, { online: p.online, last: p.last });
      this.changed();
    } catch (err) {
      this.notify(describeError(err, 'Watching presence'));
    }
  }

  // ---- people ----

  async findUser(username: string): Promise<{ user: string; username: string; name: string }> {
    const found = await this.client.request<{ user: string; username: string; name: string }>('user.find', { username: username.trim().toLowerCase() });
    this.learnName(found.user, found.name || found.username);
    return found;
  }

  /** The 1:1 thread with a username, made by its first message; answers the thread when it already exists. */
  directWith(user: string): ThreadRow | undefined {
    for (const row of this.threads.values()) if (row.kind === 'direct' && row.members.includes(user) && row.members.length === 2) return row;
    return undefined;
  }

  async loadContacts(): Promise<void> {
    await this.attempt('Loading contacts', async () => {
      const [c, b] = await Promise.all([
        this.client.request<{ contacts: ContactRow[] }>('contacts.list'),
        this.client.request<{ users: string[] }>('blocks.list'),
      ]);
      this.contacts = c.contacts;
      for (const row of c.contacts) this.learnName(row.user, row.name);
      this.blocks = b.users;
      this.changed();
    });
  }

  isContact(user: string): boolean {
    return this.contacts.some((c) => c.user === user);
  }

  // ---- channels ----

  addPosts(channel: string, posts: CmsgEvent[]): void {
    const list = this.channelPosts.get(channel) ?? [];
    for (const p of posts) {
      if (list.some((q) => q.seq === p.seq)) continue;
      let i = list.length;
      while (i > 0 && list[i - 1]!.seq > p.seq) i--;
      list.splice(i, 0, p);
    }
    this.channelPosts.set(channel, [...list]);
    this.changed();
  }
}

function insertBySeq(list: Msg[], m: Msg): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.seq > m.seq) i--;
  if (i > 0 && list[i - 1]!.seq === m.seq) {
    list[i - 1] = { ...list[i - 1], ...m };
    return;
  }
  list.splice(i, 0, m);
}

function randomCid(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
