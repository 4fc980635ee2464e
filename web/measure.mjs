// Numbers of issue 15 for the web app, measured in headless Chromium against a real server:
// first-load bytes and time to interactive, a render with an inbox of 500 threads, and the
// memory and DOM of a page holding a 10,000-message thread (and the time to scroll through it).
//   npx tsc -p tsconfig.json --outDir dist-test && node web/build.mjs dist-test/web && node web/measure.mjs dist-test
// (default build dir: dist). Other work on the machine shares its cores: run it on a quiet one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = resolve(process.argv[2] ?? 'dist');
const { startTestServer } = await import(join(root, 'test/helpers/server.js'));
const { launchChromium } = await import(join(root, 'test/helpers/web-app.js'));
const { connect, newDevice, newUser } = await import(join(root, 'test/helpers/server.js'));

const teardown = [];
const t = { teardown: (fn) => teardown.push(fn) };
const out = {};

// First-load bytes: index.html and what it names.
const web = join(root, 'web');
const files = [join(web, 'index.html'), ...readdirSync(join(web, 'assets')).map((f) => join(web, 'assets', f))];
out.firstLoadRaw = files.reduce((n, f) => n + statSync(f).size, 0);
out.firstLoadGzip = files.reduce((n, f) => n + gzipSync(readFileSync(f), { level: 9 }).length, 0);

const s = await startTestServer(t);
const browser = await launchChromium();
const annUser = await newUser(s, 'ann');
const ann = await newDevice(s, annUser, 'script');
const c = await connect(t, s, ann);
// 500 threads: groups of one (no other accounts needed), one message each.
for (let i = 0; i < 500; i += 50) {
  await Promise.all(Array.from({ length: 50 }, async (_, j) => {
    const { thread } = await c.request('group.create', { title: `group ${i + j}`, members: [] });
    await c.send({ thread, body: `hello ${i + j}` });
  }));
}
const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
await page.addInitScript((sess) => localStorage.setItem('parley.session', JSON.stringify(sess)), { ...ann, username: annUser.username, deviceName: 'measure' });
const t0 = Date.now();
await page.goto(s.base);
await page.locator('.inbox li.row').first().waitFor();
out.timeToInteractiveMs = Date.now() - t0;
// All 500 rows: page through the inbox, then time one full render of the 500.
while ((await page.locator('.inbox li.row').count()) < 500) {
  const n = await page.locator('.inbox li.row').count();
  await page.getByRole('button', { name: 'Older conversations' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('.inbox li.row').length > n, n);
}
// One render with 500 rows in the inbox: a route change re-renders the shell and diffs the 500
// rows (the inbox stays mounted), timed to the next frame.
out.inbox500RerenderMs = await page.evaluate(async () => {
  const start = performance.now();
  location.hash = '#/contacts';
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return Math.round((performance.now() - start) * 10) / 10;
});

// A 10,000-message thread, loaded whole by scrolling up.
const { thread } = await c.request('group.create', { title: 'long', members: [] });
for (let i = 0; i < 10_000; i += 200) await Promise.all(Array.from({ length: 200 }, (_, j) => c.send({ thread, body: `message number ${i + j} with some text in it` })));
await page.goto(`${s.base}/#/t/${thread}`);
await page.locator('.messages li.msg').first().waitFor();
const t1 = Date.now();
// Messages loaded: the list's data-count (a long thread renders only the rows near the viewport).
const loadedCount = () => page.locator('.messages').evaluate((el) => Number(el.getAttribute('data-count')));
while ((await loadedCount()) < 10_000) {
  const n = await loadedCount();
  await page.locator('.messages').evaluate((el) => { el.scrollTop = 0; });
  await page.waitForFunction((n) => Number(document.querySelector('.messages')?.getAttribute('data-count')) > n, n, { timeout: 60_000 });
}
out.load10kByScrollMs = Date.now() - t1;
const cdp = await page.context().newCDPSession(page);
await cdp.send('HeapProfiler.collectGarbage');
const { metrics } = await cdp.send('Performance.getMetrics').catch(async () => { await cdp.send('Performance.enable'); return cdp.send('Performance.getMetrics'); });
await cdp.send('Performance.enable');
const m2 = (await cdp.send('Performance.getMetrics')).metrics;
const get = (name) => (m2.find((m) => m.name === name) ?? metrics.find((m) => m.name === name))?.value;
out.heap10kMiB = Math.round((get('JSHeapUsedSize') / 1024 / 1024) * 10) / 10;
out.domNodes10k = get('Nodes');
out.messageRows10k = await page.locator('.messages li.msg').count();
// Scrolling the whole loaded thread from top to bottom in viewport steps, each step to its next frame.
out.scrollThrough10kMs = await page.locator('.messages').evaluate(async (el) => {
  const start = performance.now();
  for (el.scrollTop = 0; el.scrollTop + el.clientHeight < el.scrollHeight - 1;) {
    const before = el.scrollTop;
    el.scrollTop += el.clientHeight;
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    if (el.scrollTop === before) break;
  }
  return Math.round(performance.now() - start);
});
console.log(JSON.stringify(out, null, 2));
await browser.close();
for (const fn of teardown.reverse()) await fn();
process.exit(0);
