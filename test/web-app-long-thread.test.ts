// A long thread in the web app (issue 15) is windowed (web/src/message-window.ts): with 450
// messages loaded only the rows near the viewport are in the DOM, scrolling anywhere shows
// consecutive messages (none missing, none twice), the view stays put while older pages load above,
// and both ends can be reached. Needs Chromium at /usr/bin/chromium (skipped without it).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { connect, newDevice, startTestServer } from './helpers/server.js';
import { ARTIFACTS, bubble, CHROMIUM, ensureWebAppBuilt, inboxRow, launchChromium, signUp } from './helpers/web-app.js';
import { register } from '../client/index.js';

const COUNT = 450;

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  t.test(`${COUNT} messages: a window of rows, every message reachable, in order`, async (t) => {
    ensureWebAppBuilt();
    mkdirSync(ARTIFACTS, { recursive: true });
    const s = await startTestServer(t);
    const browser = await launchChromium();
    t.teardown(() => browser.close());
    const ann = await signUp(browser, s.base, 'ann', 'Ann');
    await register(s.base, { username: 'dan', password: 'correct horse battery', name: 'Dan' });
    const dan = await connect(t, s, await newDevice(s, { user: '', username: 'dan', password: 'correct horse battery' }));
    const annId = (await dan.request<{ user: string }>('user.find', { username: 'ann' })).user;
    // Every other message is long (several lines): rows of different heights.
    for (let i = 0; i < COUNT; i++) await dan.send({ to: annId, body: i % 2 ? `line ${i}` : `line ${i} ${'and more words '.repeat(20)}` });

    await inboxRow(ann, 'Dan').getByRole('link').click();
    await bubble(ann, `line ${COUNT - 1}`).waitFor();
    const page = ann.page;
    const list = page.locator('.messages');
    const loaded = () => list.evaluate((el) => Number(el.getAttribute('data-count')));
    const rendered = () => page.locator('.messages li.msg .body').allTextContents();
    const numbers = async () => (await rendered()).map((b) => Number(/^line (\d+)/.exec(b)![1]));
    /** The row whose text is message n (its body, not the time after it). */
    const rowOf = (n: number) => page.locator('.messages li.msg .body', { hasText: new RegExp(`^line ${n}( |$)`) });
    const consecutive = (ns: number[]) => ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);

    // Scroll up page by page until the whole thread is loaded.
    let pages = 0;
    while ((await loaded()) < COUNT) {
      const before = await loaded();
      // The oldest message loaded: at the top of the view once scrolled up, and still in view after
      // the page above it has loaded.
      const topBefore = COUNT - before;
      await list.evaluate((el) => { el.scrollTop = 0; });
      await page.waitForFunction((n) => Number(document.querySelector('.messages')?.getAttribute('data-count')) > n, before);
      await page.waitForFunction(() => document.querySelector('.messages')?.getAttribute('aria-busy') === 'false');
      // Short (every row rendered) and windowed alike: the reader stays where they were.
      t.ok(await list.evaluate((el) => el.scrollTop > 80), `page ${++pages}: the view did not jump to the top`);
      t.ok(await rowOf(topBefore).isVisible(), `page ${pages}: line ${topBefore}, the top before, is still in view`);
      if (pages > COUNT / 50 + 1) throw new Error('more pages than the thread has');
    }
    await list.evaluate((el) => { el.scrollTop = 0; });
    await rowOf(0).waitFor();
    t.ok(await rowOf(0).isVisible(), 'the first message, at the top');
    const dom = await page.locator('.messages li.msg').count();
    t.ok(dom < COUNT / 3, `${COUNT} loaded, ${dom} rows in the DOM`);
    t.ok(consecutive(await numbers()), 'the rows at the top: consecutive');

    // The middle: what is rendered covers the viewport, consecutive.
    await list.evaluate((el) => { el.scrollTop = el.scrollHeight / 2; });
    await page.waitForFunction(() => {
      const el = document.querySelector('.messages')!;
      const box = el.getBoundingClientRect();
      const rows = Array.from(el.querySelectorAll('li.msg')).map((li) => li.getBoundingClientRect());
      return rows.some((r) => r.top <= box.top + 5) && rows.some((r) => r.bottom >= box.bottom - 5);
    });
    const middle = await numbers();
    t.ok(consecutive(middle) && middle[0]! > 0 && middle.at(-1)! < COUNT - 1, `the middle: consecutive rows ${middle[0]}–${middle.at(-1)}`);
    await page.screenshot({ path: join(ARTIFACTS, '50-long-thread-middle.png') });

    // And the bottom.
    await list.evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await rowOf(COUNT - 1).waitFor();
    t.ok(await rowOf(COUNT - 1).isVisible(), 'the newest message, at the bottom');
    t.ok(consecutive(await numbers()), 'the rows at the bottom: consecutive');
    t.same(ann.problems, [], 'no page errors');
  });
}
