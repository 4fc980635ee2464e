// Viewers without an account (docs/protocol.md §8.3): the Server-Sent Events stream of a channel
// with Last-Event-ID / ?since resume and keep-alive comments, and its JSON history.
import t from 'tap';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

/** An SSE reader over fetch: every event (id + parsed data) and comment line, in order. */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const events: { id: number; data: any }[] = [];
  const comments: string[] = [];
  const waiters: (() => void)[] = [];
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(':')) comments.push(block);
          else {
            const id = Number(/^id: (\d+)$/m.exec(block)?.[1]);
            const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null');
            events.push({ id, data });
          }
          for (const w of waiters.splice(0)) w();
        }
      }
    } catch {
      // aborted by the test
    }
  })();
  const until = (pred: () => boolean, ms = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (pred() ? resolve() : waiters.push(check));
      setTimeout(() => reject(new Error('stream condition not met in time')), ms).unref();
      check();
    });
  return { res, events, comments, until, close: () => (ac.abort(), done) };
}

t.test('SSE: resume by Last-Event-ID or since, then live; keep-alive comments; counted as subscribers', async (t) => {
  const s = await startTestServer(t, { sseKeepaliveSeconds: 1 });
  const ann = await newUser(s, 'ann');
  const c = await connect(t, s, await newDevice(s, ann));
  const { channel } = await c.request('channel.create', { name: 'sse.news', title: 'SSE' });
  for (let i = 1; i <= 5; i++) await c.request('channel.post', { channel, cid: `p${i}`, body: `post ${i}` });
  const url = `${s.base}/v1/channels/${encodeURIComponent(channel)}/events`;

  const a = await openStream(url, { 'Last-Event-ID': '2' });
  t.teardown(a.close);
  t.equal(a.res.status, 200);
  t.match(a.res.headers.get('content-type'), /^text\/event-stream/);
  await a.until(() => a.events.length === 3);
  t.same(a.events.map((e) => e.id), [3, 4, 5], 'the posts after Last-Event-ID');
  t.match(a.events[0].data, { channel, seq: 3, from: ann.user, body: 'post 3' });
  t.notOk('t' in a.events[0].data);

  const b = await openStream(`${url}?since=4`);
  t.teardown(b.close);
  await b.until(() => b.events.length === 1);
  const live = await openStream(url);
  t.teardown(live.close);
  await live.until(() => live.comments.length >= 1); // the stream is open: its first comment
  t.equal((await c.request('channel.get', { channel })).subscribers, 3, 'viewers count as subscribers');

  await c.request('channel.post', { channel, cid: 'p6', body: 'post 6' });
  await Promise.all([a.until(() => a.events.length === 4), b.until(() => b.events.length === 2), live.until(() => live.events.length === 1)]);
  t.same(a.events.map((e) => e.id), [3, 4, 5, 6], 'then live, no gap, no duplicate');
  t.same(b.events.map((e) => e.id), [5, 6]);
  t.same(live.events.map((e) => e.id), [6], 'without a cursor: from now on');

  const comments = live.comments.length;
  await live.until(() => live.comments.length > comments, 10_000);
  t.pass('a keep-alive comment line arrives on an idle stream');

  await a.close();
  await b.close();
  await live.close();
  for (let i = 0; i < 200 && (await c.request('channel.get', { channel })).subscribers !== 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal((await c.request('channel.get', { channel })).subscribers, 0, 'closed viewers are uncounted');
});

t.test('SSE and JSON history: 404 for no such channel, 400 for a bad cursor, paging', async (t) => {
  const s = await startTestServer(t);
  const ann = await newUser(s, 'ann');
  const c = await connect(t, s, await newDevice(s, ann));
  const { channel } = await c.request('channel.create', { name: 'sse.pages', title: 'P' });
  for (let i = 1; i <= 7; i++) await c.request('channel.post', { channel, cid: `p${i}`, body: `post ${i}` });
  const base = `${s.base}/v1/channels`;

  const missing = await fetch(`${base}/c:nothing/events`);
  t.equal(missing.status, 404);
  t.match(await missing.json(), { error: 'not_found' });
  t.equal((await fetch(`${base}/${channel}/events?since=-1`)).status, 400);
  t.equal((await fetch(`${base}/${channel}/events`, { headers: { 'Last-Event-ID': 'abc' } })).status, 400);
  t.equal((await fetch(`${base}/c:nothing/messages`)).status, 404);
  t.equal((await fetch(`${base}/${channel}/messages?limit=500`)).status, 400);

  const newest = await (await fetch(`${base}/${channel}/messages?limit=3`)).json();
  t.same(newest.messages.map((m: any) => m.seq), [7, 6, 5]);
  t.equal(newest.more, true);
  const older = await (await fetch(`${base}/${channel}/messages?before=5&limit=10`)).json();
  t.same(older.messages.map((m: any) => m.seq), [4, 3, 2, 1]);
  t.equal(older.more, false);
  const after = await (await fetch(`${base}/${channel}/messages?after=5`)).json();
  t.same(after.messages.map((m: any) => m.seq), [6, 7]);
  t.match(after.messages[0], { channel, seq: 6, from: ann.user, body: 'post 6' });
});
