// IndexedDbPersistence in real headless Chromium (docs/sdk.md "Persistence"): the adapter contract
// on the browser's IndexedDB, then a page using the SDK against the real server is reloaded and
// replays only the events that are new, showing the cached history at once. Needs Chromium at
// /usr/bin/chromium (apt-get install -y chromium): skipped with a message without it.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import t from 'tap';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The page (bundled from its TypeScript source) on a local HTTP server: IndexedDB needs a real origin. */
async function servePage(t: Tap): Promise<string> {
  const bundle = await build({
    entryPoints: [join(ROOT, 'test/helpers/indexeddb-page.ts')],
    bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.text;
  const html = '<!doctype html><meta charset="utf-8"><title>sdk</title><script type="module" src="/page.js"></script>';
  const http = createServer((req, res) => {
    if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => http.close(() => r())));
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
}
type Tap = { teardown(fn: () => unknown): void };

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): IndexedDbPersistence was not run`);
} else {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.teardown(() => browser.close());
  const pageUrl = await servePage(t);
  const s = await startTestServer(t);

  const openPage = async (t: Tap & { fail(msg: string): void }) => {
    const context = await browser.newContext();
    t.teardown(() => context.close());
    const page = await context.newPage();
    page.on('pageerror', (err) => t.fail(`page error: ${err.message}`));
    await page.goto(pageUrl);
    await page.waitForFunction(() => 'sdk' in globalThis);
    return page;
  };

  t.test('the adapter contract: IndexedDbPersistence', async (t) => {
    const page = await openPage(t);
    const results = await page.evaluate(() => (globalThis as any).sdk.contract());
    t.ok(results.length >= 20, `${results.length} checks ran in the browser`);
    for (const r of results) t.ok(r.ok, r.name, r.detail === undefined ? {} : { detail: r.detail });
  });

  t.test('a reload resumes from the cursor in IndexedDB: only new events replayed, cached history shown', async (t) => {
    const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
    const annDevice = await newDevice(s, ann, 'browser');
    const b = await connect(t, s, await newDevice(s, bob));
    const page = await openPage(t);
    const args = { url: s.wsUrl, token: annDevice.token };

    await page.evaluate(({ url, token }) => (globalThis as any).sdk.start(url, token), args);
    let thread = '';
    for (let i = 1; i <= 3; i++) thread = (await b.send({ to: ann.user, body: `before ${i}` })).thread;
    await page.waitForFunction(() => (globalThis as any).sdk.durable().filter((e: any) => e.t === 'msg').length === 3);
    const savedU: number = await page.evaluate(() => (globalThis as any).sdk.stop());

    // Meanwhile the same device (a Node client without the store) reads and acks 'after 4': the
    // server's cursor for the device moves past the page's, so only the stored cursor replays it.
    const elsewhere = await connect(t, s, annDevice);
    const seen = elsewhere.next('msg', (m) => m.body === 'after 4', 10_000);
    await b.send({ thread, body: 'after 4' });
    await seen;
    await elsewhere.close();
    await b.send({ thread, body: 'after 5' });

    await page.reload();
    await page.waitForFunction(() => 'sdk' in globalThis);
    const shownAtOnce: string[] = await page.evaluate(({ url, token, thread }) => (globalThis as any).sdk.cached(url, token, thread), { ...args, thread });
    t.same(shownAtOnce, ['before 3', 'before 2', 'before 1'], 'after the reload, before connecting: the cached history');
    await page.evaluate(({ url, token }) => (globalThis as any).sdk.start(url, token), args);
    const replayed: Array<{ t: string; u: number; body?: string }> = await page.evaluate(() => (globalThis as any).sdk.durable());
    t.ok(replayed.length > 0 && replayed.every((e) => e.u > savedU), `nothing at or below the stored cursor (u ${savedU}) replayed`);
    t.same(replayed.filter((e) => e.t === 'msg').map((e) => e.body), ['after 4', 'after 5'], 'only what the page had not stored, from its own cursor');
    const cached: string[] = await page.evaluate(({ url, token, thread }) => (globalThis as any).sdk.cached(url, token, thread), { ...args, thread });
    t.same(cached, ['after 5', 'after 4', 'before 3', 'before 2', 'before 1'], 'the cache holds both');
    await page.evaluate(() => (globalThis as any).sdk.stop());
  });
}
