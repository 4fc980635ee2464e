// The web app (issue 15) in headless Chromium against the real server: people sign up through its
// forms in browser contexts of their own and chat both ways; ticks turn to read from receipts;
// typing and presence show; a group of three; a reload keeps the history; errors are shown in
// words. One server and one browser for the file. Screenshots land in test-artifacts/web-app/.
// Needs Chromium at /usr/bin/chromium (apt-get install -y chromium): skipped with a message without it.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { connect, newDevice, startTestServer } from './helpers/server.js';
import { register } from '../client/index.js';
import { decodeFrame } from '../protocol/wire.js';
import { ARTIFACTS, bubble, inboxRow, chatWith, CHROMIUM, ensureWebAppBuilt, launchChromium, say, signIn, signUp, tickIs, type Person } from './helpers/web-app.js';

async function shot(p: Person, name: string): Promise<void> {
  await p.page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  ensureWebAppBuilt();
  mkdirSync(ARTIFACTS, { recursive: true });
  const s = await startTestServer(t);
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const all: Person[] = [];
  const person = async (username: string, name: string) => {
    const p = await signUp(browser, s.base, username, name);
    all.push(p);
    return p;
  };

  const ann = await person('ann', 'Ann');
  const bob = await person('bob', 'Bob');

  t.test('two people chat both ways: unread badge, ticks to read, typing, presence', async (t) => {
    // Bob is away (his tab shows another page; his session stays in its storage) while ann writes.
    await bob.page.goto('about:blank');
    await chatWith(ann, 'bob');
    await ann.page.getByRole('heading', { name: 'Bob', exact: true }).waitFor();
    await say(ann, 'hello bob');
    // The first message makes the 1:1 thread: the app moves to it, where the tick follows receipts.
    await ann.page.waitForURL(/#\/t\//);
    await tickIs(ann, 'hello bob', 'sent');
    t.pass('ann: sent (✓) — on the server, bob has no device online to store it');
    await bob.page.goto(s.base);

    // Bob's inbox: the new thread on top, with its unread badge and last message.
    const row = inboxRow(bob, 'Ann');
    await row.getByLabel('1 unread').waitFor();
    t.match(await row.locator('.preview').textContent(), /hello bob/, "bob's inbox shows the last message");
    // Bob's device acked the event: delivered (✓✓), not yet read.
    await tickIs(ann, 'hello bob', 'delivered');
    t.pass('ann: delivered once bob stored it');
    await shot(bob, '01-bob-inbox-unread');

    await row.getByRole('link').click();
    await bubble(bob, 'hello bob').waitFor();
    await tickIs(ann, 'hello bob', 'read');
    t.pass('ann: read once bob opened the chat');
    t.equal(await row.getByLabel('1 unread').count(), 0, 'the badge is gone');

    await say(bob, 'hi ann');
    await bubble(ann, 'hi ann').waitFor();
    t.pass('ann sees the reply live');
    await tickIs(bob, 'hi ann', 'read');
    t.pass('ann has the chat open: bob sees it read at once');

    // Typing: bob types without sending; ann sees it under the messages.
    await bob.page.getByLabel('Message', { exact: true }).pressSequentially('are you th');
    await ann.page.locator('.typing', { hasText: 'Bob is typing…' }).waitFor();
    t.pass('ann sees bob typing');
    await bob.page.getByLabel('Message', { exact: true }).press('Enter');
    await ann.page.locator('.typing', { hasText: 'Bob is typing…' }).waitFor({ state: 'detached' }).catch(() => undefined);
    await ann.page.waitForFunction(() => !document.querySelector('.typing')?.textContent);
    t.pass('the typing line clears when the message arrives');

    // Presence: visible to contacts (the server's default privacy). Each adds the other.
    t.equal(await ann.page.locator('.conv-head .presence').textContent(), '', 'no presence before bob adds ann as a contact');
    await bob.page.getByRole('button', { name: 'Add to contacts', exact: true }).click();
    await bob.page.getByRole('button', { name: 'Remove contact', exact: true }).waitFor();
    await ann.page.locator('.conv-head .presence[data-online="true"]', { hasText: 'online' }).waitFor();
    t.pass('ann sees bob online once he added her');
    await ann.page.getByRole('button', { name: 'Add to contacts', exact: true }).click();
    await bob.page.locator('.conv-head .presence[data-online="true"]').waitFor();
    t.pass('bob sees ann online');
    await shot(ann, '02-ann-chat-read-online');

    // Bob goes away (his page closes): ann sees "last seen".
    const bobCtx = bob.page.context();
    const bobUrl = bob.page.url();
    await bob.page.close();
    await ann.page.locator('.conv-head .presence[data-online="false"]', { hasText: 'last seen' }).waitFor({ timeout: 20_000 });
    t.pass('ann sees bob last seen after he left');
    bob.page = await bobCtx.newPage();
    await bob.page.goto(bobUrl);
    await ann.page.locator('.conv-head .presence[data-online="true"]').waitFor();
    t.pass('and online again when he is back');
    await bubble(bob, 'hello bob').waitFor();
  });

  t.test('a reload resumes from the cursor kept in IndexedDB: only new events are replayed', async (t) => {
    // Ann's tab closes; bob writes one message; ann opens the app again in a new tab.
    const ctx = ann.page.context();
    const url = ann.page.url();
    await ann.page.close();
    await say(bob, 'while you were away');
    await tickIs(bob, 'while you were away', 'sent');
    ann.page = await ctx.newPage();
    const frames: { dir: 'in' | 'out'; f: any }[] = [];
    ann.page.on('websocket', (ws) => {
      ws.on('framesent', (e) => { if (typeof e.payload !== 'string') frames.push({ dir: 'out', f: decodeFrame(e.payload) }); });
      ws.on('framereceived', (e) => { if (typeof e.payload !== 'string') frames.push({ dir: 'in', f: decodeFrame(e.payload) }); });
    });
    await ann.page.goto(url);
    await bubble(ann, 'while you were away').waitFor();
    const hello = frames.find((x) => x.dir === 'out' && x.f.t === 'hello')?.f;
    t.ok(hello && hello.since > 0 && typeof hello.epoch === 'string', `hello carries the stored cursor: since ${hello?.since}`);
    const synced = frames.findIndex((x) => x.f.t === 'synced');
    const replayed = frames.slice(0, synced).filter((x) => x.dir === 'in' && x.f.t !== 'welcome' && typeof x.f.u === 'number');
    t.same(replayed.map((x) => x.f.t), ['msg'], 'the replay is the one new message (and nothing older)');
    t.equal(replayed[0]?.f.body, 'while you were away');
    await tickIs(bob, 'while you were away', 'read');
  });

  t.test('a reload keeps the history and the session', async (t) => {
    await ann.page.reload();
    await bubble(ann, 'hi ann').waitFor();
    await bubble(ann, 'hello bob', 'mine').waitFor();
    t.pass('the conversation is there after a reload');
    // Bob's read receipt came before the reload, and the reload replays only what is newer.
    await tickIs(ann, 'hello bob', 'read');
    t.pass('an older message keeps its read tick across the reload');
    t.equal(await ann.page.getByRole('button', { name: 'Sign out', exact: true }).count(), 1, 'still signed in');

    // The cached history shows at once, before any answer: here the WebSocket never answers at all.
    const offline = await ann.page.context().newPage();
    await offline.routeWebSocket(/\/v1\/ws/, () => undefined);
    await offline.goto(ann.page.url());
    await offline.locator('.banner[data-conn="connecting"]').waitFor();
    await offline.locator('.messages li.msg.theirs', { hasText: 'hi ann' }).waitFor();
    await offline.locator('.inbox li.row', { hasText: 'Bob' }).waitFor();
    t.pass('the conversation and the inbox show from IndexedDB while the connection is not up');
    t.equal(await offline.locator('.banner[data-conn="connecting"]').count(), 1, 'still connecting: nothing came from the server');
    await offline.screenshot({ path: join(ARTIFACTS, '07-cached-history.png') });
    await offline.close();
  });

  t.test('a long history loads page by page as ann scrolls up, the view staying where she was', async (t) => {
    await register(s.base, { username: 'dan', password: 'correct horse battery', name: 'Dan' });
    const dan = await connect(t, s, await newDevice(s, { user: '', username: 'dan', password: 'correct horse battery' }));
    const annId = (await dan.request<{ user: string }>('user.find', { username: 'ann' })).user;
    for (let i = 0; i < 120; i++) await dan.send({ to: annId, body: `line ${i}` });
    const row = inboxRow(ann, 'Dan');
    await row.getByLabel('120 unread').waitFor();
    t.pass('120 unread');
    await row.getByRole('link').click();
    const items = ann.page.locator('.messages li.msg');
    await bubble(ann, 'line 119').waitFor();
    t.equal(await items.count(), 50, 'the newest page first');
    t.equal(await row.getByLabel(/unread/).count(), 0, 'opening the chat read it');
    const list = ann.page.locator('.messages');
    await list.evaluate((el) => { el.scrollTop = 0; });
    await ann.page.waitForFunction(() => document.querySelectorAll('.messages li.msg').length === 100);
    await ann.page.waitForFunction(() => document.querySelector('.messages')?.getAttribute('aria-busy') === 'false');
    t.ok(await list.evaluate((el) => el.scrollTop > 80), 'the view stayed at the message she was reading (no jump to the top)');
    t.ok(await bubble(ann, 'line 70').isVisible(), 'line 70, the top before, is still in view');
    await list.evaluate((el) => { el.scrollTop = 0; });
    await ann.page.waitForFunction(() => document.querySelectorAll('.messages li.msg').length === 120);
    const bodies = await ann.page.locator('.messages li.msg .body').allTextContents();
    t.same(bodies, Array.from({ length: 120 }, (_, i) => `line ${i}`), 'all 120, in order, once each');
    await dan.close();
  });

  t.test('a group of three: create, talk, rename, remove, members', async (t) => {
    const cid = await person('cid', 'Cid');
    await ann.page.getByRole('link', { name: 'New group', exact: true }).click();
    await ann.page.getByLabel('Group name').fill('Trio');
    await ann.page.getByLabel('Members (usernames, separated by commas or spaces)').fill('bob, cid');
    await ann.page.getByRole('button', { name: 'Create group', exact: true }).click();
    await ann.page.getByRole('heading', { name: 'Trio', exact: true }).waitFor();
    t.pass('ann made the group');

    for (const p of [bob, cid]) await inboxRow(p, 'Trio').getByRole('link').click();
    await say(cid, 'cid here');
    for (const p of [ann, bob]) await bubble(p, 'cid here').waitFor();
    // Bob never looked Cid up: the app asks the server for the names behind the members' ids (users.get).
    await bubble(bob, 'cid here').locator('.from', { hasText: 'Cid' }).waitFor();
    t.pass('a group message names its sender, by the name the sender chose');
    await say(ann, 'welcome both');
    await tickIs(ann, 'welcome both', 'read');
    t.pass('read when both others have read');

    await ann.page.getByRole('link', { name: 'Group info', exact: true }).click();
    const members = ann.page.locator('.members li');
    await members.nth(2).waitFor();
    t.equal(await members.count(), 3, 'three members listed');
    await ann.page.getByLabel('New group name').fill('Trio 2');
    await ann.page.getByRole('button', { name: 'Rename', exact: true }).click();
    await bob.page.getByRole('heading', { name: 'Trio 2', exact: true }).waitFor();
    t.pass('bob sees the new name');
    await ann.page.getByRole('button', { name: /^Remove Cid/ }).click();
    await cid.page.getByText('You are no longer a member of this group.').waitFor();
    t.pass('cid is out');
    await ann.page.waitForFunction(() => document.querySelectorAll('.members li').length === 2);
    await shot(ann, '03-group-info');
    await cid.page.context().close();
  });

  t.test('errors are shown in words: a blocked sender, a message too large', async (t) => {
    await inboxRow(bob, 'Ann').getByRole('link').click();
    await bob.page.getByRole('button', { name: 'Block', exact: true }).click();
    await bob.page.getByRole('button', { name: 'Unblock', exact: true }).waitFor();
    await inboxRow(ann, 'Bob').getByRole('link').click();
    await say(ann, 'are you there?');
    await ann.page.locator('.messages li.msg.mine[data-tick="failed"]', { hasText: 'are you there?' }).waitFor();
    const why = await ann.page.locator('.messages li.unsent .error').textContent();
    t.match(why, /not allowed/i, `the refusal in words: ${why}`);
    await shot(ann, '04-blocked');
    await bob.page.getByRole('button', { name: 'Unblock', exact: true }).click();
    await bob.page.getByRole('button', { name: 'Block', exact: true }).waitFor();
    await ann.page.getByRole('button', { name: 'Retry', exact: true }).click();
    await bubble(bob, 'are you there?').waitFor();
    t.pass('retried once unblocked: delivered');

    await ann.page.getByLabel('Message', { exact: true }).fill('x'.repeat(17_000));
    await ann.page.getByRole('button', { name: 'Send', exact: true }).click();
    await ann.page.getByRole('alert').filter({ hasText: 'too large' }).waitFor();
    t.pass('too large: said so');
  });

  t.test('media: an image is previewed, a file downloads', async (t) => {
    await inboxRow(bob, 'Ann').getByRole('link').click();
    await inboxRow(ann, 'Bob').getByRole('link').click();
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==', 'base64');
    await ann.page.locator('.composer input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
    const img = bob.page.locator('.messages li.msg.theirs img.preview-image[alt="dot.png"]');
    await img.waitFor();
    await bob.page.waitForFunction(() => (document.querySelector('img.preview-image[alt="dot.png"]') as HTMLImageElement | null)?.naturalWidth === 1);
    t.match(await img.getAttribute('src'), /^blob:/, 'bob sees the image, fetched through the SDK');
    await ann.page.locator('.messages li.msg.mine img.preview-image[alt="dot.png"]').waitFor();
    t.pass('ann sees her image once sent');

    await ann.page.locator('.composer input[type=file]').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from a file') });
    const file = bob.page.locator('.messages li.msg.theirs', { hasText: 'notes.txt' });
    await file.waitFor();
    const [download] = await Promise.all([bob.page.waitForEvent('download'), file.getByRole('button', { name: 'Download', exact: true }).click()]);
    t.equal(download.suggestedFilename(), 'notes.txt');
    t.equal(readFileSync((await download.path())!, 'utf8'), 'hello from a file', 'the downloaded bytes are the file');
    await shot(bob, '06-media');
  });

  t.test('devices: a second browser of the same person sees the chat live, and is signed out from the first', async (t) => {
    const ann2 = await signIn(browser, s.base, ann, 'Second laptop');
    all.push(ann2);
    await inboxRow(ann2, 'Bob').getByRole('link').click();
    await say(bob, 'to both of your devices');
    await bubble(ann2, 'to both of your devices').waitFor();
    await bubble(ann, 'to both of your devices').waitFor();
    t.pass('both of ann\'s browsers got it live');
    await say(ann2, 'sent from the laptop');
    await bubble(ann, 'sent from the laptop', 'mine').waitFor();
    t.pass('what one device sends shows on the other');

    await ann.page.getByRole('link', { name: 'Devices', exact: true }).click();
    await ann.page.getByText('Second laptop', { exact: true }).waitFor();
    await ann.page.getByRole('button', { name: 'Sign out Second laptop', exact: true }).click();
    await ann2.page.getByText('This device was signed out.').waitFor();
    t.pass('the revoked browser is back at sign-in, told why');
    await ann.page.waitForFunction(() => !document.body.textContent?.includes('Second laptop'));
    await ann2.page.context().close();
  });

  t.test('channels: create, find by name, watch live; only the owner posts to a broadcast channel', async (t) => {
    await ann.page.getByRole('link', { name: 'Channels', exact: true }).click();
    await ann.page.getByLabel('Handle (3–32 of a–z, 0–9, _ and .)').fill('news');
    await ann.page.getByLabel('Title').fill('Parley news');
    await ann.page.getByRole('button', { name: 'Create channel', exact: true }).click();
    await ann.page.getByRole('heading', { name: 'Parley news', exact: true }).waitFor();
    await bob.page.getByRole('link', { name: 'Channels', exact: true }).click();
    await bob.page.getByLabel('Channel name').fill('news');
    await bob.page.getByRole('button', { name: 'Find channel', exact: true }).click();
    await bob.page.getByRole('heading', { name: 'Parley news', exact: true }).waitFor();
    await bob.page.getByText('following live').waitFor();
    t.equal(await bob.page.getByLabel('Post', { exact: true }).count(), 0, 'bob may not post: no composer');
    await ann.page.getByText('following live').waitFor();
    const box = ann.page.getByLabel('Post', { exact: true });
    await box.fill('first post');
    await box.press('Enter');
    await bob.page.locator('.messages li.msg', { hasText: 'first post' }).waitFor();
    t.pass('bob watches the post arrive live');
    await shot(bob, '05-channel');
  });

  t.test('accessible: every field has a label, every button a name, on each page; mute is shown in the inbox', async (t) => {
    const unnamed = () => ann.page.evaluate(() => {
      const out: string[] = [];
      for (const el of Array.from(document.querySelectorAll('input, textarea, select'))) {
        const f = el as HTMLInputElement;
        if (f.type === 'file' && f.getAttribute('aria-hidden') === 'true') continue; // opened by its labelled button
        if ((f.labels?.length ?? 0) === 0 && !f.getAttribute('aria-label')) out.push(`field ${f.name || f.id || f.outerHTML.slice(0, 60)}`);
      }
      for (const b of Array.from(document.querySelectorAll('button, a'))) {
        if (!(b.textContent ?? '').trim() && !b.getAttribute('aria-label')) out.push(`control ${b.outerHTML.slice(0, 60)}`);
      }
      return out;
    });
    for (const hash of ['#/', '#/new', '#/group/new', '#/channels', '#/contacts', '#/devices']) {
      await ann.page.goto(`${s.base}/${hash}`);
      await ann.page.locator('.view > *').first().waitFor();
      t.same(await unnamed(), [], `${hash}: nothing unnamed`);
    }
    await inboxRow(ann, 'Bob').getByRole('link').click();
    await bubble(ann, 'hi ann').waitFor();
    t.same(await unnamed(), [], 'a conversation: nothing unnamed');
    await ann.page.getByRole('button', { name: 'Mute', exact: true }).click();
    await inboxRow(ann, 'Bob').locator('.muted', { hasText: 'muted' }).waitFor();
    t.pass('muted: shown in the inbox');
    await ann.page.getByRole('button', { name: 'Unmute', exact: true }).click();
    await ann.page.waitForFunction(() => !document.querySelector('.inbox .muted'));
  });

  t.test('search: the messages holding every word, the words marked, a result opens its chat', async (t) => {
    await ann.page.getByRole('link', { name: 'Search', exact: true }).click();
    const box = ann.page.getByLabel('Words to find');
    await box.fill('HELLO Bob');
    await ann.page.getByRole('button', { name: 'Search', exact: true }).click();
    const found = ann.page.getByRole('list', { name: 'Messages found' }).locator('li.result', { hasText: 'hello bob' });
    await found.first().waitFor();
    t.same(await found.first().locator('mark').allTextContents(), ['hello', 'bob'], 'both words marked, whatever their case in the query');
    await shot(ann, '20-ann-search');
    await box.fill('hello zebra');
    await ann.page.getByRole('button', { name: 'Search', exact: true }).click();
    await ann.page.getByRole('status').filter({ hasText: 'No messages hold all of these words.' }).waitFor();
    t.pass('a word no message has: no results, said so');
    await box.fill('hello bob');
    await ann.page.getByRole('button', { name: 'Search', exact: true }).click();
    await found.first().getByRole('link').click();
    await ann.page.waitForURL(/#\/t\//);
    await bubble(ann, 'hello bob', 'mine').waitFor();
    t.pass('the result opens its conversation');
  });

  t.test('sign out returns to the sign-in form', async (t) => {
    await bob.page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
    await bob.page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    await bob.page.reload();
    await bob.page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    t.pass('signed out, also after a reload');
  });

  t.test('no page or console errors', async (t) => {
    // A refused send is logged by Chromium as a failed resource only for HTTP; the app itself logs nothing.
    t.same(all.flatMap((p) => p.problems), []);
  });
}
